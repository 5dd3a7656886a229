"""offload_idle_model: only the running model stays loaded, through ComfyUI's model management."""

import pytest
import torch


def loaded_base_models():
    import comfy.model_management

    return {id(m.model) for m in comfy.model_management.loaded_models() if m is not None}


@pytest.fixture
def residency():
    """Each call's model name and which of the models tagged in this test were loaded while it ran."""
    names = {}  # models other tests left loaded (ComfyUI frees none on the CPU) are not this run's
    log = []

    def tag(model, name):
        names[id(model.model)] = name
        m = model.clone()

        def record(apply_model, args):
            log.append((name, "".join(sorted(names[i] for i in loaded_base_models() if i in names))))
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(record)
        return m

    return tag, log


@pytest.mark.parametrize("offload, loaded_during_small, loaded_during_large", [(True, "S", "L"), (False, "LS", "LS")])
def test_offloading_keeps_only_the_running_model_loaded(offload, loaded_during_small, loaded_during_large,
                                                        small_model, large_model, run_node, residency, ksample):
    tag, log = residency
    model = run_node("TStitchModelPair", small_model=tag(small_model, "S"), large_model=tag(large_model, "L"),
                     small_fraction=0.4, switch_by="steps", offload_idle_model=offload)[0]
    ksample(model)
    assert log == [("S", loaded_during_small)] * 4 + [("L", loaded_during_large)] * 6


def test_three_stages_load_one_model_at_a_time(small_model, medium_model, large_model, run_node, residency, ksample):
    tag, log = residency
    inner = run_node("TStitchModelPair", small_model=tag(medium_model, "B"), large_model=tag(large_model, "L"),
                     small_fraction=0.5, switch_by="steps")[0]
    outer = run_node("TStitchModelPair", small_model=tag(small_model, "S"), large_model=inner, small_fraction=0.2,
                     switch_by="steps", offload_idle_model=True)[0]
    ksample(outer)
    assert log == [("S", "S")] * 2 + [("B", "B")] * 3 + [("L", "L")] * 5


@pytest.mark.parametrize("sampler_name", ["dpmpp_2m", "heun"])
def test_offloading_changes_no_number(sampler_name, small_model, large_model, run_node, ksample):
    def pair(offload):
        return run_node("TStitchModelPair", small_model=small_model, large_model=large_model, small_fraction=0.4,
                        switch_by="steps", offload_idle_model=offload)[0]

    assert torch.equal(ksample(pair(True), sampler_name), ksample(pair(False), sampler_name))


def test_the_sampler_and_the_guider_offload_too(small_model, large_model, run_node, residency, conds, latent):
    tag, log = residency
    positive, negative = conds
    run_node("TStitchKSampler", small_model=tag(small_model, "S"), large_model=tag(large_model, "L"),
             small_fraction=0.5, switch_by="steps", seed=0, steps=4, cfg=5.0, sampler_name="euler",
             scheduler="normal", positive=positive, negative=negative, latent_image=latent(), denoise=1.0,
             offload_idle_model=True)
    assert log == [("S", "S")] * 2 + [("L", "L")] * 2
    log.clear()
    guider = run_node("TStitchGuider", small_model=tag(small_model, "S"), large_model=tag(large_model, "L"),
                      small_fraction=0.5, switch_by="steps", small_positive=positive, small_negative=negative,
                      small_cfg=3.0, large_positive=positive, large_negative=negative, large_cfg=5.0,
                      offload_idle_model=True)[0]
    run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
             sampler=run_node("KSamplerSelect", sampler_name="euler")[0],
             sigmas=run_node("BasicScheduler", model=large_model, scheduler="normal", steps=4, denoise=1.0)[0],
             latent_image=latent())
    assert log == [("S", "S")] * 2 + [("L", "L")] * 2


@pytest.mark.parametrize("switch_by", ["steps", "timestep"])
def test_offloading_routes_shifted_models_as_without_it(switch_by, small_model, large_model, run_node, ksample, tag,
                                                        calls):
    # Wan 2.2 as users run it: ModelSamplingSD3 on both experts, a timestep switch, one model loaded at a time
    small, large = (run_node("ModelSamplingSD3", model=m, shift=3.0)[0] for m in (small_model, large_model))
    results = {}
    for offload in (False, True):
        calls.clear()
        model = run_node("TStitchModelPair", small_model=tag(small, "S"), large_model=tag(large, "L"),
                         small_fraction=0.5, switch_by=switch_by, offload_idle_model=offload)[0]
        results[offload] = (ksample(model, "euler", "simple"), calls.names())
    assert results[True][1] == results[False][1]
    assert results[False][1].startswith("S") and results[False][1].endswith("L")
    assert torch.equal(results[True][0], results[False][0])


def sample_three_ways(how, model, run_node, conds, latent, small=None, large=None, fraction=0.4):
    positive, negative = conds
    if how == "ksampler":
        return run_node("KSampler", model=model, seed=0, steps=5, cfg=5.0, sampler_name="euler", scheduler="normal",
                        positive=positive, negative=negative, latent_image=latent(), denoise=1.0)
    if how == "sampler_custom_advanced":
        guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=5.0)[0]
    else:
        guider = run_node("TStitchGuider", small_model=small, large_model=large, small_fraction=fraction,
                          switch_by="steps", small_positive=positive, small_negative=negative, small_cfg=3.0,
                          large_positive=positive, large_negative=negative, large_cfg=5.0, offload_idle_model=True)[0]
    return run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                    sampler=run_node("KSamplerSelect", sampler_name="euler")[0],
                    sigmas=run_node("BasicScheduler", model=model, scheduler="normal", steps=5, denoise=1.0)[0],
                    latent_image=latent())


@pytest.mark.parametrize("how", ["ksampler", "sampler_custom_advanced", "tstitch_guider"])
def test_offload_loads_each_model_once_when_its_first_step_comes(how, small_model, large_model, run_node, conds,
                                                                 latent, load_events):
    """The large model used to be loaded before the small model's steps, unloaded for them and loaded again."""
    name, events = load_events
    small, large = name(small_model, "S"), name(large_model, "L")
    pair = run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=0.4, switch_by="steps",
                    offload_idle_model=True)[0]
    sample_three_ways(how, pair, run_node, conds, latent, small, large)
    assert events == ["+S", "-S", "+L"]


def test_offload_loads_three_models_in_the_order_they_run(small_model, medium_model, large_model, run_node, conds,
                                                         latent, load_events):
    name, events = load_events
    small, medium, large = name(small_model, "S"), name(medium_model, "B"), name(large_model, "L")
    inner = run_node("TStitchModelPair", small_model=medium, large_model=large, small_fraction=0.6,
                     switch_by="steps")[0]
    outer = run_node("TStitchModelPair", small_model=small, large_model=inner, small_fraction=0.2, switch_by="steps",
                     offload_idle_model=True)[0]
    sample_three_ways("ksampler", outer, run_node, conds, latent)
    assert events == ["+S", "-S", "+B", "-B", "+L"]


@pytest.mark.parametrize("fraction", [0.0, 0.4])
def test_without_offload_every_model_is_loaded_together_once_and_with_it_an_unused_one_is_not(
        fraction, small_model, large_model, run_node, conds, latent, load_events):
    name, events = load_events
    small, large = name(small_model, "S"), name(large_model, "L")
    import comfy.model_management

    for offload in (False, True):
        comfy.model_management.unload_all_models()
        events.clear()
        pair = run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=fraction,
                        switch_by="steps", offload_idle_model=offload)[0]
        sample_three_ways("ksampler", pair, run_node, conds, latent)
        assert events == (["+LS"] if not offload else ["+L"] if fraction == 0.0 else ["+S", "-S", "+L"]), offload
