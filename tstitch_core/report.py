"""The fraction sweep's table: each fraction's cost and how close its result is to the large model alone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class SweepRow:
    fraction: float
    small_steps: int  # steps not run by the large model
    total_steps: int
    seconds: float
    psnr: float  # dB against the large model alone; inf when identical
    ssim: float
    latent_rel_l2: float


def speedup(row: SweepRow, reference_seconds: float) -> float:
    return reference_seconds / row.seconds


def format_psnr(psnr: float) -> str:
    return "inf" if math.isinf(psnr) else f"{psnr:.2f}"


def format_sweep_table(rows: Sequence[SweepRow], reference_seconds: float) -> str:
    """One line per fraction, columns aligned: what the sweep's STRING output shows."""
    header = ("fraction", "small steps", "seconds", "speedup", "PSNR dB", "SSIM", "latent rel. L2")
    lines = [header] + [(f"{r.fraction:g}", f"{r.small_steps}/{r.total_steps}", f"{r.seconds:.2f}",
                         f"{speedup(r, reference_seconds):.2f}x", format_psnr(r.psnr), f"{r.ssim:.4f}",
                         f"{r.latent_rel_l2:.4f}") for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def format_caption(row: SweepRow, reference_seconds: float) -> str:
    """The grid's label of one result."""
    return f"f = {row.fraction:.2f}  {speedup(row, reference_seconds):.2f}x  SSIM {row.ssim:.3f}"
