"""The fraction sweep's table: each fraction's cost and how close its result is to the large model alone."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Mapping, Sequence

import torch


@dataclass(frozen=True, order=True)
class SweepPlan:
    """Where the small model runs in one sweep result, as shares of the trajectory: from ``start`` to ``end``.

    ``start`` 0 is T-Stitch's order, the small model first to ``end`` (the pair's small_fraction; 0 is the large
    model alone); ``start`` > 0 is a window, large -> small -> large (FlowBlending's order), or large -> small when
    ``end`` is 1. Formats as the sweep's fractions input writes it: "0.4", "0.2-0.7".
    """

    start: float
    end: float

    @property
    def small_share(self) -> float:
        return self.end - self.start

    def __format__(self, spec: str) -> str:
        if self.start == 0.0:
            return format(self.end, spec)
        return f"{format(self.start, spec)}-{format(self.end, spec)}"


LARGE_ALONE = SweepPlan(0.0, 0.0)


@dataclass(frozen=True)
class SweepRow:
    fraction: SweepPlan
    small_steps: int  # steps not run by the large model
    total_steps: int
    seconds: float  # the median of the timed runs
    psnr: float  # dB against the large model alone, the mean over the frames that differ; inf when none does
    ssim: float
    latent_rel_l2: float
    identical_frames: int = 0  # images and video frames equal to the large model alone's, left out of psnr
    frames: int = 1
    note: str = ""  # what a setting whose last model gets no step is the same as


def resolve_sweep_plan(plan: SweepPlan, last_model_steps: int) -> tuple[SweepPlan, str]:
    """The plan a sweep setting samples, and a note: where the setting's last model gets no step on the schedule
    (which a pair or T-Stitch Stages would refuse), the same routing with the last handover at 1, named as such."""
    if last_model_steps > 0 or plan == LARGE_ALONE or plan.end >= 1.0 and plan.start == 0.0:
        return plan, ""
    if plan.start == 0.0:
        return SweepPlan(0.0, 1.0), "every step small: the same as 1"
    if plan.end >= 1.0:  # large -> small, the small model last
        return LARGE_ALONE, "every step large: the same as 0"
    return SweepPlan(plan.start, 1.0), f"the small model to the end: the same as {plan.start:g}-1"


def speedup(row: SweepRow, reference_seconds: float) -> float:
    return reference_seconds / row.seconds


def format_psnr(psnr: float) -> str:
    return "inf" if math.isinf(psnr) else f"{psnr:.2f}"


def summarize_psnr(per_frame: Sequence[float]) -> tuple[float, int]:
    """(mean PSNR over the frames that differ, number of identical frames, whose PSNR is inf); inf when all are."""
    finite = [p for p in per_frame if not math.isinf(p)]
    return (sum(finite) / len(finite) if finite else math.inf), len(per_frame) - len(finite)


def compute_latent_rel_l2(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """||x - r|| / ||r|| per batch item, and per frame of a video latent [B, C, T, H, W], then the mean; a frame
    equal to its reference counts 0 (an all-zero one too), one that differs from an all-zero reference inf."""
    x, r = samples.float(), reference.float()
    if r.ndim == 5:  # one row per (item, frame)
        x, r = (t.movedim(2, 1).flatten(0, 1) for t in (x, r))
    distance, norm = (x - r).flatten(1).norm(dim=1), r.flatten(1).norm(dim=1)
    return torch.where(distance == 0, torch.zeros_like(distance), distance / norm).mean().item()


def pick_warmup_fractions(stages_by_fraction: Mapping[float, Collection[int]]) -> list[float]:
    """The fractions whose runs, together, run every stage (model) that any fraction runs, picked greedily: the
    most stages not yet run first, then the larger fraction (more small-model steps, usually cheaper)."""
    left = set().union(*stages_by_fraction.values())
    picked = []
    while left:
        fraction = max(stages_by_fraction, key=lambda f: (len(left & set(stages_by_fraction[f])), f))
        picked.append(fraction)
        left -= set(stages_by_fraction[fraction])
    return picked


def describe_timing(repeats: int, warmup: Sequence[float]) -> str:
    """The table's note on how the seconds were measured."""
    runs = "one timed run" if repeats == 1 else f"the median of {repeats} timed runs (the fractions taking turns)"
    return (f"seconds: {runs} per fraction, after an untimed warm-up run at small_fraction "
            f"{' and '.join(f'{f:g}' for f in warmup)}; decoding waits until the last timed run.")


def format_sweep_table(rows: Sequence[SweepRow], reference_seconds: float, repeats: int = 1,
                       warmup: Sequence[float] = (), merged: int = 0) -> str:
    """One line per fraction, columns aligned, then notes on the timing and the means: the sweep's STRING output.
    ``merged``: how many fractions were given more than once and sampled once."""
    header = ("fraction", "small steps", "seconds", "speedup", "PSNR dB", "identical", "SSIM", "latent rel. L2")
    lines = [header] + [(f"{r.fraction:g}", f"{r.small_steps}/{r.total_steps}", f"{r.seconds:.2f}",
                         f"{speedup(r, reference_seconds):.2f}x", format_psnr(r.psnr),
                         f"{r.identical_frames}/{r.frames}", f"{r.ssim:.4f}", f"{r.latent_rel_l2:.4f}") for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    table = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    notes = [f"{r.fraction:g}: {r.note}" for r in rows if r.note]
    notes += [describe_timing(repeats, warmup) if warmup else None,
             "PSNR dB: the mean over the images (and video frames) that differ from the large model alone's; "
             "identical: how many are equal to it (PSNR inf) and left out of that mean; inf: all are.",
             "SSIM, latent rel. L2: the mean over all images (and frames) against the large model alone's.",
             f"{merged} repeated fraction{'s' if merged != 1 else ''} merged: each fraction is sampled once, in the "
             "order first given." if merged else None]
    return "\n".join(table + [""] + [note for note in notes if note])


def format_caption(row: SweepRow, reference_seconds: float) -> str:
    """The grid's label of one result."""
    return f"f = {row.fraction:.2f}  {speedup(row, reference_seconds):.2f}x  SSIM {row.ssim:.3f}"
