"""The one module that installs T-Stitch on a ModelPatcher: wrappers, callbacks, additional models.

A stitched model is a clone of the large model that carries the earlier stages (the small
model, and more for nested pairs) in a ``StitchPlan`` attachment, and as additional models
unless ``offload_idle`` is set, so ComfyUI's model management loads them with it. The wrappers
only hand over to ``StitchRun`` (``_run.py``), which owns everything that happens while sampling:

- OUTER_SAMPLE, once per sampling: starts the run (checks, each stage's model options and
  conditioning) and runs each stage's own outer-sample wrappers around the pass.
- PREPARE_SAMPLING, once per sampling: with offload, loads the model whose step comes first
  instead of the large one, which is then loaded when its first step comes; each earlier model
  is loaded inside its own PREPARE_SAMPLING wrappers.
- SAMPLER_SAMPLE, once per sampling: each stage's own sampler-sample wrappers, and the
  denoise mask function of the model whose step it is.
- PREDICT_NOISE, once per model call and outermost: the stage for the call's sigma.
- ON_PRE_RUN: refuses a stitched model prepared by a guider that would never route it.
- ON_CLONE: a clone of the stitched model gets its own clones of the stages; so does a MultiGPU CFG Split
  copy on another device (ON_DEEPCLONE_MULTIGPU, ON_MATCH_MULTIGPU_CLONES), the stages' copies on its device.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import comfy.model_patcher
from comfy.patcher_extension import CallbacksMP, WrappersMP

from ..tstitch_core import SwitchRule, validate_stage_order
from ._run import TSTITCH_KEY, StitchRun, run_of, started_run

__all__ = ["TSTITCH_KEY", "Stage", "StitchPlan", "get_plan", "refuse_stages_in_pair", "stage_models", "stitch_models",
           "unstitched_models"]

_WRAPPERS = (WrappersMP.OUTER_SAMPLE, WrappersMP.PREPARE_SAMPLING, WrappersMP.SAMPLER_SAMPLE, WrappersMP.PREDICT_NOISE)
# a MultiGPU CFG Split copy (ComfyUI 0.33+) is made by a clone, then given copies of the additional models
_DEVICE_COPY_CALLBACKS = tuple(getattr(CallbacksMP, name) for name in ("ON_DEEPCLONE_MULTIGPU", "ON_MATCH_MULTIGPU_CLONES")
                               if hasattr(CallbacksMP, name))
_CALLBACKS = (CallbacksMP.ON_PRE_RUN, CallbacksMP.ON_CLONE, *_DEVICE_COPY_CALLBACKS)


@dataclass(frozen=True)
class Stage:
    """A model that runs before the large one, with the rule for when it hands over."""

    patcher: comfy.model_patcher.ModelPatcher
    rule: SwitchRule
    takes_control: bool  # its blocks line up with the large model's, so ControlNet residuals fit


@dataclass(frozen=True)
class StitchPlan:
    """The models that run before the stitched model's own (large) model, in trajectory order.

    A pair (or nested pair) runs each model once, model i until its own rule hands over. T-Stitch Stages
    may run a model in more than one stage: ``handovers`` then lists, for every stage but the last, the
    index of its model (len(stages) for the stitched model's own) and the rule it hands over by; the last
    stage is the stitched model's own, and ``stages`` holds each earlier model once.
    """

    stages: tuple[Stage, ...]
    offload_idle: bool = False
    handovers: tuple[tuple[int, SwitchRule], ...] | None = None

    @property
    def rules(self) -> tuple[SwitchRule, ...]:
        """The rule each stage but the last hands over by, in trajectory order."""
        if self.handovers is None:
            return tuple(stage.rule for stage in self.stages)
        return tuple(rule for _, rule in self.handovers)

    @property
    def stage_models(self) -> tuple[int, ...]:
        """The model of every stage in trajectory order: an index into ``stages``, len(stages) for the own model."""
        if self.handovers is None:
            return tuple(range(len(self.stages) + 1))
        return tuple(model for model, _ in self.handovers) + (len(self.stages),)

    def with_patchers(self, patchers) -> StitchPlan:
        return replace(self, stages=tuple(replace(s, patcher=p) for s, p in zip(self.stages, patchers, strict=True)))


def get_plan(model: comfy.model_patcher.ModelPatcher) -> StitchPlan | None:
    return model.get_attachment(TSTITCH_KEY)


def stitch_models(small: comfy.model_patcher.ModelPatcher, large: comfy.model_patcher.ModelPatcher,
                  rule: SwitchRule, takes_control, offload_idle: bool = False) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``large`` whose calls go to ``small`` where ``rule`` says; pairs on either side are flattened.

    ``takes_control(patcher)`` tells whether a stage's blocks line up with ``large``'s.
    """
    small_plan = get_plan(small)
    stitched = large.clone()
    large_plan = get_plan(stitched)  # the clone's own copies of the large side's stages
    small_model = _strip_stitch(small) if small_plan else small.clone()
    stages = (small_plan.stages if small_plan else ()) + (Stage(small_model, rule, False),)
    stages += large_plan.stages if large_plan else ()
    validate_stage_order([stage.rule for stage in stages])
    stages = tuple(replace(stage, takes_control=takes_control(stage.patcher)) for stage in stages)
    offload_idle = offload_idle or any(p.offload_idle for p in (small_plan, large_plan) if p)
    _install_plan(stitched, StitchPlan(stages, offload_idle))
    return stitched


def stage_models(models, rules, takes_control, offload_idle: bool = False) -> comfy.model_patcher.ModelPatcher:
    """A clone of the last of ``models`` that runs ``models[k]`` until ``rules[k]`` hands over; a model passed more
    than once (the same patcher) is one model, loaded once, that runs each of its stages."""
    *earlier, last = models
    distinct = []
    for model in earlier:
        if model is not last and all(model is not d for d in distinct):
            distinct.append(model)
    index_of = lambda model: len(distinct) if model is last else next(i for i, d in enumerate(distinct) if d is model)
    first_rule = {id(model): rule for model, rule in reversed(list(zip(earlier, rules)))}
    stages = tuple(Stage(model.clone(), first_rule[id(model)], takes_control(model)) for model in distinct)
    stitched = last.clone()
    _install_plan(stitched, StitchPlan(stages, offload_idle, tuple((index_of(m), r) for m, r in zip(earlier, rules))))
    return stitched


def refuse_stages_in_pair(small: comfy.model_patcher.ModelPatcher, large: comfy.model_patcher.ModelPatcher) -> None:
    """Raise when either side of a pair is a T-Stitch Stages model, whose stages a pair can't nest."""
    for model, role in ((small, "small_model"), (large, "large_model")):
        plan = get_plan(model)
        if plan is not None and plan.handovers is not None:
            raise ValueError(f"T-Stitch: {role} is a T-Stitch Stages model, which a pair can't take apart. Connect "
                             "its models to one T-Stitch Stages node instead (up to four stages), and sample its "
                             "output directly.")


def unstitched_models(model: comfy.model_patcher.ModelPatcher) -> list[comfy.model_patcher.ModelPatcher]:
    """Every model of ``model`` in trajectory order, each on its own: a pair's stages, then its own (large) model
    as a clone without T-Stitch; a model that is not a pair, as it is."""
    plan = get_plan(model)
    if plan is not None and plan.handovers is not None:
        raise ValueError("T-Stitch: a T-Stitch Stages model runs its models in an order of its own, so it can't be "
                         "taken apart into models here; connect the models themselves (or a pair).")
    return [model] if plan is None else [stage.patcher for stage in plan.stages] + [_strip_stitch(model)]


def _strip_stitch(model: comfy.model_patcher.ModelPatcher) -> comfy.model_patcher.ModelPatcher:
    """A clone of ``model`` without anything T-Stitch installed on it."""
    m = model.clone()
    for wrapper_type in _WRAPPERS:
        m.remove_wrappers_with_key(wrapper_type, TSTITCH_KEY)
    for callback_type in _CALLBACKS:
        m.remove_callbacks_with_key(callback_type, TSTITCH_KEY)
    m.remove_additional_models(TSTITCH_KEY)
    m.remove_attachments(TSTITCH_KEY)
    return m


def _install_plan(m: comfy.model_patcher.ModelPatcher, plan: StitchPlan) -> None:
    """Install ``plan`` on ``m``, replacing any plan it had (so re-stitching never stacks wrappers)."""
    for wrapper_type, wrapper in ((WrappersMP.OUTER_SAMPLE, _outer_sample_wrapper),
                                  (WrappersMP.PREPARE_SAMPLING, _prepare_sampling_wrapper),
                                  (WrappersMP.SAMPLER_SAMPLE, _sampler_sample_wrapper)):
        m.remove_wrappers_with_key(wrapper_type, TSTITCH_KEY)
        m.add_wrapper_with_key(wrapper_type, TSTITCH_KEY, wrapper)
    _add_outermost_wrapper(m, WrappersMP.PREDICT_NOISE, _predict_noise_wrapper)
    for callback_type, callback in ((CallbacksMP.ON_PRE_RUN, _pre_run), (CallbacksMP.ON_CLONE, _follow_clone),
                                    *((t, _follow_clone) for t in _DEVICE_COPY_CALLBACKS)):
        m.remove_callbacks_with_key(callback_type, TSTITCH_KEY)
        m.add_callback_with_key(callback_type, TSTITCH_KEY, callback)
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


def _follow_clone(original: comfy.model_patcher.ModelPatcher, clone: comfy.model_patcher.ModelPatcher) -> None:
    # ComfyUI cloned the additional models (or copied them to a MultiGPU copy's device); the plan must name those
    # clones, not the original's stages
    plan = get_plan(clone)
    if plan is None:
        return
    if plan.offload_idle:
        patchers = [stage.patcher.clone() for stage in plan.stages]
    else:
        patchers = clone.get_additional_models_with_key(TSTITCH_KEY)
    clone.set_attachments(TSTITCH_KEY, plan.with_patchers(patchers))


def _outer_sample_wrapper(executor, *args, **kwargs):
    guider = executor.class_obj
    with started_run(get_plan(guider.model_patcher), guider, *args, **kwargs) as run:
        return run.sample(executor, args, kwargs)


def _prepare_sampling_wrapper(executor, model, noise_shape, conds, model_options=None, **kwargs):
    # with offload, loading the large model before the small model's steps would be a load for nothing: the
    # first model to run is loaded instead (with what the conditioning needs), the large model's BaseModel is
    # still the guider's, and its weights come when its first step does (StitchRun.activate); each earlier
    # model loaded runs its own PREPARE_SAMPLING wrappers
    run = (model_options or {}).get("transformer_options", {}).get(TSTITCH_KEY)
    if run is None:
        return executor(model, noise_shape, conds, model_options=model_options, **kwargs)
    return run.prepare_sampling(executor, model, noise_shape, conds, model_options=model_options, **kwargs)


def _sampler_sample_wrapper(executor, guider, sigmas, extra_args, *args, **kwargs):
    return run_of(extra_args["model_options"]).sample_with_stage_wrappers(executor, guider, sigmas, extra_args,
                                                                          *args, **kwargs)


def _predict_noise_wrapper(executor, x, timestep, model_options, seed=None):
    return run_of(model_options).predict_noise(executor, x, timestep, model_options, seed)


def _pre_run(patcher: comfy.model_patcher.ModelPatcher) -> None:
    StitchRun.of_main_model(patcher).pre_run(patcher)
