"""Where a stitched model's stages switch on a given schedule, read with the large model's own conversions."""

from __future__ import annotations

import torch

import comfy.samplers

from ..tstitch_core import assign_steps, compute_switch_point
from ..tstitch_core.validation import validate_denoise


def timestep_function(model_sampling):
    """sigma -> the timestep the model itself sees for it."""
    return lambda sigma: float(model_sampling.timestep(torch.tensor([sigma], dtype=torch.float32)).reshape(-1)[0])


def timestep_max(model_sampling) -> float:
    """T: the timestep at the largest sigma, which the timestep rule divides by."""
    return timestep_function(model_sampling)(float(model_sampling.sigma_max))


def switch_points(plan, model_sampling, sigmas: list[float]) -> list:
    """One per stage but the last, in trajectory order."""
    return [compute_switch_point(rule, sigmas, timestep_max(model_sampling)) for rule in plan.rules]


def stage_of_each_step(plan, model_sampling, sigmas: list[float]) -> list[int]:
    return assign_steps(switch_points(plan, model_sampling, sigmas), sigmas, timestep_function(model_sampling))


def sampler_sigmas(model, steps: int, sampler_name: str, scheduler: str, denoise: float) -> torch.Tensor:
    """The sigmas KSampler samples for these settings, on the CPU: with the sampler, since dpm_2, dpm_2_ancestral,
    uni_pc and uni_pc_bh2 run a schedule of steps + 1 with the penultimate sigma left out."""
    validate_denoise(steps, denoise)
    return comfy.samplers.KSampler(model, steps, "cpu", sampler=sampler_name, scheduler=scheduler,
                                   denoise=denoise).sigmas


def stages_on_schedule(stitched, plan, steps: int, sampler_name: str, scheduler: str,
                       denoise: float) -> tuple[list[float], list[int]]:
    """(sigmas, stage of each step) of the schedule KSampler would run with ``stitched``; the stitched model
    itself, the last stage, is index len(plan.rules)."""
    sigmas = sampler_sigmas(stitched, steps, sampler_name, scheduler, denoise).tolist()
    return sigmas, stage_of_each_step(plan, stitched.get_model_object("model_sampling"), sigmas)
