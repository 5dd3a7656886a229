"""One sampling pass of a stitched model: which model runs each call, and with what.

A ``StitchRun`` starts when sampling starts (the stitched model's outer-sample wrapper) and ends
with it. It answers, in one place:

- which model runs a call: ``pick``, from the switch points computed once on the schedule being
  sampled, read with the large model's own model sampling (its object patches, loaded or not);
- with what: each earlier model is a ``StageRun`` that is prepared the way ComfyUI's CFGGuider
  prepares the model it samples (hooks registered with its conditioning, its own outer-sample
  and sampler-sample wrappers around the pass, its conditioning processed by its own model);
  the large model's calls pass through untouched;
- where it runs: ``activate`` loads the model about to run through ComfyUI's model management
  (and, with offload, hands the others back first and estimates its memory inside its own
  PREPARE_SAMPLING wrappers, as prepare_sampling does), and makes it the guider's inner model,
  so anything the sampler reads between calls (model sampling, inpainting, the denoise mask
  function) comes from a loaded model.
"""

from __future__ import annotations

import contextlib
import logging

import torch

import comfy.hooks
import comfy.k_diffusion.sampling
import comfy.model_management
import comfy.model_patcher
import comfy.sampler_helpers
import comfy.samplers
from comfy.patcher_extension import WrapperExecutor, WrappersMP, get_all_wrappers, merge_nested_dicts

from ..tstitch_core import (compute_runtime_additions, count_covered_steps, count_stage_steps, describe_stage_steps,
                            pick_stage, validate_stage_coverage)
from ..tstitch_core.coverage import describe_models_without_steps, validate_last_model_runs
from ..tstitch_core.stages import describe_stage, handover_settings
from ._conditioning import check_conditioning_widths, conditioning_reach
from ._progress import report_progress_text
from ._schedule import switch_points, timestep_function, timestep_max

TSTITCH_KEY = "tstitch"

log = logging.getLogger(__name__)

# the main model of every run in progress, by id: how a callback that only gets a patcher finds its run
_RUNS: dict[int, "StitchRun"] = {}

UNROUTABLE = (
    "T-Stitch: a T-Stitch model was prepared for sampling by a guider that does not sample it as its own model "
    "(for example as DualModelGuider's model_negative), where T-Stitch cannot route its calls: every call would "
    "run the large model. Connect the T-Stitch model as the guider's model (or to KSampler, CFGGuider, "
    "T-Stitch Guider), and give model_negative a plain model.")


def refuse_multigpu_offload(plan, patchers) -> None:
    """Raise when a model of a pass that offloads its idle model carries MultiGPU CFG Split's clones (ComfyUI 0.33+):
    the earlier models' copies on the other GPUs would stay loaded while the large model runs, and the stitched
    model's copies would carry no copies of the earlier models to split their steps with."""
    split = [model_label(i, len(patchers), p) for i, p in enumerate(patchers) if device_copies(p)]
    if split and plan.offload_idle:
        raise ValueError(f"T-Stitch can't offload the idle model (offload_idle_model) while MultiGPU CFG Split is "
                         f"applied to the {' and the '.join(split)}. Turn offload_idle_model off to split the steps "
                         "across GPUs, or remove MultiGPU CFG Split to offload.")


def device_copies(patcher) -> list:
    """``patcher``'s copies on other devices made by MultiGPU CFG Split (none on hosts older than 0.33)."""
    return [p for p in patcher.get_additional_models_with_key("multigpu") if getattr(p, "is_multigpu_base_clone", False)]


def model_label(index: int, count: int, patcher: comfy.model_patcher.ModelPatcher) -> str:
    role = {0: "small model", count - 1: "large model"}.get(index, f"model {index + 1} of {count}")
    return f"{role} ({type(patcher.model.model_config).__name__})"


def stage_labels(plan, main: comfy.model_patcher.ModelPatcher) -> list[str]:
    """How logs, progress and previews name each stage of ``plan``: by its model for a pair; by its number, model
    and share of the trajectory for T-Stitch Stages."""
    patchers = [stage.patcher for stage in plan.stages] + [main]
    if plan.handovers is None:
        return [model_label(i, len(patchers), patcher) for i, patcher in enumerate(patchers)]
    # a model is named by the input it first came in by: the stages' inputs are in stage order
    first_stage = {model: plan.stage_models.index(model) for model in plan.stage_models}
    fractions = [rule.small_fraction for rule in plan.rules]
    return [describe_stage(i, f"model_{first_stage[m] + 1}, {type(patchers[m].model.model_config).__name__}", fractions)
            for i, m in enumerate(plan.stage_models)]


def run_of(model_options: dict) -> "StitchRun":
    run = model_options.get("transformer_options", {}).get(TSTITCH_KEY)
    if run is None:
        raise RuntimeError("A T-Stitch model was called outside a sampling run: sample it through a ComfyUI sampler "
                           "or guider (CFGGuider.sample), which prepares all its models.")
    return run


@contextlib.contextmanager
def started_run(plan, guider, noise, latent_image, sampler, sigmas, *args, **kwargs):
    """A run for ``guider``'s stitched model, registered while it lasts; everything it set up is undone after."""
    run = StitchRun(plan, guider, sampler, sigmas)
    key = id(run.main)
    outer = _RUNS.get(key)  # a run of the same model sampled again inside this one's pass (re-entry)
    _RUNS[key] = run
    try:
        yield run
    finally:
        if outer is None:
            _RUNS.pop(key, None)
        else:
            _RUNS[key] = outer
        run.finish()


def run_all(cleanups) -> None:
    """Call each of ``cleanups``, every one even when one before it raised; then raise the first error."""
    error = None
    for cleanup in cleanups:
        try:
            cleanup()
        except BaseException as e:  # noqa: BLE001  re-raised below, after the rest have run
            error = e if error is None else error
    if error is not None:
        raise error


def has_hooks(conds: dict) -> bool:
    """Whether any entry of converted ``conds`` carries hooks (a ControlNet's extra hooks are merged in by
    preprocess_conds_hooks)."""
    return any(c.get("hooks") is not None for entries in conds.values() for c in entries)


def is_dynamic(patcher) -> bool:
    # ModelPatcherDynamic (dynamic VRAM) is newer than the 0.3.64 floor, whose patchers have no is_dynamic
    return getattr(patcher, "is_dynamic", lambda: False)()


def non_dynamic_delegate(patcher: comfy.model_patcher.ModelPatcher) -> comfy.model_patcher.ModelPatcher:
    """``patcher``'s non-dynamic delegate, as CFGGuider.inner_set_conds swaps in for a dynamic model whose
    conditioning has hooks (ModelPatcherDynamic can't apply hook weights). The delegate's weights (a second load of
    the model's file) are kept on the first patcher of its clones, as core keeps them on the patcher it is asked,
    so that the clones made for each run (a guider's delegate of the stitched model clones its stages) share them
    instead of loading the file again each run."""
    root = patcher
    while (isinstance(root.parent, comfy.model_patcher.ModelPatcher) and is_dynamic(root.parent)
           and root.parent.model is patcher.model):
        root = root.parent
    if root is not patcher:
        if root.non_dynamic_delegate_model is None:
            root.get_non_dynamic_delegate()
        patcher.non_dynamic_delegate_model = root.non_dynamic_delegate_model
    return patcher.get_non_dynamic_delegate()


class StageRun:
    """An earlier model of the pass, set up as CFGGuider.sample sets up the model it samples."""

    def __init__(self, run: "StitchRun", index: int, stage):
        self.run, self.index = run, index
        self.patcher = stage.patcher
        self.takes_control = stage.takes_control
        guider = run.guider
        inputs = guider.tstitch_stage_inputs(index) if hasattr(guider, "tstitch_stage_inputs") else None
        self.fixed_cfg = inputs.cfg if inputs else None
        own = inputs.conds if inputs else None
        if own is None and self.patcher.load_device != run.main.load_device:
            own = guider.original_conds  # conditioning lives on the device of the model that takes it
        if own is not None:
            conds = {kind: [c.copy() for c in entries] for kind, entries in own.items()}
            comfy.samplers.preprocess_conds_hooks(conds)
        else:
            conds = guider.conds  # the guider's, hooks filtered; processed by the large model later
        self.own_conds = conds if own is not None else None
        self.processed_conds = None
        if device_copies(self.patcher):  # its copies take on what was applied after MultiGPU CFG Split, as core's do
            self.patcher.match_multigpu_clones()
        self.devices = None  # {device: copy of this model} where MultiGPU CFG Split spreads its batch
        if is_dynamic(self.patcher) and has_hooks(conds):
            self.patcher = non_dynamic_delegate(self.patcher)
            run.patchers[index] = self.patcher
        self.saved_hook_mode = self.patcher.hook_mode
        try:
            if comfy.samplers.get_total_hook_groups_in_conds(conds) <= 1:
                self.patcher.hook_mode = comfy.hooks.EnumHookMode.MinVram
            self.prepared_options = comfy.model_patcher.create_model_options_clone(self.patcher.model_options)
            comfy.sampler_helpers.prepare_model_patcher(self.patcher, conds, self.prepared_options)
            if own is not None:
                comfy.samplers.filter_registered_hooks_on_conds(conds, self.prepared_options)
            comfy.samplers.cast_to_load_options(self.prepared_options, device=self.patcher.load_device,
                                                dtype=self.patcher.model_dtype())
        except BaseException:
            # the stage never joins the run, so nothing else undoes what it changed on a (cached) model
            self.restore_hooks()
            raise
        # what this model's own wrappers see: a guider of this model alone
        self.view = comfy.samplers.CFGGuider(self.patcher)
        self.view.model_options = self.prepared_options
        self.view.original_conds = own if own is not None else guider.original_conds
        self.view.conds = conds
        self.view.cfg = self.cfg
        self.options = self.prepared_options  # after its outer-sample wrappers
        self.run_options = None  # after its sampler-sample wrappers: what its calls start from
        self._uncontrolled = (None, None)

    @property
    def cfg(self) -> float:
        return self.run.guider.cfg if self.fixed_cfg is None else self.fixed_cfg

    def own_cond_models(self) -> tuple[list, float]:
        """ControlNets and other models in this model's own conditioning, which the large model did not load."""
        if self.own_conds is None:
            return [], 0
        return comfy.sampler_helpers.get_additional_models(self.own_conds, self.patcher.model_dtype())

    def process_own_conds(self) -> None:
        # once its model is loaded, so conversions read its patched model sampling, as ComfyUI's inner_sample does
        if self.own_conds is None or self.processed_conds is not None:
            return
        context = self.run.cond_context
        device = self.patcher.load_device
        latent = context["latent_image"]
        self.processed_conds = comfy.samplers.process_conds(
            self.patcher.model, context["noise"].to(device), self.own_conds, device,
            latent.to(device) if latent is not None else None, context["denoise_mask"], context["seed"],
            **context["extra"])

    def conds_for_wrappers(self) -> dict:
        return self.run.guider.conds if self.own_conds is None else self.own_conds

    def conds(self) -> dict:
        conds = self.run.guider.conds if self.own_conds is None else self.processed_conds
        if self.takes_control or not _has_control(conds):
            return conds
        if self._uncontrolled[0] is not conds:
            log.warning("T-Stitch: the %s has other blocks than the large model, so ControlNets and T2I adapters "
                        "apply to the large model's steps only.", self.run.label(self.index))
            stripped = {kind: [{k: v for k, v in c.items() if k != "control"} for c in entries]
                        for kind, entries in conds.items()}
            self._uncontrolled = (conds, stripped)
        return self._uncontrolled[1]

    def predict_noise(self, x, timestep, model_options: dict, seed):
        """The guider's own predict_noise, with this model, its options, conditioning and CFG scale."""
        # what the sampler set at run time (sample_sigmas, CFG++ hooks, edits in place) reaches every model
        options = merge_nested_dicts(self.run_options,
                                     compute_runtime_additions(model_options, self.run.sampler_options))
        guider = self.run.guider
        device = self.patcher.load_device
        saved = guider.conds, guider.cfg
        guider.conds, guider.cfg = self.conds(), self.cfg
        try:
            executor = WrapperExecutor.new_class_executor(
                guider.predict_noise, guider, get_all_wrappers(WrappersMP.PREDICT_NOISE, options, is_model_options=True))
            if self.devices:
                options["multigpu_clones"], options["multigpu_thread_pool"] = self.devices, self.run.stage_pool
            else:  # the large model's copies never run this model's calls
                options.pop("multigpu_clones", None)
            out = executor.execute(x.to(device), timestep.to(device), options, seed)
        finally:
            guider.conds, guider.cfg = saved
        return out.to(x.device)

    def spread(self, devices: dict) -> None:
        """Split this model's batch across ``devices`` (one copy of it each), prepared as CFGGuider.outer_sample
        prepares the copies of the model it samples: its hook patches and mode, pre-run."""
        for copy in devices.values():
            if copy is not self.patcher:
                copy.hook_patches = comfy.model_patcher.create_hook_patches_clone(self.patcher.hook_patches,
                                                                                  copy_tuples=True)
                copy.hook_mode = self.patcher.hook_mode
                copy.pre_run()
        self.devices = devices

    def restore_hooks(self) -> None:
        self.patcher.hook_mode = self.saved_hook_mode
        self.patcher.restore_hook_patches()

    def finish(self) -> None:
        steps = [lambda: comfy.samplers.cast_to_load_options(self.prepared_options,
                                                             device=self.patcher.offload_device), self.restore_hooks]
        if self.processed_conds is not None:
            steps.append(lambda: comfy.sampler_helpers.cleanup_models(self.processed_conds, []))
        if self.run.plan.offload_idle:  # ComfyUI cleans up the additional models it loaded, not these
            steps.append(self.patcher.cleanup)
        steps += [copy.cleanup for copy in (self.devices or {}).values() if copy is not self.patcher]
        run_all(steps)


class StitchRun:
    """Per-sampling state of a stitched model: see the module docstring."""

    def __init__(self, plan, guider: comfy.samplers.CFGGuider, sampler, sigmas: torch.Tensor):
        if getattr(sampler, "sampler_function", None) is getattr(comfy.k_diffusion.sampling, "sample_ar_video", 0):
            raise ValueError("T-Stitch can't run the ar_video sampler: it keeps the large model's attention caches "
                             "from call to call, which another model can't use. Pick another sampler, or sample "
                             "one model alone.")
        self.plan, self.guider = plan, guider
        self.main = guider.model_patcher
        # the large model's object patches, whether model management has it loaded or not
        model_sampling = self.main.get_model_object("model_sampling")
        self.timestep_of = timestep_function(model_sampling)
        schedule = sigmas.tolist()
        self.points = switch_points(plan, model_sampling, schedule)
        covered = count_covered_steps(self.points, schedule, self.timestep_of)
        validate_stage_coverage(plan.rules, covered, len(schedule) - 1)
        # one per model, each once; the stages (what the switch points divide) name a model each
        self.patchers = [stage.patcher for stage in plan.stages] + [self.main]
        refuse_multigpu_offload(plan, self.patchers)
        self.stage_models = plan.stage_models
        counts = count_stage_steps(self.points, schedule, self.timestep_of)
        self.stage_names = stage_labels(plan, self.main)
        settings = handover_settings(len(plan.rules), self.stage_names, plan.handovers is not None)
        validate_last_model_runs(counts, self.stage_names, plan.rules, settings,
                                 schedule, self.timestep_of, timestep_max(model_sampling),
                                 node="T-Stitch Stages" if plan.handovers is not None else "T-Stitch")
        # an earlier model with no step (a low-denoise pass that starts below its share) runs: the progress says so
        self.without_steps = describe_models_without_steps(counts, self.stage_names)
        self.check_conditioning()
        self.first_stage = pick_stage(self.points, schedule[0], self.timestep_of) if len(schedule) > 1 else len(
            self.points)
        self.first_index = self.stage_models[self.first_stage]
        self.step_ranges = describe_stage_steps(counts)
        log.info("T-Stitch: %s", "; ".join(f"{name} {r}" for name, r in zip(self.stage_names, self.step_ranges)))
        self.stages: list[StageRun] = []
        self.active = None  # index of the stage whose model the guider's inner model is now
        self.active_model = None
        self.pre_ran = False
        self.stage_pool = self.own_pool = None  # the threads the earlier models' copies run in
        self.sampler_options = None  # the sampler's model options as it started, to tell its additions apart
        self.cond_context = None
        self.mask_functions = None
        self.noise_shape = None

    def check_conditioning(self) -> None:
        """Refuse, before any model runs, a conditioning whose width the model it reaches doesn't take."""
        guider = self.guider
        own_inputs = getattr(guider, "tstitch_stage_inputs", None)  # T-Stitch Guider: each side its own prompts
        skip_uncond = not guider.model_options.get("disable_cfg1_optimization", False)
        reaches = []
        for index, patcher in enumerate(self.patchers):
            inputs = own_inputs(index) if own_inputs and index < len(self.plan.stages) else None
            if inputs is not None:
                reach = conditioning_reach(self.label(index), patcher, inputs.conds, inputs.cfg, "small_", True,
                                           skip_uncond)
            else:
                reach = conditioning_reach(self.label(index), patcher, guider.original_conds, guider.cfg,
                                           "large_" if own_inputs else "", own_inputs is not None, skip_uncond)
            reaches.append(reach)
        check_conditioning_widths(reaches, self.plan.handovers is not None)

    @staticmethod
    def of_main_model(patcher) -> "StitchRun":
        """The run sampling ``patcher`` as its own model, or one of its MultiGPU CFG Split copies."""
        run = _RUNS.get(id(patcher))
        if run is not None and run.main is patcher:
            return run
        # core pre-runs the sampled model's copies on the other devices too
        run = next((r for r in _RUNS.values() if any(c is patcher for c in device_copies(r.main))), None)
        if run is None:
            raise ValueError(UNROUTABLE)
        return run

    def first_patcher(self) -> comfy.model_patcher.ModelPatcher:
        """The model whose step comes first in this pass."""
        return self.patchers[self.first_index]

    def label(self, index: int) -> str:
        return model_label(index, len(self.patchers), self.patchers[index])

    def sample(self, executor, args, kwargs):
        """The pass, inside each earlier model's own outer-sample wrappers (EasyCache, LazyCache, ...)."""
        guider = self.guider
        guider_options = guider.model_options
        guider.model_options = comfy.model_patcher.create_model_options_clone(guider_options)
        guider.model_options["transformer_options"][TSTITCH_KEY] = self
        # ours innermost, so every sampler-sample wrapper of the large model runs before the snapshot we take
        ours = guider.model_options["transformer_options"].get("wrappers", {}).get(WrappersMP.SAMPLER_SAMPLE, {})
        if TSTITCH_KEY in ours:
            ours[TSTITCH_KEY] = ours.pop(TSTITCH_KEY)
        try:
            for index, stage in enumerate(self.plan.stages):
                self.stages.append(StageRun(self, index, stage))
            return self._nest_outer_sample(0, executor, args, kwargs)
        finally:
            guider.model_options = guider_options

    def _nest_outer_sample(self, index: int, executor, args, kwargs):
        if index == len(self.stages):
            return executor(*args, **kwargs)
        stage = self.stages[index]

        def inner(*inner_args, **inner_kwargs):
            stage.options = stage.view.model_options  # what its wrappers prepared (EasyCache's state, say)
            return self._nest_outer_sample(index + 1, executor, inner_args, inner_kwargs)

        wrappers = get_all_wrappers(WrappersMP.OUTER_SAMPLE, stage.view.model_options, is_model_options=True)
        return WrapperExecutor.new_class_executor(inner, stage.view, wrappers).execute(*args, **kwargs)

    def sample_with_stage_wrappers(self, executor, guider, sigmas, extra_args, callback, noise, latent_image=None,
                                   denoise_mask=None, *args, **kwargs):
        """The sampler, inside each earlier model's own sampler-sample wrappers."""
        latent_shapes = getattr(guider.inner_model, "latent_shapes", None)  # ComfyUI 0.8+
        self.cond_context = {"noise": noise, "latent_image": latent_image, "denoise_mask": denoise_mask,
                             "seed": extra_args.get("seed"),
                             "extra": {} if latent_shapes is None else {"latent_shapes": latent_shapes}}
        self.noise_shape = noise.shape
        for stage in self.stages:
            if latent_shapes is not None:
                stage.patcher.model.latent_shapes = latent_shapes
        self._install_mask_router(extra_args["model_options"], denoise_mask)
        self.sampler_options = comfy.model_patcher.create_model_options_clone(extra_args["model_options"])
        return self._nest_sampler_sample(0, executor, (guider, sigmas, extra_args, callback, noise, latent_image,
                                                      denoise_mask, *args), kwargs)

    def _nest_sampler_sample(self, index: int, executor, args, kwargs):
        if index == len(self.stages):
            return executor(*args, **kwargs)
        stage = self.stages[index]
        guider, sigmas, extra_args, *rest = args
        options = comfy.model_patcher.create_model_options_clone(stage.options)
        options.setdefault("transformer_options", {})["sample_sigmas"] = sigmas
        stage.run_options = options
        wrappers = get_all_wrappers(WrappersMP.SAMPLER_SAMPLE, options, is_model_options=True)
        if not wrappers:
            return self._nest_sampler_sample(index + 1, executor, args, kwargs)

        def inner(_view, inner_sigmas, stage_extra_args, *inner_rest, **inner_kwargs):
            stage.run_options = stage_extra_args["model_options"]
            return self._nest_sampler_sample(index + 1, executor, (guider, inner_sigmas, extra_args, *inner_rest),
                                             inner_kwargs)

        stage.view.inner_model, stage.view.conds = stage.patcher.model, stage.conds_for_wrappers()
        return WrapperExecutor.new_class_executor(inner, executor.class_obj, wrappers).execute(
            stage.view, sigmas, {**extra_args, "model_options": options}, *rest, **kwargs)

    def _install_mask_router(self, model_options: dict, denoise_mask) -> None:
        # KSamplerX0Inpaint calls the mask function before each call: it must be the function of that step's model
        functions = [stage.options.get("denoise_mask_function") for stage in self.stages]
        functions.append(model_options.get("denoise_mask_function"))
        if denoise_mask is None or not any(functions):
            return
        self.mask_functions = functions
        model_options["denoise_mask_function"] = self._route_mask

    def _route_mask(self, sigma, denoise_mask, extra_options):
        index = self.activate(self.pick(sigma))
        function = self.mask_functions[index]
        return denoise_mask if function is None else function(sigma, denoise_mask, extra_options)

    def pick(self, sigma: torch.Tensor) -> int:
        """The stage that denoises at ``sigma``."""
        return pick_stage(self.points, float(sigma.reshape(-1)[0]), self.timestep_of)

    def predict_noise(self, executor, x, timestep, model_options: dict, seed):
        index = self.activate(self.pick(timestep))
        if index == len(self.stages):
            return executor(x, timestep, model_options, seed)
        return self.stages[index].predict_noise(x, timestep, model_options, seed)

    def activate(self, stage_index: int) -> int:
        """Make the model of stage ``stage_index`` the running one: loaded through ComfyUI, the guider's inner
        model, shown. Returns the model's index."""
        index = self.stage_models[stage_index]
        if stage_index == self.active:
            return index
        self.active = stage_index
        report_progress_text(f"T-Stitch: {self.stage_names[stage_index]}, {self.step_ranges[stage_index]}"
                             + (f" ({self.without_steps})" if self.without_steps else ""))
        if index == self.active_model:
            return index
        patcher = self.patchers[index]
        stage = self.stages[index] if index < len(self.stages) else None
        cond_models, inference_memory = stage.own_cond_models() if stage else ([], 0)
        if self.plan.offload_idle:
            for other in self.patchers:
                if other is not patcher:
                    _release(other)
            conds = stage.own_conds if stage and stage.own_conds is not None else self.guider.conds
            main_cond_models, main_memory = comfy.sampler_helpers.get_additional_models(
                self.guider.conds, patcher.model_dtype()) if stage is None else ([], 0)

            def load(model, noise_shape, conds, model_options=None, **kwargs):
                # the model its wrappers hand on (KJNodes' memory factor override passes a clone)
                memory = comfy.sampler_helpers.estimate_memory(model, noise_shape, conds)[0]
                comfy.model_management.load_models_gpu(
                    [model, *model.get_nested_additional_models(), *cond_models, *main_cond_models],
                    memory_required=memory + inference_memory + main_memory)
                return model.model, conds, []

            # its memory is estimated here, so inside its own PREPARE_SAMPLING wrappers, as prepare_sampling's is
            options = stage.options if stage else _without_own_prepare_wrapper(self.guider.model_options)
            within_prepare_wrappers(patcher, options, load, self.noise_shape, conds)
        elif cond_models:  # with the model about to run, so making room for them can't evict it
            comfy.model_management.load_models_gpu([patcher, *cond_models], memory_required=inference_memory)
        if stage:
            stage.process_own_conds()
        self.guider.inner_model = patcher.model
        self.active_model = index
        return index

    def prepare_sampling(self, executor, model, noise_shape, conds, model_options=None, **kwargs):
        """ComfyUI's prepare_sampling of the pass, inside the own PREPARE_SAMPLING wrappers of each earlier model
        it loads, each called with that model (KJNodes' memory usage factor override sets the factor of the model
        it is given). Without offload every model loads here with the large one; with offload only the model
        whose step comes first, the large model's BaseModel staying the guider's and its weights coming with
        its first step (``activate``), as does each later model's."""
        def prepare(prepared_model):
            return executor(prepared_model, noise_shape, conds, model_options=model_options, **kwargs)

        if not self.plan.offload_idle:
            load = lambda _stage_model: self._prepare_with_run_patchers(prepare, model)  # noqa: E731
            for stage in reversed(self.stages):
                load = self._nest_prepare(stage, load, noise_shape, kwargs)
            real_model, conds, models = load(model)
            # core takes every loaded MultiGPU copy for a copy of the sampled model: an earlier model's are its own
            own = device_copies(model)
            return real_model, conds, [m for m in models if not getattr(m, "is_multigpu_base_clone", False)
                                       or any(m is c for c in own)]
        if self.first_index == len(self.stages):
            return prepare(model)
        first = self.stages[self.first_index]
        _, conds, models = within_prepare_wrappers(first.patcher, first.options, lambda m, *_, **__: prepare(m),
                                                   noise_shape, first.conds_for_wrappers(), **kwargs)
        return UnloadedModelView(model), conds, models

    def _prepare_with_run_patchers(self, prepare, model):
        # the earlier models load as the stitched model's additional models: the patchers this run samples with
        # (a non-dynamic delegate for hooks) in place of the plan's, for this load only
        planned = model.get_additional_models_with_key(TSTITCH_KEY)
        running = [stage.patcher for stage in self.stages]
        if len(planned) != len(running) or all(a is b for a, b in zip(planned, running)):
            return prepare(model)
        model.set_additional_models(TSTITCH_KEY, running)
        try:
            return prepare(model)
        finally:
            model.set_additional_models(TSTITCH_KEY, planned)

    @staticmethod
    def _nest_prepare(stage: StageRun, inner, noise_shape, kwargs):
        return lambda _model: within_prepare_wrappers(stage.patcher, stage.options, lambda m, *_, **__: inner(m),
                                                      noise_shape, stage.conds_for_wrappers(), **kwargs)

    def pre_run(self, patcher) -> None:
        if patcher is not self.main:  # a MultiGPU CFG Split copy of the large model: its stages are spread below
            return
        # ComfyUI calls pre_run on the sampled model only; a second call means another guider prepared it too
        if self.pre_ran:
            raise ValueError(UNROUTABLE)
        self.pre_ran = True
        for stage in self.stages:
            stage.patcher.pre_run()
        self._spread_stages()

    def _spread_stages(self) -> None:
        """Each earlier model's batch split across its copies on other devices: its own (MultiGPU CFG Split on the
        input model) and those the stitched model's copies carry (split after the pair, or on the large model:
        core copies a model's additional models with it), in the large model's thread pool where it covers them."""
        carriers = [copy.get_attachment(TSTITCH_KEY) for copy in device_copies(self.main)]
        needed = [self.main.load_device]
        for stage in self.stages:
            devices = {stage.patcher.load_device: stage.patcher}
            carried = [plan.stages[stage.index].patcher for plan in carriers if plan is not None]
            for copy in [*device_copies(stage.patcher), *carried]:
                devices.setdefault(copy.load_device, copy)
            if len(devices) > 1:
                stage.spread(devices)
                needed += [device for device in devices if device not in needed]
        if not any(stage.devices for stage in self.stages):
            return
        pool = self.guider.model_options.get("multigpu_thread_pool")
        if pool is None or not set(needed) <= set(pool.devices):
            import comfy.multigpu  # ComfyUI 0.33+, as are the copies

            pool = self.own_pool = comfy.multigpu.MultiGPUThreadPool(needed)
        self.stage_pool = pool

    def finish(self) -> None:
        steps = [stage.finish for stage in self.stages]
        if self.own_pool is not None:
            steps.append(self.own_pool.shutdown)
        run_all(steps)


class UnloadedModelView:
    """The large model's BaseModel as the guider sees it from prepare_sampling to the first call, with offload and
    another model first: its weights are not loaded, so its object patches are not on it, and another clone of the
    same weights left loaded (a ModelSamplingSD3 one, say) may have its own on it. What the sampler reads from it
    before step 1 (model_sampling for the noise scaling and the conditioning's timestep ranges, latent_format)
    is read through the large model's patcher: its own object patches, else the originals. Writes go to the
    BaseModel. The first call makes the running model's BaseModel the guider's (``activate``)."""

    def __init__(self, patcher: comfy.model_patcher.ModelPatcher):
        object.__setattr__(self, "_patcher", patcher)

    def __getattr__(self, name: str):
        return object.__getattribute__(self, "_patcher").get_model_object(name)

    def __setattr__(self, name: str, value) -> None:
        setattr(object.__getattribute__(self, "_patcher").model, name, value)


def within_prepare_wrappers(patcher, model_options: dict, load, noise_shape, conds, **kwargs):
    """``load(model, noise_shape, conds, model_options=...)`` inside ``patcher``'s own PREPARE_SAMPLING wrappers
    (from ``model_options``), called as comfy.sampler_helpers.prepare_sampling calls them."""
    wrappers = get_all_wrappers(WrappersMP.PREPARE_SAMPLING, model_options, is_model_options=True)
    return WrapperExecutor.new_executor(load, wrappers).execute(patcher, noise_shape, conds,
                                                                model_options=model_options, **kwargs)


def _without_own_prepare_wrapper(model_options: dict) -> dict:
    # the stitched model's options, less T-Stitch's wrapper: what the large model's own wrappers are
    options = comfy.model_patcher.create_model_options_clone(model_options)
    options["transformer_options"].get("wrappers", {}).get(WrappersMP.PREPARE_SAMPLING, {}).pop(TSTITCH_KEY, None)
    return options


def _has_control(conds: dict) -> bool:
    return any("control" in c for entries in conds.values() for c in entries)


def _release(patcher: comfy.model_patcher.ModelPatcher) -> None:
    # model management unloads what keep_loaded leaves out: here the model and its clones alone
    keep = [loaded for loaded in comfy.model_management.current_loaded_models
            if loaded.model is None or not loaded.model.is_clone(patcher)]
    # a dynamic model (dynamic VRAM) is left to ComfyUI's paging, as load_models_gpu leaves one for another dynamic
    # model: a full unload would drop its pinned host memory, to be pinned and streamed again at its next step
    dynamic = {"for_dynamic": True} if is_dynamic(patcher) else {}
    comfy.model_management.free_memory(1e30, patcher.load_device, keep_loaded=keep, **dynamic)
