"""Command-line options the demo and the benchmark share."""

from __future__ import annotations

import argparse


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    """KSampler's settings, with the defaults both commands time at."""
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--size", type=int, help="image side in pixels (default 256 on CPU, 512 on GPU)")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=0)
