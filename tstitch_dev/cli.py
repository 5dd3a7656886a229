"""Command-line options the demo and the benchmark share."""

from __future__ import annotations

import argparse


def add_sampling_options(parser: argparse.ArgumentParser, steps: int | None = 10,
                         defaults: str = "10 steps; 256 pixels on CPU, 512 on GPU") -> None:
    """KSampler's settings; ``steps`` None leaves the step count to the command, which ``defaults`` describes."""
    parser.add_argument("--steps", type=int, default=steps, help=f"sampling steps (default: {defaults})")
    parser.add_argument("--size", type=int, help=f"image side in pixels (default: {defaults})")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--scheduler", default="normal")
    parser.add_argument("--cfg", type=float, default=7.0)
    parser.add_argument("--seed", type=int, default=0)
