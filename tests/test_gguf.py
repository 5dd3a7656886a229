"""Experts loaded through city96's ComfyUI-GGUF (its UnetLoaderGGUF node, GGUFModelPatcher and dequantizing
ops), as users load quantized models: F16 and Q8_0 files of the test UNets, written as its tools write them.
Each cell is compared bit for bit with each expert alone, or with a reference that routes without this pack.
These tests skip, saying why, only where ComfyUI-GGUF can't be had (tstitch_dev.thirdparty).

Also here: each model's own PREPARE_SAMPLING wrappers (KJNodes' ModelMemoryUsageFactorOverride is one) run
around its own memory estimate and load, for safetensors and GGUF experts alike."""


import pytest
import torch

from tstitch_dev.testing import CFG, reference_model

STEPS = 4
SIZE = 32  # 4x4 latents
FRACTION = 0.5
QTYPE_PAIRS = [("F16", "F16"), ("Q8_0", "Q8_0"), ("Q8_0", "F16")]  # (small, large)


@pytest.fixture(scope="module")
def gguf_unet(gguf_nodes):
    """Load a test model spec's .gguf file (F16 or Q8_0) through ComfyUI-GGUF's UnetLoaderGGUF node, once."""
    import folder_paths
    from tstitch_dev.models import MODEL_CACHE, ensure_gguf

    folder_paths.add_model_folder_path("diffusion_models", str(MODEL_CACHE))
    loaded = {}

    def load(spec, qtype):
        if (spec, qtype) not in loaded:
            with torch.inference_mode():
                loaded[spec, qtype] = gguf_nodes["UnetLoaderGGUF"]().load_unet(ensure_gguf(spec, qtype).name)[0]
        return loaded[spec, qtype]

    return load


@pytest.fixture(scope="module")
def experts(gguf_unet):
    """(small, large) GGUF experts of the given types: the one-level SD1.5-width test UNets."""
    from tstitch_dev.models import MINI_SD15_LARGE, MINI_SD15_SMALL

    return lambda small_type, large_type: (gguf_unet(MINI_SD15_SMALL, small_type), gguf_unet(MINI_SD15_LARGE, large_type))


@pytest.fixture(scope="module")
def sample(run_node, conds, latent):
    """KSampler's latent for ``model``, with the settings of this module."""
    positive, negative = conds

    def run(model, sampler_name="euler", scheduler="normal"):
        return run_node("KSampler", model=model, seed=0, steps=STEPS, cfg=CFG, sampler_name=sampler_name,
                        scheduler=scheduler, positive=positive, negative=negative, latent_image=latent(size=SIZE),
                        denoise=1.0)[0]["samples"]

    return run


@pytest.fixture(scope="module")
def alone(sample):
    """Each GGUF expert sampled alone, once."""
    results = {}

    def get(model):
        if id(model) not in results:
            results[id(model)] = sample(model)
        return results[id(model)]

    return get


def pair(run_node, small, large, fraction=FRACTION, switch_by="steps", offload=False):
    return run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=fraction,
                    switch_by=switch_by, offload_idle_model=offload)[0]


def test_the_experts_are_loaded_by_comfyui_gguf(experts):
    import gguf

    small, large = experts("Q8_0", "F16")
    assert type(small).__name__ == type(large).__name__ == "GGUFModelPatcher"
    types = {name: {getattr(p, "tensor_type", None) for p in m.model.parameters()} for name, m in
             (("small", small), ("large", large))}
    assert gguf.GGMLQuantizationType.Q8_0 in types["small"], types
    assert gguf.GGMLQuantizationType.Q8_0 not in types["large"] and gguf.GGMLQuantizationType.F16 in types["large"]
    assert type(small.model.model_config).__name__ == type(large.model.model_config).__name__ == "SD15"


def test_the_advanced_loaders_dtypes_are_shared_by_every_gguf_model(gguf_nodes):
    """The caveat docs/third-party-loaders.md states, as ComfyUI-GGUF behaves: the expert loaded last sets
    dequant_dtype for both."""
    from tstitch_dev.models import MINI_SD15_LARGE, MINI_SD15_SMALL, ensure_gguf

    advanced = gguf_nodes["UnetLoaderGGUFAdvanced"]()
    with torch.inference_mode():
        small = advanced.load_unet(ensure_gguf(MINI_SD15_SMALL, "Q8_0").name, "float16", "default", False)[0]
        linear = next(m for m in small.model.diffusion_model.modules() if isinstance(m, torch.nn.Linear))
        try:
            assert linear.dequant_dtype is torch.float16
            advanced.load_unet(ensure_gguf(MINI_SD15_LARGE, "Q8_0").name, "bfloat16", "default", False)
            assert linear.dequant_dtype is torch.bfloat16  # the small expert's setting is gone
        finally:
            type(linear).dequant_dtype = None  # what the plain loader sets


@pytest.mark.parametrize("switch_by", ["steps", "timestep"])
@pytest.mark.parametrize("small_type, large_type", QTYPE_PAIRS)
def test_f0_and_f1_are_each_gguf_expert_alone(small_type, large_type, switch_by, experts, run_node, sample, alone):
    small, large = experts(small_type, large_type)
    assert not torch.equal(alone(small), alone(large))
    assert torch.equal(sample(pair(run_node, small, large, 0.0, switch_by)), alone(large))
    assert torch.equal(sample(pair(run_node, small, large, 1.0, switch_by)), alone(small))


@pytest.mark.parametrize("small_type, large_type", QTYPE_PAIRS)
def test_a_stitched_gguf_pair_equals_the_reference(small_type, large_type, experts, run_node, sample):
    small, large = experts(small_type, large_type)
    log = []
    expected = sample(reference_model(small, large, "steps", FRACTION, log))
    assert "S" in log and "L" in log, log
    assert torch.equal(sample(pair(run_node, small, large)), expected)


@pytest.mark.parametrize("sampling", ["sd3", "discrete"])
def test_the_timestep_switch_with_each_experts_own_model_sampling(sampling, experts, run_node, sample):
    # Wan 2.2-style experts: each with its own model sampling (shifts 2 and 3; or eps and v-prediction)
    small, large = experts("Q8_0", "F16")
    if sampling == "sd3":
        small, large = (run_node("ModelSamplingSD3", model=m, shift=s)[0] for m, s in ((small, 2.0), (large, 3.0)))
    else:
        small, large = (run_node("ModelSamplingDiscrete", model=m, sampling=s, zsnr=False)[0]
                        for m, s in ((small, "eps"), (large, "v_prediction")))
    log = []
    # t / T >= 0.7: the first 2 of 4 simple steps with v-prediction's discrete sigmas, 3 with shift 3's
    expected = sample(reference_model(small, large, "timestep", 0.3, log), "euler", "simple")
    assert log == list({"sd3": "SSSL", "discrete": "SSLL"}[sampling]), log
    assert torch.equal(sample(pair(run_node, small, large, 0.3, "timestep"), "euler", "simple"), expected)


def test_offloading_gguf_experts_loads_each_once_and_changes_no_number(experts, run_node, sample,
                                                                       load_events):
    import comfy.model_management

    name, events = load_events
    small, large = experts("Q8_0", "F16")
    name(small, "S"), name(large, "L")
    results = {}
    for offload in (False, True):
        comfy.model_management.unload_all_models()
        events.clear()
        results[offload] = sample(pair(run_node, small, large, offload=offload), "dpmpp_2m")
        assert events == (["+S", "-S", "+L"] if offload else ["+LS"]), offload
    assert torch.equal(results[True], results[False])


@pytest.mark.parametrize("lora_on", ["small", "large"])
def test_a_lora_on_one_gguf_expert_acts_on_its_steps_only(lora_on, experts, run_node, sample, alone):
    import folder_paths
    from tstitch_dev.models import MINI_SD15_LARGE, MINI_SD15_SMALL, ensure_lora

    small, large = experts("Q8_0", "F16")
    path = ensure_lora(MINI_SD15_SMALL if lora_on == "small" else MINI_SD15_LARGE, seed=31)
    folder_paths.add_model_folder_path("loras", str(path.parent))
    with_lora = run_node("LoraLoaderModelOnly", model=small if lora_on == "small" else large, lora_name=path.name,
                         strength_model=1.0)[0]
    small_l, large_l = (with_lora, large) if lora_on == "small" else (small, with_lora)
    # the other expert's steps alone: untouched
    untouched = 0.0 if lora_on == "small" else 1.0
    assert torch.equal(sample(pair(run_node, small_l, large_l, untouched)), alone(large if untouched == 0 else small))
    log = []
    expected = sample(reference_model(small_l, large_l, "steps", FRACTION, log))
    stitched = sample(pair(run_node, small_l, large_l))
    assert torch.equal(stitched, expected)
    assert not torch.equal(stitched, sample(pair(run_node, small, large)))  # the LoRA did act on its steps


@pytest.fixture
def memory_estimates(monkeypatch):
    """(name, the model's memory_usage_factor) of every memory estimate ComfyUI makes for a named model."""
    import comfy.sampler_helpers

    names, estimates = {}, []
    estimate = comfy.sampler_helpers.estimate_memory

    def spied(model, *args, **kwargs):
        if id(model.model) in names:
            estimates.append((names[id(model.model)], model.model.memory_usage_factor))
        return estimate(model, *args, **kwargs)

    monkeypatch.setattr(comfy.sampler_helpers, "estimate_memory", spied)

    def name(model, label):
        names[id(model.model)] = label
        return model

    return name, estimates


def memory_factor_override(model, factor, ran, label):
    """A clone of ``model`` with a PREPARE_SAMPLING wrapper written as KJNodes' ModelMemoryUsageFactorOverride
    writes its own: the factor set on a clone of the model it is given, for the estimate and load inside."""
    from comfy.patcher_extension import WrappersMP

    m = model.clone()

    def wrapper(executor, patcher, noise_shape, *args, **kwargs):
        ran.append((label, id(patcher.model)))
        clone = patcher.clone()
        original = clone.model.memory_usage_factor
        clone.model.memory_usage_factor = factor
        try:
            return executor(clone, noise_shape, *args, **kwargs)
        finally:
            clone.model.memory_usage_factor = original

    m.add_wrapper_with_key(WrappersMP.PREPARE_SAMPLING, "test_memory_usage_factor", wrapper)
    return m


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "resident"])
@pytest.mark.parametrize("loader", ["safetensors", "gguf"])
def test_each_models_own_prepare_sampling_wrappers_run_around_its_own_estimate(
        loader, offload, small_model, large_model, request, run_node, sample, memory_estimates):
    """The small model's memory-factor override used to be left out of its estimate (issue 18, item 4)."""
    small, large = (small_model, large_model) if loader == "safetensors" else request.getfixturevalue("experts")(
        "Q8_0", "F16")
    name, estimates = memory_estimates
    name(small, "S"), name(large, "L")
    factors = {"S": small.model.memory_usage_factor, "L": large.model.memory_usage_factor}
    ran = []
    stitched = pair(run_node, memory_factor_override(small, 40.0, ran, "S"),
                    memory_factor_override(large, 50.0, ran, "L"), offload=offload)
    out = sample(stitched)
    assert {label for label, _ in ran} == {"S", "L"}, ran
    assert all(model_id == id((small if label == "S" else large).model) for label, model_id in ran), ran
    if offload:  # each model's estimates, at the start and at the switch, with its own override and no other
        assert {label for label, _ in estimates} == {"S", "L"}, estimates
        assert all(factor == {"S": 40.0, "L": 50.0}[label] for label, factor in estimates), estimates
    else:  # one estimate, the large model's, with its override; the small one's wrappers ran around the load
        assert estimates == [("L", 50.0)], estimates
    assert factors == {"S": small.model.memory_usage_factor, "L": large.model.memory_usage_factor}  # restored
    assert torch.equal(out, sample(pair(run_node, small, large, offload=offload)))
