"""The one module that installs T-Stitch on a ModelPatcher: wrappers, a callback, additional models.

A stitched model is a clone of the large model that carries the earlier stages (the small
model, and more for nested pairs) as additional models, so ComfyUI's model management loads
and offloads them with it. Two wrappers do the routing:

- OUTER_SAMPLE, once per sampling: prepares each stage's own model options the way
  CFGGuider prepares the main model's, and stores them in a ``StitchRun``.
- PREDICT_NOISE, once per model call and outermost: picks the stage for the call's sigma.
  The large model's calls pass straight through. For an earlier stage the guider runs its own
  predict_noise with that stage's model and model options in place of the large model's, so
  guidance, conditioning and the sampler's history stay those of the one sampler pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

import comfy.model_patcher
import comfy.sampler_helpers
import comfy.samplers
from comfy.patcher_extension import CallbacksMP, WrapperExecutor, WrappersMP, get_all_wrappers, merge_nested_dicts

from ..tstitch_core import (SwitchRule, compute_runtime_additions, compute_switch_point, count_stage_steps, pick_stage,
                           validate_stage_order)

TSTITCH_KEY = "tstitch"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """A model that runs before the large one, with the rule for when it hands over."""

    patcher: comfy.model_patcher.ModelPatcher
    rule: SwitchRule


@dataclass(frozen=True)
class StitchPlan:
    """The stages that run before the stitched model's own (large) model, in trajectory order."""

    stages: tuple[Stage, ...]


def get_plan(model: comfy.model_patcher.ModelPatcher) -> StitchPlan | None:
    return model.get_attachment(TSTITCH_KEY)


def stitch_models(small: comfy.model_patcher.ModelPatcher, large: comfy.model_patcher.ModelPatcher,
                  rule: SwitchRule) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``large`` whose calls go to ``small`` where ``rule`` says; pairs on either side are flattened."""
    small_plan, large_plan = get_plan(small), get_plan(large)
    small_stages = small_plan.stages + (Stage(strip_stitch(small), rule),) if small_plan else (Stage(small.clone(), rule),)
    stages = small_stages + (large_plan.stages if large_plan else ())
    validate_stage_order([stage.rule for stage in stages])
    stitched = large.clone()
    install_plan(stitched, StitchPlan(stages))
    return stitched


def strip_stitch(model: comfy.model_patcher.ModelPatcher) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``model`` without anything T-Stitch installed on it."""
    m = model.clone()
    for wrapper_type in (WrappersMP.OUTER_SAMPLE, WrappersMP.PREDICT_NOISE):
        m.remove_wrappers_with_key(wrapper_type, TSTITCH_KEY)
    m.remove_callbacks_with_key(CallbacksMP.ON_PRE_RUN, TSTITCH_KEY)
    m.remove_additional_models(TSTITCH_KEY)
    m.remove_attachments(TSTITCH_KEY)
    return m


def install_plan(m: comfy.model_patcher.ModelPatcher, plan: StitchPlan) -> None:
    """Install ``plan`` on ``m``, replacing any plan it had (so re-stitching never stacks wrappers)."""
    m.remove_wrappers_with_key(WrappersMP.OUTER_SAMPLE, TSTITCH_KEY)
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, TSTITCH_KEY, _outer_sample_wrapper)
    _add_outermost_wrapper(m, WrappersMP.PREDICT_NOISE, _predict_noise_wrapper)
    m.remove_callbacks_with_key(CallbacksMP.ON_PRE_RUN, TSTITCH_KEY)
    m.add_callback_with_key(CallbacksMP.ON_PRE_RUN, TSTITCH_KEY, _pre_run_stages)
    m.set_additional_models(TSTITCH_KEY, [stage.patcher for stage in plan.stages])
    m.set_attachments(TSTITCH_KEY, plan)


def _add_outermost_wrapper(m: comfy.model_patcher.ModelPatcher, wrapper_type: str, wrapper) -> None:
    # the large model's own wrappers of this type must run inside ours, for its calls only
    others = {key: list(m.get_wrappers(wrapper_type, key)) for key in m.wrappers.get(wrapper_type, {})
              if key != TSTITCH_KEY}
    for key in [TSTITCH_KEY, *others]:
        m.remove_wrappers_with_key(wrapper_type, key)
    m.add_wrapper_with_key(wrapper_type, TSTITCH_KEY, wrapper)
    for key, wrappers in others.items():
        for w in wrappers:
            m.add_wrapper_with_key(wrapper_type, key, w)


class StitchRun:
    """Per-sampling state: each stage's prepared model options and the resolved switch points."""

    def __init__(self, plan: StitchPlan, guider: comfy.samplers.CFGGuider):
        self.plan = plan
        self.stage_options = []
        for stage in plan.stages:
            options = comfy.model_patcher.create_model_options_clone(stage.patcher.model_options)
            comfy.sampler_helpers.prepare_model_patcher(stage.patcher, guider.conds, options)
            comfy.samplers.cast_to_load_options(options, device=stage.patcher.load_device,
                                                dtype=stage.patcher.model_dtype())
            self.stage_options.append(options)
        self._points_for = (None, None)  # (sample_sigmas, switch points)
        self._options_for = (None, None)  # (runtime model options, per-stage merged options)

    def pick(self, guider, timestep, model_options: dict) -> int:
        sample_sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        if sample_sigmas is None:
            raise RuntimeError("T-Stitch needs the sampler's schedule in transformer_options['sample_sigmas']; "
                               "this sampler did not provide it.")
        timestep_of = _timestep_function(guider.inner_model.model_sampling)
        if self._points_for[0] is not sample_sigmas:
            sigmas = sample_sigmas.tolist()
            timestep_max = timestep_of(float(guider.inner_model.model_sampling.sigma_max))
            points = [compute_switch_point(s.rule, sigmas, timestep_max) for s in self.plan.stages]
            self._points_for = (sample_sigmas, points)
            log.info("T-Stitch: steps per model, first to last: %s", count_stage_steps(points, sigmas, timestep_of))
        return pick_stage(self._points_for[1], float(timestep.reshape(-1)[0]), timestep_of)

    def options_for_stage(self, index: int, model_options: dict, guider) -> dict:
        if self._options_for[0] is not model_options:
            # what the sampler added on top of the guider's options reaches every stage
            additions = compute_runtime_additions(model_options, guider.model_options)
            merged = [merge_nested_dicts(options, additions) for options in self.stage_options]
            self._options_for = (model_options, merged)
        return self._options_for[1][index]

    def restore(self) -> None:
        for stage, options in zip(self.plan.stages, self.stage_options):
            comfy.samplers.cast_to_load_options(options, device=stage.patcher.offload_device)
            stage.patcher.restore_hook_patches()


def _timestep_function(model_sampling):
    # the timestep the model itself sees for a sigma
    return lambda sigma: float(model_sampling.timestep(torch.tensor([sigma], dtype=torch.float32)).reshape(-1)[0])


def _outer_sample_wrapper(executor, *args, **kwargs):
    guider = executor.class_obj
    run = StitchRun(get_plan(guider.model_patcher), guider)
    guider_options = guider.model_options
    guider.model_options = comfy.model_patcher.create_model_options_clone(guider_options)
    guider.model_options["transformer_options"][TSTITCH_KEY] = run
    try:
        return executor(*args, **kwargs)
    finally:
        guider.model_options = guider_options
        run.restore()


def _predict_noise_wrapper(executor, x, timestep, model_options, seed=None):
    guider = executor.class_obj
    run: StitchRun | None = model_options.get("transformer_options", {}).get(TSTITCH_KEY)
    if run is None:
        raise RuntimeError("A T-Stitch model was called outside a sampling run: sample it through a "
                           "ComfyUI sampler or guider (CFGGuider.sample), which prepares both models.")
    index = run.pick(guider, timestep, model_options)
    if index == len(run.plan.stages):
        return executor(x, timestep, model_options, seed)
    options = run.options_for_stage(index, model_options, guider)
    stage_executor = WrapperExecutor.new_class_executor(
        guider.predict_noise, guider, get_all_wrappers(WrappersMP.PREDICT_NOISE, options, is_model_options=True))
    main_model = guider.inner_model
    guider.inner_model = run.plan.stages[index].patcher.model
    try:
        return stage_executor.execute(x, timestep, options, seed)
    finally:
        guider.inner_model = main_model


def _pre_run_stages(patcher: comfy.model_patcher.ModelPatcher) -> None:
    # ComfyUI calls pre_run on the sampled model only; stages need it to own their model
    for stage in get_plan(patcher).stages:
        stage.patcher.pre_run()
