"""Stage sigmas: a schedule on which each stitched model runs exactly its own number of steps.

The pair hands over at boundary sigmas read with the large model's conversions: stage i runs the
calls whose sigma is above ``b_i``. Each stage of n steps is laid between its first sigma and its
boundary in the stage model's own diffusion time u = t / T (t the timestep that model sees, T its
value at the model's largest sigma; the time before the shift for flow models):

- a stage that hands over takes the first n + 1 sigmas of the scheduler's schedule of n + 1 steps,
  computed with its own model sampling, and stretches their u linearly so that the first lands on
  the stage's first sigma and the (n + 1)-th on the boundary, which is the next stage's first sigma;
- the last stage takes the first n sigmas of the scheduler's schedule of n steps and scales their u by
  one factor, so that the first lands on the stage's first sigma and u = 0 stays 0 (a linear stretch
  towards 0, so below any boundary); the schedule ends at 0 as ComfyUI's do. Where all stages share
  one model sampling, a scheduler uniform in u (normal on a discrete model, simple on a flow model)
  thus gives back its own schedule of the total steps for a steps-rule split. A last stage of one
  step goes from its first sigma straight to 0.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from .messages import quote_input
from .schedule import SwitchPoint, compute_switch_index

NODE_NAME = "T-Stitch Stage Sigmas"
MAX_STEPS = 10000  # as KSampler's steps


def parse_step_counts(text: str, models: int) -> list[int]:
    """The steps of each model from "2, 4" (smallest model first), one count per model of the pair, at most
    ``MAX_STEPS`` in all."""
    parts = text.replace(";", " ").replace(",", " ").split()
    try:
        counts = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"{NODE_NAME}: steps_per_model {quote_input(text)} is not a list of whole numbers; write one count "
                         f"per model, smallest model first, such as \"2, 4\".") from None
    if len(counts) != models:
        raise ValueError(f"{NODE_NAME}: steps_per_model {quote_input(text)} gives {len(counts)} count(s), but the pair has "
                         f"{models} models; write {models} counts, smallest model first.")
    if any(count < 0 for count in counts) or sum(counts) < 1:
        raise ValueError(f"{NODE_NAME}: steps_per_model {quote_input(text)} must be counts of 0 or more with at least one "
                         f"step in all.")
    if sum(counts) > MAX_STEPS:
        raise ValueError(f"{NODE_NAME}: steps_per_model {quote_input(text)} asks for {sum(counts)} steps in all; "
                         f"at most {MAX_STEPS} are allowed, as KSampler allows. Give fewer steps.")
    return counts


def validate_steps_rule_counts(counts: Sequence[int], fractions: Sequence[float | None]) -> None:
    """Raise where a switch_by steps stage would not get its count: the pair gives the models before stage i's
    switch round(f_i x N) of the N steps, so that must equal their counts summed.

    Args:
        fractions: each handing stage's small_fraction, None where it switches by timestep.
    """
    total = sum(counts)
    for index, fraction in enumerate(fractions):
        if fraction is None:
            continue
        wanted = sum(counts[:index + 1])
        given = compute_switch_index(total, fraction)
        if given != wanted:
            first = "the first model" if index == 0 else f"the first {index + 1} models"
            raise ValueError(
                f"{NODE_NAME}: steps_per_model {', '.join(map(str, counts))} gives {first} {wanted} of {total} "
                f"steps, but the pair switches by steps with small_fraction {fraction:g}, which gives them "
                f"round({fraction:g} x {total}) = {given}. Set that small_fraction to {wanted}/{total} = "
                f"{wanted / total:.4g}, or switch_by timestep, where the counts set the spacing only.")


def compute_boundary_sigma(point: SwitchPoint, timestep_of: Callable[[float], float], sigma_max: float) -> float:
    """The largest float32 sigma the switch point does not cover (the next stage's first sigma); inf where it
    covers nothing up to ``sigma_max``, -inf where it covers everything."""
    if math.isinf(point.threshold):
        return -math.inf if point.threshold < 0 else math.inf
    if not point.by_timestep:  # a steps rule covers sigma > threshold: the threshold itself is the boundary
        return point.threshold
    covers = lambda sigma: point.covers(float(sigma), timestep_of)
    if not covers(sigma_max):
        return math.inf
    low, high = 0.0, float(sigma_max)
    for _ in range(200):
        middle = (low + high) / 2
        if np.float32(middle) in (np.float32(low), np.float32(high)):
            break
        low, high = (low, middle) if covers(middle) else (middle, high)
    boundary = np.float32(low)
    while covers(boundary) and boundary > 0:
        boundary = np.nextafter(boundary, np.float32(0))
    while not covers(np.nextafter(boundary, np.float32(np.inf))):
        boundary = np.nextafter(boundary, np.float32(np.inf))
    return float(boundary)


def compute_stage_ranges(start: float, boundaries: Sequence[float]) -> list[tuple[float, float]]:
    """(first sigma, boundary) of each stage: a stage runs from the lowest earlier boundary (or ``start``) down
    to its own boundary; the last stage down to 0. A stage whose first sigma is not above its boundary owns no
    part of the schedule."""
    ranges, upper = [], float(start)
    for boundary in list(boundaries) + [0.0]:
        lower = min(max(float(boundary), 0.0), upper)
        ranges.append((upper, lower))
        upper = lower
    return ranges


def validate_stage_counts(counts: Sequence[int], boundaries: Sequence[float], names: Sequence[str],
                          start: float, denoise: float) -> None:
    """Raise for a count of 0 on a model that owns part of the schedule, and a count on one that owns none.

    Args:
        boundaries: each handing stage's boundary sigma (``compute_boundary_sigma``).
        start: the schedule's first sigma, where ``denoise`` starts it.
    """
    ranges = compute_stage_ranges(start, boundaries)
    for index, (count, (upper, lower), name) in enumerate(zip(counts, ranges, names)):
        if upper > lower and count == 0:
            raise ValueError(
                f"{NODE_NAME}: {name} runs sigma {upper:.4g} down to {lower:.4g} of this schedule, but "
                f"steps_per_model gives it 0 steps; give it at least 1.")
        if upper <= lower and count > 0:
            boundary = boundaries[index] if index < len(boundaries) else 0.0
            if math.isinf(boundary) and boundary > 0:
                why, fix = "its small_fraction is 0, so the pair never runs it", "give it 0 steps"
            elif start <= boundary:
                why = (f"the schedule starts at sigma {start:.4g} (denoise {denoise:g}), below where it hands "
                       f"over (sigma {boundary:.4g})")
                fix = f"raise denoise until the schedule starts above sigma {boundary:.4g}, or give it 0 steps"
            else:
                why, fix = "the models before it run past where it hands over", "give it 0 steps"
            raise ValueError(f"{NODE_NAME}: {name} gets no steps: {why}, yet steps_per_model gives it {count}. "
                             f"{fix[0].upper()}{fix[1:]}.")


def lay_stage_points(shape: Sequence[float], first: float, last: float) -> list[float]:
    """``shape`` (a scheduler's points in u, falling) stretched linearly so its first point is ``first`` and its
    last ``last``; a single point becomes ``first``."""
    shape = [float(u) for u in shape]
    if len(shape) == 1 or shape[0] == shape[-1]:
        return [float(first)] * len(shape)
    scale = (first - last) / (shape[0] - shape[-1])
    return [last + (u - shape[-1]) * scale for u in shape]


def invert_increasing(function: Callable[[float], float], target: float, high: float) -> float:
    """The x in [0, ``high``] where the increasing ``function`` reaches ``target``, by bisection."""
    low = 0.0
    for _ in range(100):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if function(middle) < target else (low, middle)
    return (low + high) / 2
