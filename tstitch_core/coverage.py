"""Which models get steps on the schedule being sampled, and the one rule for a model that gets none.

The rule, for pairs, nested pairs, T-Stitch Stages and every setting of the Fraction Sweep: when the last
model (the one the output is meant to come from) would get no step while an earlier one gets some, the
output would be another model's than the one asked for, so the run is refused before step 1 with the
fractions that give every model steps on that schedule. A fraction of 1 asks for exactly that, so it runs.
When an earlier model gets no step (a low-denoise second pass through the same stitched model starts below
its share), the pass is the later models', which is what a hires-fix pass wants: it runs.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

from .schedule import SWITCH_BY_TIMESTEP, SwitchRule, compute_switch_point, describe_stage_steps

# the nodes' fraction inputs step by 0.001: the ranges offered are of values a user can type
FRACTION_GRID = 1000


def count_covered(rule: SwitchRule, sample_sigmas: Sequence[float], timestep_of: Callable[[float], float],
                  timestep_max: float) -> int:
    """Leading steps of ``sample_sigmas`` that ``rule``'s switch point covers (a prefix, since sigmas fall)."""
    point = compute_switch_point(rule, sample_sigmas, timestep_max)
    return sum(point.covers(float(sigma), timestep_of) for sigma in list(sample_sigmas)[:-1])


def fraction_range(switch_by: str, fewest: int, most: int, sample_sigmas: Sequence[float],
                   timestep_of: Callable[[float], float], timestep_max: float) -> Optional[tuple[float, float]]:
    """The fractions, on the inputs' 0.001 grid, whose switch point covers from ``fewest`` to ``most`` leading
    steps of this schedule, as (lowest, highest); None when no fraction does.

    Coverage grows with the fraction, so each end is found by bisection over the grid (exact for either rule,
    since it counts with the same switch points the run routes by).
    """
    def covered(k: int) -> int:
        return count_covered(SwitchRule(k / FRACTION_GRID, switch_by), sample_sigmas, timestep_of, timestep_max)

    def first(predicate) -> int:  # the smallest k in [0, GRID + 1) with predicate(k), predicate monotone
        low, high = 0, FRACTION_GRID + 1
        while low < high:
            middle = (low + high) // 2
            if predicate(middle):
                high = middle
            else:
                low = middle + 1
        return low

    lowest = first(lambda k: covered(k) >= fewest)
    highest = first(lambda k: covered(k) > most) - 1
    if lowest > highest or lowest > FRACTION_GRID:
        return None
    return lowest / FRACTION_GRID, highest / FRACTION_GRID


def describe_every_model_runs(rules: Sequence[SwitchRule], settings: Sequence[str], sample_sigmas: Sequence[float],
                              timestep_of: Callable[[float], float], timestep_max: float) -> str:
    """The values of each handover setting that leave every model a step on this schedule, in words."""
    steps = len(sample_sigmas) - 1
    count = len(rules)
    if steps <= count:
        return f"this schedule has {steps} step(s), too few for {count + 1} models: sample more steps"
    parts = []
    for k, (rule, setting) in enumerate(zip(rules, settings)):
        # handover k leaves k + 1 earlier stages a step each before it, and the later ones one each after it
        span = fraction_range(rule.switch_by, k + 1, steps - count + k, sample_sigmas, timestep_of, timestep_max)
        if span is None:
            return (f"no {setting} with switch_by {rule.switch_by} gives every model a step on this schedule: "
                    "sample more steps" + (", or use switch_by steps" if rule.switch_by == SWITCH_BY_TIMESTEP else ""))
        parts.append(f"{setting} from {span[0]:g} to {span[1]:g}")
    return ", ".join(parts) + (" (increasing, one step apart or more)" if count > 1 else "")


def validate_last_model_runs(counts: Sequence[int], stage_names: Sequence[str], rules: Sequence[SwitchRule],
                             settings: Sequence[str], sample_sigmas: Sequence[float],
                             timestep_of: Callable[[float], float], timestep_max: float,
                             node: str = "T-Stitch") -> None:
    """Raise before step 1 when the last model gets no step on this schedule while an earlier one gets some.

    Args:
        counts: the steps each stage starts on this schedule (``count_stage_steps``), in trajectory order.
        settings: how the user sets each handover ("small_fraction", "until's 2nd value"), one per rule.
    """
    if counts[-1] > 0 or sum(counts[:-1]) == 0 or rules[-1].small_fraction >= 1.0:
        return
    last_rule = rules[-1]
    steps = len(sample_sigmas) - 1
    runs = "; ".join(f"{name}: {words}" for name, words in zip(stage_names, describe_stage_steps(counts))
                     if not words.startswith("no steps"))
    if last_rule.switch_by == SWITCH_BY_TIMESTEP:
        # rounded down, so that "at or above" stays true
        lowest = math.floor(min(timestep_of(float(s)) for s in list(sample_sigmas)[:-1]) / timestep_max * 1000) / 1000
        why = (f"with switch_by timestep, {settings[-1]} {last_rule.small_fraction:g} hands over below t/T "
               f"{1 - last_rule.small_fraction:g}, and every step of this schedule starts at or above t/T "
               f"{lowest:g} (a strongly shifted schedule keeps its sigmas high)")
    else:
        why = f"{settings[-1]} {last_rule.small_fraction:g} of {steps} steps rounds to all {steps}"
    raise ValueError(
        f"{node}: on the schedule being sampled the {stage_names[-1]} would get no step ({why}), so the output "
        f"would be another model's alone ({runs}). For steps on every model: "
        f"{describe_every_model_runs(rules, settings, sample_sigmas, timestep_of, timestep_max)}. To run the "
        f"earlier model alone on purpose, set {settings[-1]} to 1.")


def describe_models_without_steps(counts: Sequence[int], stage_names: Sequence[str]) -> Optional[str]:
    """"small model (SD15): no steps of 4" for each stage that gets none, else None (for the progress text)."""
    words = describe_stage_steps(counts)
    empty = [f"{name}: {w}" for name, w, count in zip(stage_names, words, counts) if count == 0]
    return "; ".join(empty) if empty else None
