"""Dynamic VRAM (ComfyUI's ModelPatcherDynamic, how main.py loads every model on NVIDIA): prompts with scheduled
LoRA hooks run each hooked model of a stitched pass on its non-dynamic delegate, as CFGGuider.inner_set_conds does
for the model it samples, bit for bit as on plain patchers; offload leaves an idle dynamic model to ComfyUI's paging.

The real class can't run here: on a CPU load device ``ModelPatcherDynamic(...)`` returns a plain ModelPatcher (its
weights live in comfy-aimdo's CUDA address space). The models are loaded by ComfyUI's own UNETLoader and handed on in
a stand-in patcher that keeps exactly the contract T-Stitch meets: ``is_dynamic()`` is True;
``patch_hook_weight_to_device`` raises core's error for a hooked weight and ``unpatch_hooks`` does nothing, as
ModelPatcherDynamic's; ``get_non_dynamic_delegate`` is ModelPatcherDynamic's own method (a
``clone(disable_dynamic=True)`` whose weights the loader loads again through ``cached_patcher_init``, kept for the next
call). Loading and sampling are ModelPatcher's, as for the real class's CPU fallback (a dynamic load assigns the file's
fp16 weights for aimdo to cast at run time, which the CPU's plain ops can't).
"""

import pytest
import torch

from tstitch_dev.testing import CFG

pytestmark = pytest.mark.latest_host_only  # dynamic VRAM (ModelPatcherDynamic) is newer than the 0.3.64 floor

CORE_ERROR = "Hooks not implemented in ModelPatcherDynamic"


@pytest.fixture(scope="module", autouse=True)
def needs_dynamic_vram(comfy_host):
    import comfy.model_patcher

    if not hasattr(comfy.model_patcher, "ModelPatcherDynamic"):
        pytest.skip("this ComfyUI has no dynamic VRAM (ModelPatcherDynamic arrived after the 0.3.64 floor)")


@pytest.fixture(scope="module")
def dynamic_patcher(needs_dynamic_vram):
    import comfy.model_patcher

    core = comfy.model_patcher.ModelPatcherDynamic

    class DynamicStandIn(comfy.model_patcher.ModelPatcher):
        """ModelPatcherDynamic's hook contract on the CPU (see the module docstring)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.non_dynamic_delegate_model = None

        def is_dynamic(self):
            return True

        patch_hook_weight_to_device = core.patch_hook_weight_to_device
        patch_cached_hook_weights = core.patch_cached_hook_weights
        unpatch_hooks = core.unpatch_hooks
        get_non_dynamic_delegate = core.get_non_dynamic_delegate

    return DynamicStandIn


@pytest.fixture(scope="module")
def load_dynamic(load_unet, dynamic_patcher):
    """A test model spec loaded through UNETLoader, its BaseModel in the stand-in as dynamic VRAM's loader hands it."""
    loaders = []  # the loader's own patchers, kept so that their finalizers leave the BaseModels alone

    def load(spec):
        plain = load_unet(spec)
        loaders.append(plain)
        model = dynamic_patcher(plain.model, plain.load_device, plain.offload_device, plain.model_size())
        model.cached_patcher_init = plain.cached_patcher_init  # how the delegate loads the file again
        assert model.is_dynamic() and model.cached_patcher_init is not None
        return model

    return load


@pytest.fixture(scope="module")
def dynamic_models(load_dynamic):
    from tstitch_dev.models import MINI_SD15_LARGE, MINI_SD15_MEDIUM, MINI_SD15_SMALL

    return {"small": load_dynamic(MINI_SD15_SMALL), "medium": load_dynamic(MINI_SD15_MEDIUM),
            "large": load_dynamic(MINI_SD15_LARGE)}


@pytest.fixture(scope="module")
def plain_models(small_model, medium_model, large_model):
    return {"small": small_model, "medium": medium_model, "large": large_model}


@pytest.fixture(scope="module")
def hooked(comfy_host, lora_hooked, conds):
    from tstitch_dev.models import MINI_SD15_SMALL

    return tuple(lora_hooked(c, MINI_SD15_SMALL) for c in conds)  # keys of the blocks all three models have


@pytest.fixture(scope="module")
def guided(run_node, latent):
    """T-Stitch Guider through SamplerCustomAdvanced: (small, large, small conds, large conds, offload) -> latent."""
    def sample(small, large, small_conds, large_conds, offload):
        guider = run_node("TStitchGuider", small_model=small, large_model=large, small_fraction=0.4,
                          switch_by="steps", small_positive=small_conds[0], small_negative=small_conds[1],
                          small_cfg=3.0, large_positive=large_conds[0], large_negative=large_conds[1], large_cfg=CFG,
                          offload_idle_model=offload)[0]
        return run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                        sampler=run_node("KSamplerSelect", sampler_name="euler")[0],
                        sigmas=run_node("BasicScheduler", model=large, scheduler="normal", steps=6, denoise=1.0)[0],
                        latent_image=latent())[0]["samples"]

    return sample


def pair(run_node, small, large, fraction, offload):
    return run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=fraction,
                    switch_by="steps", offload_idle_model=offload)[0]


def models_of(kind, run_node, m, offload):
    if kind == "pair":
        return pair(run_node, m["small"], m["large"], 0.4, offload)
    if kind == "nested pair":
        return pair(run_node, m["small"], pair(run_node, m["medium"], m["large"], 0.5, False), 0.2, offload)
    return run_node("TStitchStages", model_1=m["large"], model_2=m["small"], model_3=m["medium"], model_4=m["large"],
                    until="0.2, 0.5, 0.7", switch_by="steps", offload_idle_model=offload)[0]


def test_the_stand_in_fails_as_core_does_and_cores_own_swap_avoids_it(dynamic_models, plain_models, hooked, ksample,
                                                                       run_node, latent):
    import comfy.sampler_helpers
    import comfy.samplers

    small = dynamic_models["small"]
    delegate = small.get_non_dynamic_delegate()
    assert not delegate.is_dynamic() and delegate.model is not small.model
    assert small.get_non_dynamic_delegate().model is delegate.model  # the second load is kept
    assert not torch.equal(ksample(plain_models["small"], steps=6, conds=hooked), ksample(plain_models["small"],
                                                                                         steps=6))  # hooks act
    # KSampler's CFGGuider swaps a hooked dynamic model for its delegate: the same numbers as a plain patcher
    assert torch.equal(ksample(small, steps=6, conds=hooked), ksample(plain_models["small"], steps=6, conds=hooked))
    unswapped = comfy.samplers.CFGGuider(small)  # conditioning set around inner_set_conds, so no swap
    unswapped.original_conds = {k: comfy.sampler_helpers.convert_cond(c) for k, c in zip(("positive", "negative"),
                                                                                       hooked)}
    with pytest.raises(RuntimeError, match=CORE_ERROR):
        unswapped.sample(torch.zeros(1, 4, 8, 8), latent()["samples"], comfy.samplers.sampler_object("euler"),
                         torch.tensor([14.6, 1.0, 0.0]))


@pytest.mark.parametrize("kind, offload", [("pair", False), ("pair", True), ("nested pair", True),
                                           ("stages", False)])
def test_hooked_prompts_run_every_model_on_its_non_dynamic_delegate(kind, offload, dynamic_models, plain_models,
                                                                    hooked, run_node, ksample):
    """Failed before with core's error: the earlier models' hooks were registered on their dynamic patchers."""
    plain = ksample(models_of(kind, run_node, plain_models, offload), steps=6, conds=hooked)
    assert torch.equal(ksample(models_of(kind, run_node, dynamic_models, offload), steps=6, conds=hooked), plain)


@pytest.mark.parametrize("hooked_side, offload", [("small", False), ("large", True), ("both", True)])
def test_the_guider_runs_each_side_with_hooked_prompts_on_its_delegate(hooked_side, offload, dynamic_models,
                                                                        plain_models, hooked, conds, guided):
    small_conds = hooked if hooked_side in ("small", "both") else conds
    large_conds = hooked if hooked_side in ("large", "both") else conds
    plain = guided(plain_models["small"], plain_models["large"], small_conds, large_conds, offload)
    ran = set()  # (model, whether it ran on its dynamic patcher's own weights)

    def recording(model, name):
        m = model.clone()

        def record(apply_model, args):
            ran.add((name, apply_model.__self__ is model.model))
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(record)
        return m

    small, large = recording(dynamic_models["small"], "small"), recording(dynamic_models["large"], "large")
    assert torch.equal(guided(small, large, small_conds, large_conds, offload), plain)
    # a side without hooks stays dynamic
    assert ran == {("small", hooked_side == "large"), ("large", hooked_side == "small")}


def test_a_second_hooked_run_loads_no_model_file_again(dynamic_models, hooked, run_node, ksample,
                                                       monkeypatch):
    """A guider's delegate of the stitched model clones its stages each run: their delegates' weights are kept."""
    import comfy.utils

    loads = []
    load_torch_file = comfy.utils.load_torch_file

    def spied(path, *args, **kwargs):
        loads.append(str(path))
        return load_torch_file(path, *args, **kwargs)

    monkeypatch.setattr(comfy.utils, "load_torch_file", spied)
    model = pair(run_node, dynamic_models["small"], dynamic_models["large"], 0.4, True)
    first = ksample(model, steps=6, conds=hooked)
    loads.clear()
    assert torch.equal(ksample(model, steps=6, conds=hooked, seed=0), first)
    assert loads == []


@pytest.fixture
def free_memory_calls(monkeypatch):
    """Each call of ComfyUI's free_memory as (device, for_dynamic); the real function runs."""
    import comfy.model_management as mm

    calls = []
    real = mm.free_memory

    def spied(memory_required, device, *args, **kwargs):
        calls.append((str(device), kwargs.get("for_dynamic", False)))
        return real(memory_required, device, *args, **kwargs)

    monkeypatch.setattr(mm, "free_memory", spied)
    return calls


@pytest.mark.parametrize("three", [False, True], ids=["pair", "nested pair"])
def test_offload_leaves_an_idle_dynamic_model_to_comfyuis_paging(three, dynamic_models, plain_models, run_node,
                                                                 ksample, load_events, free_memory_calls):
    import comfy.model_management as mm

    name, events = load_events
    m = {key: name(model, label) for (key, model), label in zip(dynamic_models.items(), "SBL")}
    model = (pair(run_node, m["small"], pair(run_node, m["medium"], m["large"], 0.5, False), 0.2, True) if three
             else pair(run_node, m["small"], m["large"], 0.4, True))
    out = ksample(model)
    # each handover asks model management as load_models_gpu does for dynamic models: nothing is unloaded
    assert events == (["+S", "+B", "+L"] if three else ["+S", "+L"])
    assert free_memory_calls and all(for_dynamic for _, for_dynamic in free_memory_calls)
    loaded = {id(patcher.model) for patcher in mm.loaded_models() if patcher is not None}
    used = ("small", "medium", "large") if three else ("small", "large")
    assert {id(dynamic_models[key].model) for key in used} <= loaded  # every model is still loaded
    p = plain_models
    expected = (pair(run_node, p["small"], pair(run_node, p["medium"], p["large"], 0.5, False), 0.2, True) if three
                else pair(run_node, p["small"], p["large"], 0.4, True))
    assert torch.equal(out, ksample(expected))


def test_offload_still_unloads_plain_models_fully(plain_models, run_node, ksample, load_events, free_memory_calls):
    """Under --disable-dynamic-vram (or where ComfyUI has none) the idle model is handed back as before."""
    name, events = load_events
    ksample(pair(run_node, name(plain_models["small"], "S"), name(plain_models["large"], "L"), 0.4, True))
    assert events == ["+S", "-S", "+L"]
    assert ("cpu", False) in free_memory_calls and not any(for_dynamic for _, for_dynamic in free_memory_calls)
