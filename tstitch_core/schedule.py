"""Where on a sampling trajectory each stitched model takes over.

A stitched sampler runs its stages in order: the first (smallest) model denoises the
high-noise start, each later one takes over at its switch point, and the last stage (the
large model) finishes. Every stage's switch is measured on the same full trajectory.

Boundary rule, shared with ComfyUI's ``SplitSigmas``: the step that starts at the switch
sigma belongs to the later model, so an evaluation exactly at the switch sigma (Heun's
corrector closing the last small step, say) runs the later model.

The official T-Stitch code routes SD pipelines by ``i / N <= ratio``, which hands the small
model floor(ratio * N) + 1 steps; here the small model gets round(f * N) steps, so f = 0 is
the large model alone and f * N steps go where f says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

SWITCH_BY_STEPS = "steps"
SWITCH_BY_TIMESTEP = "timestep"
SWITCH_MODES = (SWITCH_BY_STEPS, SWITCH_BY_TIMESTEP)


@dataclass(frozen=True)
class SwitchRule:
    """The share of the trajectory a stage runs, counted in sampler steps or in diffusion time.

    Args:
        small_fraction: share of the trajectory in [0, 1], as NVlabs T-Stitch's ``ratio``.
        switch_by: ``"steps"``: the first round(f * N) of the N steps the sampler runs (the SD
            pipelines' rule); ``"timestep"``: every call whose timestep t satisfies
            t / T >= 1 - f (the DiT rule), t being the timestep the model sees and T its value
            at the model's largest sigma.
    """

    small_fraction: float
    switch_by: str = SWITCH_BY_STEPS


@dataclass(frozen=True)
class SwitchPoint:
    """A stage runs while the call's sigma (or timestep) is above ``threshold`` (or equal, if ``inclusive``)."""

    threshold: float
    inclusive: bool
    by_timestep: bool = False

    def covers(self, sigma: float, timestep_of: Callable[[float], float]) -> bool:
        value = timestep_of(sigma) if self.by_timestep else sigma
        return value >= self.threshold if self.inclusive else value > self.threshold


NEVER = SwitchPoint(math.inf, False)
ALWAYS = SwitchPoint(-math.inf, True)


def compute_switch_index(steps: int, small_fraction: float) -> int:
    """Number of leading steps, round(f * steps) with halves rounded up, run by the earlier model."""
    # the epsilon keeps 0.35 * 10 = 3.4999999999999996 from rounding down
    return min(steps, max(0, math.floor(small_fraction * steps + 0.5 + 1e-9)))


def compute_switch_point(rule: SwitchRule, sample_sigmas: Sequence[float], timestep_max: float) -> SwitchPoint:
    """Where ``rule`` hands over, for the schedule a sampler runs.

    Args:
        sample_sigmas: the N + 1 sigmas of the N steps this sampler runs.
        timestep_max: T, the model's timestep at its largest sigma (999 for SD-style models,
            1000 for flow models).
    """
    fraction = rule.small_fraction
    if fraction <= 0.0:
        return NEVER
    if fraction >= 1.0:
        return ALWAYS
    if rule.switch_by == SWITCH_BY_TIMESTEP:
        return SwitchPoint((1.0 - fraction) * timestep_max, inclusive=True, by_timestep=True)
    steps = len(sample_sigmas) - 1
    k = compute_switch_index(steps, fraction)
    if k <= 0:
        return NEVER
    if k >= steps:
        return ALWAYS
    return SwitchPoint(float(sample_sigmas[k]), inclusive=False)


def pick_stage(switch_points: Sequence[SwitchPoint], sigma: float, timestep_of: Callable[[float], float]) -> int:
    """Index of the stage that denoises at ``sigma``: the first whose switch point covers it, else the last."""
    for index, point in enumerate(switch_points):
        if point.covers(sigma, timestep_of):
            return index
    return len(switch_points)


def assign_steps(switch_points: Sequence[SwitchPoint], sample_sigmas: Sequence[float],
                 timestep_of: Callable[[float], float]) -> list[int]:
    """The stage of each step, a step counted by the sigma it starts from (for previews and logs)."""
    return [pick_stage(switch_points, float(sigma), timestep_of) for sigma in list(sample_sigmas)[:-1]]


def count_stage_steps(switch_points: Sequence[SwitchPoint], sample_sigmas: Sequence[float],
                      timestep_of: Callable[[float], float]) -> list[int]:
    """Steps each stage starts, as ``assign_steps`` assigns them."""
    stages = assign_steps(switch_points, sample_sigmas, timestep_of)
    return [stages.count(index) for index in range(len(switch_points) + 1)]


def count_covered_steps(switch_points: Sequence[SwitchPoint], sample_sigmas: Sequence[float],
                        timestep_of: Callable[[float], float]) -> list[int]:
    """Leading steps each switch point covers on its own (a prefix, since sigmas fall), before routing."""
    starts = [float(sigma) for sigma in list(sample_sigmas)[:-1]]
    return [sum(point.covers(sigma, timestep_of) for sigma in starts) for point in switch_points]


def describe_step_prefix(count: int, total: int) -> str:
    """The first ``count`` of ``total`` steps in words ("steps 1-6 of 10")."""
    return describe_stage_steps([count, total - count])[0]


def describe_stage_steps(counts: Sequence[int]) -> list[str]:
    """Each stage's steps in words, as ``count_stage_steps`` counted them ("steps 1-4 of 10")."""
    total, first, described = sum(counts), 1, []
    for count in counts:
        if count == 0:
            described.append(f"no steps of {total}")
        elif count == 1:
            described.append(f"step {first} of {total}")
        else:
            described.append(f"steps {first}-{first + count - 1} of {total}")
        first += count
    return described
