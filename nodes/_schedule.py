"""Where a stitched model's stages switch on a given schedule, read with the large model's own conversions."""

from __future__ import annotations

import torch

from ..tstitch_core import assign_steps, compute_switch_point


def timestep_function(model_sampling):
    """sigma -> the timestep the model itself sees for it."""
    return lambda sigma: float(model_sampling.timestep(torch.tensor([sigma], dtype=torch.float32)).reshape(-1)[0])


def switch_points(plan, model_sampling, sigmas: list[float]) -> list:
    timestep_of = timestep_function(model_sampling)
    timestep_max = timestep_of(float(model_sampling.sigma_max))
    return [compute_switch_point(stage.rule, sigmas, timestep_max) for stage in plan.stages]


def stage_of_each_step(plan, model_sampling, sigmas: list[float]) -> list[int]:
    return assign_steps(switch_points(plan, model_sampling, sigmas), sigmas, timestep_function(model_sampling))
