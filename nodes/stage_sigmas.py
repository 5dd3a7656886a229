"""TStitchStageSigmas: a schedule on which each model of a pair runs exactly its own number of steps."""

from __future__ import annotations

import comfy.model_management
import comfy.samplers
import comfy.utils
import torch
from comfy_api.latest import io

from ..tstitch_core import (SWITCH_BY_STEPS, compute_boundary_sigma, compute_stage_ranges, count_stage_steps,
                            invert_increasing, lay_stage_points, parse_step_counts, validate_stage_counts,
                            validate_steps_rule_counts)
from ..tstitch_core.stage_sigmas import NODE_NAME
from ._patching import get_plan
from ._run import stage_labels
from ._schedule import sampler_sigmas, switch_points, timestep_function, timestep_max
from ._schema import TWO_MODEL_ALIASES, schema

SPACING = (
    "Spaces each stage as this scheduler spaces a schedule of its own, with that stage's model sampling (its own "
    "shift). With one shift on all models, normal (SD) and simple (Wan) give back their own schedule for a "
    "switch_by steps split.")


def stage_points(model_sampling, scheduler: str, steps: int, first: float, boundary: float,
                 tick=lambda: None) -> list[float]:
    """The sigmas a stage's ``steps`` steps start from, between ``first`` and ``boundary`` (0 for the last stage);
    ``tick()`` after each sigma inverted (for progress, and to stop on Cancel)."""
    handing = boundary > 0
    shape = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps + handing).tolist()
    if len(shape) != steps + handing + 1:
        raise ValueError(f"{NODE_NAME}: the {scheduler} scheduler gives {len(shape) - 1} steps where {steps + handing} "
                         "were asked for; choose another scheduler.")
    t_max = timestep_max(model_sampling)
    # u -> sigma is ComfyUI's own sigma(t), as the schedulers use it; sigma -> u its inverse, by bisection
    sigma_of = lambda u: float(model_sampling.sigma(torch.tensor(u * t_max, dtype=torch.float32)))
    def u_of(sigma):
        tick()
        return invert_increasing(sigma_of, float(sigma), 1.0)

    if handing:
        laid = lay_stage_points([u_of(sigma) for sigma in shape[:steps + 1]], u_of(first), u_of(boundary))
    else:  # stretched towards u = 0, which stays: the scheduler's own end can lie above a low boundary
        laid = lay_stage_points([u_of(sigma) for sigma in shape[:steps]] + [0.0], u_of(first), 0.0)
    return [first, *(sigma_of(u) for u in laid[1:-1])]


def pair_to_lay_out(model, guider):
    """The pair the sigmas are laid out for: ``model``, or the model ``guider`` samples; a ValueError otherwise."""
    if (model is None) == (guider is None):
        raise ValueError(f"{NODE_NAME}: connect one of model (from T-Stitch Model Pair) or guider (from T-Stitch "
                         f"Guider, or a guider of a pair); {'both are' if model is not None else 'neither is'} "
                         "connected.")
    pair = model if model is not None else getattr(guider, "model_patcher", None)
    if pair is None or get_plan(pair) is None:
        fix = ("model is not a T-Stitch pair; connect the output of T-Stitch Model Pair" if model is not None else
               "guider does not sample a T-Stitch pair; connect T-Stitch Guider, or a guider of T-Stitch Model Pair")
        raise ValueError(f"{NODE_NAME}: the {fix}.")
    return pair


def stage_sigmas(model, scheduler: str, counts: list[int], denoise: float) -> torch.Tensor:
    plan = get_plan(model)
    models = [stage.patcher for stage in plan.stages] + [model]
    patchers = [models[index] for index in plan.stage_models]  # each stage's model (one may run two stages)
    model_sampling = model.get_model_object("model_sampling")
    schedule = sampler_sigmas(model, sum(counts), "euler", scheduler, denoise).tolist()
    if len(schedule) < 2:
        raise ValueError(f"{NODE_NAME}: denoise {denoise:g} leaves no steps; raise it above 0.")
    validate_steps_rule_counts(counts, [rule.small_fraction if rule.switch_by == SWITCH_BY_STEPS else None
                                        for rule in plan.rules])
    timestep_of = timestep_function(model_sampling)
    # the pair reads its switches with the large model's conversions, so the boundaries are read with them too
    boundaries = [compute_boundary_sigma(point, timestep_of, float(model_sampling.sigma_max))
                  for point in switch_points(plan, model_sampling, schedule)]
    names = stage_labels(plan, model)
    validate_stage_counts(counts, boundaries, names, schedule[0], denoise)
    # ~2 ms a sigma (a bisection each): 10000 steps take a while, so show it and let Cancel stop it
    progress = comfy.utils.ProgressBar(sum(counts) + 2 * len(counts))

    def tick():
        comfy.model_management.throw_exception_if_processing_interrupted()
        progress.update(1)

    sigmas = [sigma for (first, boundary), count, patcher in zip(compute_stage_ranges(schedule[0], boundaries),
                                                                  counts, patchers) if count
              for sigma in stage_points(patcher.get_model_object("model_sampling"), scheduler, count, first,
                                        boundary, tick)] + [0.0]
    sigmas = torch.tensor(sigmas, dtype=torch.float32)
    got = count_stage_steps(switch_points(plan, model_sampling, sigmas.tolist()), sigmas.tolist(), timestep_of)
    if got != counts or not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError(f"{NODE_NAME}: with the {scheduler} scheduler the stages overlap (steps per model "
                         f"{got}, not {counts}); choose another scheduler or fewer steps.")
    return sigmas


class TStitchStageSigmas(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchStageSigmas",
            display_name="T-Stitch Stage Sigmas",
            search_aliases=[*TWO_MODEL_ALIASES, "sigmas", "steps per model", "stage steps"],
            description=(
                "Sigmas on which each model of a T-Stitch pair runs exactly its own number of steps, for "
                "SamplerCustom or SamplerCustomAdvanced with the pair, or with the guider that samples (T-Stitch "
                "Guider): the stages meet where it hands over."),
            inputs=[
                io.Model.Input("model", optional=True, tooltip=(
                    "A pair (or nested pair), from T-Stitch Model Pair; sample it with these sigmas. Connect this or "
                    "guider.")),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip=SPACING),
                io.String.Input("steps_per_model", default="2, 4", tooltip=(
                    "One step count per model, smallest (first) model first: \"2, 4\"; for T-Stitch Stages one per "
                    "stage, in order. Each model that owns part of the schedule needs at least 1. With switch_by "
                    "steps the counts must be the pair's split.")),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=(
                    "As KSampler's: the schedule starts where the large model's schedule of the total steps at "
                    "this denoise starts; a model whose whole part lies above that start gets no steps and must "
                    "be given 0.")),
                # last, so that saved workflows keep their inputs' places
                io.Guider.Input("guider", optional=True, tooltip=(
                    "Or the guider these sigmas are for: a T-Stitch Guider (its small_fraction and switch_by are read "
                    "from it), or any guider of a pair.")),
            ],
            outputs=[io.Sigmas.Output(tooltip="The sigmas, for SamplerCustom / SamplerCustomAdvanced with the pair.")],
        )

    @classmethod
    def execute(cls, scheduler, steps_per_model, denoise=1.0, model=None, guider=None) -> io.NodeOutput:
        model = pair_to_lay_out(model, guider)
        counts = parse_step_counts(steps_per_model, len(get_plan(model).rules) + 1)
        return io.NodeOutput(stage_sigmas(model, scheduler, counts, denoise))
