"""The features crossed the way users combine them: offload x switch rule x shifted model sampling x
sampler x sampling entry point. Every cell is compared, bit for bit, with a reference that routes
without this pack: the large model under ComfyUI's own sampler, with a test-written model function
wrapper that hands the calls the rule gives the small model to the small model's apply_model.
The version-floor run takes a covering subset of the cells (see ``crossed``)."""


import pytest
import torch

from tstitch_dev.testing import CFG, crossed, reference_model

STEPS = 6
FRACTION = 0.4
SIZE = 32  # 4x4 latents: 120 cells in the time the suite allows
SCHEDULER = "simple"  # one schedule for discrete and flow sampling
SAMPLERS = ["euler", "heun", "dpmpp_2m", "dpmpp_2m_sde", "uni_pc"]
ENTRIES = ["KSampler", "CFGGuider", "TStitchGuider"]


@pytest.fixture(scope="module")
def models_by_shift(small_model, large_model, run_node):
    """(small, large) as loaded, and both with ModelSamplingSD3 (shift 3), as Wan and SD3 workflows run them."""
    pair = (small_model, large_model)
    return {"none": pair, "sd3": tuple(run_node("ModelSamplingSD3", model=m, shift=3.0)[0] for m in pair)}


@pytest.fixture(scope="module")
def sample_entry(run_node, conds, latent):
    """Sample a model (or, for TStitchGuider, a pair's inputs) through KSampler, or SamplerCustomAdvanced with
    CFGGuider or TStitchGuider (the same prompts and scale for both models)."""
    positive, negative = conds

    def sample(entry, sampler_name, model=None, pair_inputs=None):
        if pair_inputs is not None and entry != "TStitchGuider":
            model = run_node("TStitchModelPair", **pair_inputs)[0]
        if entry == "KSampler":
            return run_node("KSampler", model=model, seed=0, steps=STEPS, cfg=CFG, sampler_name=sampler_name,
                            scheduler=SCHEDULER, positive=positive, negative=negative, latent_image=latent(size=SIZE),
                            denoise=1.0)[0]["samples"]
        if entry == "CFGGuider" or pair_inputs is None:
            guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=CFG)[0]
            schedule_model = model
        else:
            guider = run_node("TStitchGuider", **pair_inputs, small_positive=positive, small_negative=negative,
                              small_cfg=CFG, large_positive=positive, large_negative=negative, large_cfg=CFG)[0]
            schedule_model = pair_inputs["large_model"]
        # BasicScheduler's sigmas, not KSampler's: for uni_pc and dpm_2, KSampler drops the penultimate sigma
        sigmas = run_node("BasicScheduler", model=schedule_model, scheduler=SCHEDULER, steps=STEPS, denoise=1.0)[0]
        return run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                        sampler=run_node("KSamplerSelect", sampler_name=sampler_name)[0], sigmas=sigmas,
                        latent_image=latent(size=SIZE))[0]["samples"]

    return sample


@pytest.fixture(scope="module")
def reference(models_by_shift, sample_entry):
    """The reference result of each (switch_by, shift, sampler, KSampler or custom sampling), sampled once and
    checked to be non-trivial."""
    results = {}

    def get(switch_by, shift, sampler_name, entry):
        path = "KSampler" if entry == "KSampler" else "custom"
        key = (switch_by, shift, sampler_name, path)
        if key not in results:
            small, large = models_by_shift[shift]
            log = []
            out = sample_entry(path, sampler_name, reference_model(small, large, switch_by, FRACTION, log))
            assert "S" in log and "L" in log, log  # both models take part, so equality says something
            assert not torch.equal(out, sample_entry(path, sampler_name, large))
            results[key] = out
        return results[key]

    return get


@pytest.fixture
def unload_witness():
    """Tags a small model so each of its calls records whether the large model was loaded and patched then."""
    import comfy.model_management

    seen = []

    def tag(small, large):
        m = small.clone()
        patched_sampling = large.get_model_object("model_sampling")

        def record(apply_model, args):
            loaded = any(lm.model.model is large.model for lm in comfy.model_management.current_loaded_models
                         if lm.model is not None)
            seen.append((loaded, large.model.model_sampling is patched_sampling))
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(record)
        return m

    return tag, seen


@pytest.mark.parametrize("residency, switch_by, shift, sampler_name, entry", crossed(
    residency=["resident", "offload"], switch_by=["steps", "timestep"], shift=["none", "sd3"], sampler_name=SAMPLERS,
    entry=ENTRIES))
def test_every_combination_equals_the_reference(residency, switch_by, shift, sampler_name, entry, models_by_shift,
                                                sample_entry, reference, unload_witness):
    small, large = models_by_shift[shift]
    offload = residency == "offload"
    tag, seen = unload_witness
    pair_inputs = dict(small_model=tag(small, large), large_model=large, small_fraction=FRACTION,
                       switch_by=switch_by, offload_idle_model=offload)
    out = sample_entry(entry, sampler_name, pair_inputs=pair_inputs)
    assert torch.equal(out, reference(switch_by, shift, sampler_name, entry))
    if offload:
        # the large model really was unloaded while the small one ran: its object patches reverted too
        assert seen and not any(loaded for loaded, _ in seen), seen
        if shift == "sd3":
            assert not any(patched for _, patched in seen), seen
    else:
        assert seen and all(loaded and patched for loaded, patched in seen), seen
