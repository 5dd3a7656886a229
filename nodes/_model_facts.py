"""Reading what the stitching checks compare off a ModelPatcher, and running them."""

from __future__ import annotations

import logging

import comfy.model_patcher

from ..tstitch_core import (SWITCH_BY_TIMESTEP, ModelFacts, SwitchRule, check_blocks_line_up,
                           describe_sigma_range_mismatch, validate_pair, validate_timestep_range)
from ._dit import is_dit
from ._patching import get_plan

log = logging.getLogger(__name__)


def read_input_width(unet_config: dict) -> int | None:
    """The channels the model's input layer takes: UNets (SD1.x, SDXL) keep it as in_channels, Wan as in_dim."""
    width = unet_config.get("in_channels", unet_config.get("in_dim"))
    return None if width is None else int(width)


def read_model_facts(model: comfy.model_patcher.ModelPatcher, role: str) -> ModelFacts:
    model_sampling = model.get_model_object("model_sampling")
    latent_format = model.get_model_object("latent_format")
    # the class whose noise_scaling applies fixes what a sigma means
    noise_scaling = next(c.__name__ for c in type(model_sampling).__mro__ if "noise_scaling" in vars(c))
    return ModelFacts(
        name=f"{role} ({type(model.model.model_config).__name__})",
        latent_format=type(latent_format).__name__,
        latent_channels=int(latent_format.latent_channels),
        in_channels=read_input_width(model.model.model_config.unet_config),
        noise_scaling=noise_scaling,
        sigma_min=float(model_sampling.sigma_min),
        sigma_max=float(model_sampling.sigma_max),
        conditioning="a class label (ImageNet Class or Class Index node)" if is_dit(model) else "a text prompt",
    )


def check_stitchable(small: comfy.model_patcher.ModelPatcher, large: comfy.model_patcher.ModelPatcher,
                     rule: SwitchRule) -> None:
    """Raise ``ValueError`` when ``small`` (or any stage of it) cannot share a trajectory with ``large``."""
    large_facts = read_model_facts(large, "large_model")
    rules = [rule] + [stage.rule for stage in (*_stages(small), *_stages(large))]
    if any(r.switch_by == SWITCH_BY_TIMESTEP for r in rules):
        # timestep rules read the timesteps of the large model, whose sigmas the sampler runs
        model_sampling = large.get_model_object("model_sampling")
        validate_timestep_range(large_facts.name, float(model_sampling.timestep(model_sampling.sigma_min)),
                                float(model_sampling.timestep(model_sampling.sigma_max)))
    candidates = [("small_model", small)]
    candidates += [("a model inside small_model", stage.patcher) for stage in _stages(small)]
    candidates += [("a model inside large_model", stage.patcher) for stage in _stages(large)]
    owners = {id(large.model): "large_model"}
    for role, model in candidates:
        if id(model.model) in owners:
            raise ValueError(
                f"{role} and {owners[id(model.model)]} are the same loaded model: T-Stitch runs both in one "
                "sampling pass, so each needs its own weights. Load the small model from its own checkpoint.")
        owners[id(model.model)] = role
        facts = read_model_facts(model, role)
        validate_pair(facts, large_facts)
        warning = describe_sigma_range_mismatch(facts, large_facts)
        if warning:
            log.warning("T-Stitch: %s", warning)


def _stages(model: comfy.model_patcher.ModelPatcher):
    plan = get_plan(model)
    return plan.stages if plan else ()


def blocks_line_up(model: comfy.model_patcher.ModelPatcher, large: comfy.model_patcher.ModelPatcher) -> bool:
    """Whether ControlNets made for ``large`` fit ``model``'s blocks (SSD-1B-style pruning: yes; BK-SDM: no)."""
    return check_blocks_line_up(model.model.model_config.unet_config, large.model.model_config.unet_config)


def check_stage_models(named: list[tuple[str, comfy.model_patcher.ModelPatcher]], rules: list[SwitchRule]) -> None:
    """Raise ``ValueError`` when the models of T-Stitch Stages (name, patcher; the same patcher may come twice)
    cannot share a trajectory: every distinct model against the last, whose model sampling sets the schedule."""
    *_, (last_name, last) = named
    if any(r.switch_by == SWITCH_BY_TIMESTEP for r in rules):
        model_sampling = last.get_model_object("model_sampling")
        validate_timestep_range(last_name, float(model_sampling.timestep(model_sampling.sigma_min)),
                                float(model_sampling.timestep(model_sampling.sigma_max)))
    last_facts = read_model_facts(last, last_name)
    seen: list[tuple[str, comfy.model_patcher.ModelPatcher]] = []
    for name, model in named:
        if any(model is other for _, other in seen):
            continue  # the same model in another stage: one model, checked once
        for other_name, other in seen:
            if model.model is other.model:
                raise ValueError(
                    f"T-Stitch Stages: {name} and {other_name} are the same loaded weights with different patches "
                    "(a LoRA or a ModelSampling node on one of them, say), which can't both be loaded at once. For a "
                    "model that runs more than one stage, connect one and the same output to both inputs.")
        seen.append((name, model))
        if model is not last:
            facts = read_model_facts(model, name)
            validate_pair(facts, last_facts)
            warning = describe_sigma_range_mismatch(facts, last_facts)
            if warning:
                log.warning("T-Stitch: %s", warning)
