"""The one module that installs T-Stitch on a ModelPatcher: wrappers, a callback, additional models.

A stitched model is a clone of the large model that carries the earlier stages (the small
model, and more for nested pairs) as additional models, so ComfyUI's model management loads
and offloads them with it. Two wrappers do the routing:

- OUTER_SAMPLE, once per sampling: prepares each stage's own model options the way
  CFGGuider prepares the main model's, and stores them in a ``StitchRun``.
- PREDICT_NOISE, once per model call and outermost: picks the stage for the call's sigma.
  The large model's calls pass straight through. For an earlier stage the guider runs its own
  predict_noise with that stage's model and model options (and, where they differ, its
  conditioning and CFG scale) in place of the large model's, so guidance, conditioning and the
  sampler's history stay those of the one sampler pass.

With ``offload_idle`` the stages are not additional models: the run hands the model that stops
running back to ComfyUI's model management before it loads the next one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch

import comfy.model_management
import comfy.model_patcher
import comfy.sampler_helpers
import comfy.samplers
from comfy.patcher_extension import CallbacksMP, WrapperExecutor, WrappersMP, get_all_wrappers, merge_nested_dicts

from ..tstitch_core import (SwitchRule, compute_runtime_additions, count_stage_steps, describe_stage_steps,
                            pick_stage, validate_stage_order)
from ._progress import report_progress_text
from ._schedule import switch_points, timestep_function

TSTITCH_KEY = "tstitch"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """A model that runs before the large one, with the rule for when it hands over."""

    patcher: comfy.model_patcher.ModelPatcher
    rule: SwitchRule
    takes_control: bool  # its blocks line up with the large model's, so ControlNet residuals fit


@dataclass(frozen=True)
class StitchPlan:
    """The stages that run before the stitched model's own (large) model, in trajectory order."""

    stages: tuple[Stage, ...]
    offload_idle: bool = False


@dataclass(frozen=True)
class StageGuidance:
    """Conditioning (processed for the stage's model) and CFG scale a guider gives one stage."""

    conds: dict
    cfg: float


def get_plan(model: comfy.model_patcher.ModelPatcher) -> StitchPlan | None:
    return model.get_attachment(TSTITCH_KEY)


def stitch_models(small: comfy.model_patcher.ModelPatcher, large: comfy.model_patcher.ModelPatcher,
                  rule: SwitchRule, takes_control, offload_idle: bool = False) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``large`` whose calls go to ``small`` where ``rule`` says; pairs on either side are flattened.

    ``takes_control(patcher)`` tells whether a stage's blocks line up with ``large``'s.
    """
    small_plan, large_plan = get_plan(small), get_plan(large)
    small_model = strip_stitch(small) if small_plan else small.clone()
    stages = (small_plan.stages if small_plan else ()) + (Stage(small_model, rule, False),)
    stages += large_plan.stages if large_plan else ()
    validate_stage_order([stage.rule for stage in stages])
    stages = tuple(replace(stage, takes_control=takes_control(stage.patcher)) for stage in stages)
    offload_idle = offload_idle or any(p.offload_idle for p in (small_plan, large_plan) if p)
    stitched = large.clone()
    install_plan(stitched, StitchPlan(stages, offload_idle))
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
    m.remove_additional_models(TSTITCH_KEY)
    if not plan.offload_idle:  # loaded with the large model, at once
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


def model_label(index: int, count: int, patcher: comfy.model_patcher.ModelPatcher) -> str:
    role = {0: "small model", count - 1: "large model"}.get(index, f"model {index + 1} of {count}")
    return f"{role} ({type(patcher.model.model_config).__name__})"


class StitchRun:
    """Per-sampling state: each stage's prepared model options, switch points, and which model runs."""

    def __init__(self, plan: StitchPlan, guider: comfy.samplers.CFGGuider):
        self.plan = plan
        self.main = guider.model_patcher
        self.stage_options = []
        for index, stage in enumerate(plan.stages):
            options = comfy.model_patcher.create_model_options_clone(stage.patcher.model_options)
            comfy.sampler_helpers.prepare_model_patcher(stage.patcher, guider.conds, options)
            comfy.samplers.cast_to_load_options(options, device=stage.patcher.load_device,
                                                dtype=stage.patcher.model_dtype())
            self.stage_options.append(options)
        self.patchers = [stage.patcher for stage in plan.stages] + [self.main]
        self.active = None  # the index of the model that ran the last call
        self._points_for = (None, None)  # (sample_sigmas, switch points)
        self._options_for = (None, None)  # (runtime model options, per-stage merged options)
        self._uncontrolled = {}  # id(conds) -> (conds, the same conds without ControlNets)

    def pick(self, guider, timestep, model_options: dict) -> int:
        sample_sigmas = model_options.get("transformer_options", {}).get("sample_sigmas")
        if sample_sigmas is None:
            raise RuntimeError("T-Stitch needs the sampler's schedule in transformer_options['sample_sigmas']; "
                               "this sampler did not provide it.")
        model_sampling = guider.inner_model.model_sampling
        timestep_of = timestep_function(model_sampling)
        if self._points_for[0] is not sample_sigmas:
            sigmas = sample_sigmas.tolist()
            points = switch_points(self.plan, model_sampling, sigmas)
            self._points_for = (sample_sigmas, points)
            self.step_ranges = describe_stage_steps(count_stage_steps(points, sigmas, timestep_of))
            log.info("T-Stitch: %s", "; ".join(f"{model_label(i, len(self.patchers), p)} {r}"
                                                for i, (p, r) in enumerate(zip(self.patchers, self.step_ranges))))
        return pick_stage(self._points_for[1], float(timestep.reshape(-1)[0]), timestep_of)

    def switch_to(self, index: int, x: torch.Tensor, conds: dict) -> None:
        """Make model ``index`` the running one: tell the user, and load what it needs through ComfyUI."""
        if index == self.active:
            return
        report_progress_text(f"T-Stitch: {model_label(index, len(self.patchers), self.patchers[index])}, "
                             f"{self.step_ranges[index]}")
        patcher = self.patchers[index]
        # ControlNets only in a guider's conds for this stage were not loaded with the large model
        cond_models, inference_memory = comfy.sampler_helpers.get_additional_models(conds, patcher.model_dtype())
        models, memory = cond_models, 0
        if self.plan.offload_idle:
            for other in self.patchers:
                if other is not patcher:
                    _release(other)
            models = [patcher, *patcher.get_nested_additional_models(), *cond_models]
            memory = comfy.sampler_helpers.estimate_memory(patcher, x.shape, conds)[0] + inference_memory
        if models:
            comfy.model_management.load_models_gpu(models, memory_required=memory)
        self.active = index

    def options_for_stage(self, index: int, model_options: dict, guider) -> dict:
        if self._options_for[0] is not model_options:
            # what the sampler added on top of the guider's options reaches every stage
            additions = compute_runtime_additions(model_options, guider.model_options)
            merged = [merge_nested_dicts(options, additions) for options in self.stage_options]
            self._options_for = (model_options, merged)
        return self._options_for[1][index]

    def conds_for_stage(self, index: int, conds: dict) -> dict:
        """``conds`` as stage ``index`` can take them: without ControlNets whose residuals don't fit its blocks."""
        if self.plan.stages[index].takes_control or not _has_control(conds):
            return conds
        if id(conds) not in self._uncontrolled:
            log.warning("T-Stitch: the %s has other blocks than the large model, so ControlNets and T2I adapters "
                        "apply to the large model's steps only.",
                        model_label(index, len(self.patchers), self.patchers[index]))
            stripped = {kind: [{k: v for k, v in c.items() if k != "control"} for c in entries]
                        for kind, entries in conds.items()}
            self._uncontrolled[id(conds)] = (conds, stripped)  # holding conds keeps its id from being reused
        return self._uncontrolled[id(conds)][1]

    def restore(self) -> None:
        for stage, options in zip(self.plan.stages, self.stage_options):
            comfy.samplers.cast_to_load_options(options, device=stage.patcher.offload_device)
            stage.patcher.restore_hook_patches()
            if self.plan.offload_idle:  # ComfyUI cleans up the additional models it loaded, not these
                stage.patcher.cleanup()


def _has_control(conds: dict) -> bool:
    return any("control" in c for entries in conds.values() for c in entries)


def _release(patcher: comfy.model_patcher.ModelPatcher) -> None:
    # model management unloads what keep_loaded leaves out: here the model and its clones alone
    keep = [loaded for loaded in comfy.model_management.current_loaded_models
            if loaded.model is None or not loaded.model.is_clone(patcher)]
    comfy.model_management.free_memory(1e30, patcher.load_device, keep_loaded=keep)


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
        run.switch_to(index, x, guider.conds)
        return executor(x, timestep, model_options, seed)
    guidance = guider.stage_guidance(index) if hasattr(guider, "stage_guidance") else None
    conds = run.conds_for_stage(index, guidance.conds if guidance else guider.conds)
    run.switch_to(index, x, conds)
    options = run.options_for_stage(index, model_options, guider)
    stage_executor = WrapperExecutor.new_class_executor(
        guider.predict_noise, guider, get_all_wrappers(WrappersMP.PREDICT_NOISE, options, is_model_options=True))
    swapped = {"inner_model": run.plan.stages[index].patcher.model, "conds": conds,
               "cfg": guidance.cfg if guidance else guider.cfg}
    saved = {name: getattr(guider, name) for name in swapped}
    try:
        for name, value in swapped.items():
            setattr(guider, name, value)
        return stage_executor.execute(x, timestep, options, seed)
    finally:
        for name, value in saved.items():
            setattr(guider, name, value)


def _pre_run_stages(patcher: comfy.model_patcher.ModelPatcher) -> None:
    # ComfyUI calls pre_run on the sampled model only; stages need it to own their model
    for stage in get_plan(patcher).stages:
        stage.patcher.pre_run()
