"""Bad inputs fail at the node, before the first step, with a message that names what differs."""

import pytest

from tstitch_dev.models import TINY_SDXL


@pytest.fixture(scope="module")
def sdxl_model(load_unet):
    return load_unet(TINY_SDXL)


def test_sd15_with_sdxl_names_both_latent_spaces(small_model, sdxl_model, stitch):
    with pytest.raises(ValueError) as error:
        stitch(small_model, sdxl_model)
    message = str(error.value)
    assert "small_model (SD15)" in message and "large_model (KOALA_700M)" in message
    assert "SD15 latents" in message and "SDXL latents" in message


def test_sdxl_small_with_sd15_large_is_rejected_too(sdxl_model, large_model, stitch):
    with pytest.raises(ValueError, match=r"small_model \(KOALA_700M\) uses SDXL latents"):
        stitch(sdxl_model, large_model)


def test_discrete_with_flow_sigmas_names_both_families(small_model, large_model, run_node, stitch):
    large_flow = run_node("ModelSamplingSD3", model=large_model, shift=3.0)[0]
    with pytest.raises(ValueError) as error:
        stitch(small_model, large_flow)
    message = str(error.value)
    assert "sigmas that mean different things" in message
    assert "(EPS)" in message and "(CONST)" in message


@pytest.mark.parametrize("fraction", [-0.1, 1.5, 2.0])
def test_fraction_outside_zero_to_one_is_rejected(fraction, small_model, large_model, stitch):
    with pytest.raises(ValueError, match=f"small_fraction must be between 0 and 1, got {fraction}"):
        stitch(small_model, large_model, fraction)


def test_unknown_switch_mode_is_rejected(small_model, large_model, stitch):
    with pytest.raises(ValueError, match="switch_by must be one of steps, timestep"):
        stitch(small_model, large_model, 0.4, "sigma")


def test_the_same_loaded_model_on_both_sides_is_rejected(small_model, stitch):
    lora_on_a_clone = small_model.clone()
    with pytest.raises(ValueError, match="small_model and large_model are the same loaded model"):
        stitch(lora_on_a_clone, small_model)


def test_nested_fractions_that_starve_the_middle_model_are_rejected(small_model, medium_model, large_model, stitch):
    with pytest.raises(ValueError, match="first has 0.6 and the next one 0.3"):
        stitch(small_model, stitch(medium_model, large_model, 0.3), 0.6)


def test_timestep_mode_needs_timesteps_that_run_from_zero(small_model, large_model, run_node, stitch):
    small_edm, large_edm = (run_node("ModelSamplingContinuousEDM", model=m, sampling="eps", sigma_max=120.0,
                                     sigma_min=0.002)[0] for m in (small_model, large_model))
    stitch(small_edm, large_edm, 0.4, "steps")  # step counting works for any model
    with pytest.raises(ValueError, match="Use switch_by 'steps' with this model"):
        stitch(small_edm, large_edm, 0.4, "timestep")


def test_stitch_ksampler_checks_its_inputs_the_same_way(small_model, sdxl_model, run_node, conds, latent):
    positive, negative = conds
    with pytest.raises(ValueError, match="SD15 latents"):
        run_node("TStitchKSampler", small_model=small_model, large_model=sdxl_model, small_fraction=0.4,
                 switch_by="steps", seed=0, steps=10, cfg=5.0, sampler_name="euler", scheduler="normal",
                 positive=positive, negative=negative, latent_image=latent())


@pytest.mark.parametrize("inner_rule, outer_rule", [("timestep", "steps"), ("steps", "timestep")])
def test_mixed_rule_nests_that_starve_the_middle_model_are_refused_before_the_first_call(
        inner_rule, outer_rule, small_model, medium_model, large_model, stitch, ksample, tag, calls):
    inner = stitch(tag(small_model, "S"), tag(medium_model, "B"), 0.6, inner_rule)
    nested = stitch(inner, tag(large_model, "L"), 0.2, outer_rule)
    with pytest.raises(ValueError) as error:
        ksample(nested)
    assert calls == []
    message = str(error.value)
    assert "T-Stitch" in message and "0.6" in message and "0.2" in message
    assert "steps 1-6 of 10" in message and f"switch_by {inner_rule}" in message


def test_a_mixed_rule_nest_in_order_runs_all_three_models(small_model, medium_model, large_model, stitch, ksample,
                                                         tag, calls):
    inner = stitch(tag(small_model, "S"), tag(medium_model, "B"), 0.2, "timestep")
    ksample(stitch(inner, tag(large_model, "L"), 0.6, "steps"))
    names = calls.names()
    assert names.startswith("S") and "B" in names and names.endswith("LLLL") and len(names) == 10, names


@pytest.mark.latest_host_only  # DualModelGuider is newer than the version floor
def test_a_stitched_model_where_its_guider_cannot_route_it_is_refused(small_model, large_model, stitch, run_node,
                                                                     conds, latent, tag, calls):
    positive, negative = conds
    pair = stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4)
    for model, model_negative in ((large_model, pair), (pair, pair)):
        guider = run_node("DualModelGuider", model=model, model_negative=model_negative, positive=positive,
                          negative=negative, cfg=5.0)[0]
        with pytest.raises(ValueError, match="T-Stitch") as error:
            run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                     sampler=run_node("KSamplerSelect", sampler_name="euler")[0],
                     sigmas=run_node("BasicScheduler", model=large_model, scheduler="normal", steps=4,
                                     denoise=1.0)[0], latent_image=latent())
        assert calls == [], model_negative
        assert "model_negative" in str(error.value)


@pytest.mark.latest_host_only  # DualModelGuider is newer than the version floor
def test_a_stitched_model_as_the_positive_model_of_a_dual_model_guider_routes(small_model, large_model, stitch,
                                                                              run_node, conds, latent, tag, calls):
    positive, negative = conds
    guider = run_node("DualModelGuider", model=stitch(tag(small_model, "S"), tag(large_model, "L"), 0.5),
                      model_negative=tag(large_model, "N"), positive=positive, negative=negative, cfg=5.0)[0]
    run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
             sampler=run_node("KSamplerSelect", sampler_name="euler")[0],
             sigmas=run_node("BasicScheduler", model=large_model, scheduler="normal", steps=4, denoise=1.0)[0],
             latent_image=latent())
    # the positive pass is stitched; ComfyUI runs model_negative's pass with the same step's model options
    assert calls.names() == "SS" "SS" "LL" "LL"


def test_a_wan_text_to_video_model_with_an_image_to_video_model_names_both_widths(load_unet, stitch):
    from tstitch_dev.models import TINY_WAN_I2V_LARGE, TINY_WAN_SMALL

    with pytest.raises(ValueError) as error:
        stitch(load_unet(TINY_WAN_SMALL), load_unet(TINY_WAN_I2V_LARGE))
    message = str(error.value)
    assert "takes 16 input channels" in message and "takes 36" in message


@pytest.mark.latest_host_only  # the ar_video sampler is newer than the version floor
def test_the_ar_video_sampler_is_refused_before_the_first_call(small_model, large_model, stitch, run_node, conds,
                                                               latent, tag, calls):
    positive, negative = conds
    model = stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4)
    guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=5.0)[0]
    with pytest.raises(ValueError, match="T-Stitch can't run the ar_video sampler"):
        run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                 sampler=run_node("SamplerARVideo", num_frame_per_block=1)[0],
                 sigmas=run_node("BasicScheduler", model=large_model, scheduler="normal", steps=4, denoise=1.0)[0],
                 latent_image=latent())
    assert calls == []


@pytest.mark.latest_host_only  # MultiGPU CFG Split is newer than the version floor
@pytest.mark.parametrize("where", ["pair", "small", "large"])
def test_multigpu_cfg_split_with_offload_is_refused_before_anything_loads(where, small_model, large_model, run_node,
                                                                          ksample, tag, calls, monkeypatch):
    """With offload, the earlier models' copies on other GPUs would stay loaded while the large model runs, and the
    stitched model's copies carry none of the earlier models to split their steps with (the split itself works
    without offload: tests/test_multigpu.py)."""
    import torch
    import comfy.model_management
    import comfy.multigpu

    # a second device name on the CPU, as a second GPU would be listed
    monkeypatch.setattr(comfy.model_management, "get_all_torch_devices",
                        lambda exclude_current=False: [torch.device("cpu"), torch.device("cpu", 0)])
    # what the MultiGPU_WorkUnits node calls, less its reuse of loaded clones: that scan fails (AttributeError on
    # None) on the loaded models whose patchers other tests of this process let go of
    split = lambda model: comfy.multigpu.create_multigpu_deepclones(model, 2)  # noqa: E731
    pair = lambda s, l: run_node("TStitchModelPair", small_model=s, large_model=l, small_fraction=0.4,  # noqa: E731
                                 switch_by="steps", offload_idle_model=True)[0]
    small, large = tag(small_model, "S"), tag(large_model, "L")
    model = (split(pair(small, large)) if where == "pair" else
             pair(split(small), large) if where == "small" else pair(small, split(large)))
    loaded = []
    monkeypatch.setattr(comfy.model_management, "load_models_gpu", lambda models, *a, **k: loaded.append(models))
    with pytest.raises(ValueError, match="offload_idle_model") as error:
        ksample(model)
    assert calls == [] and loaded == []
    assert ("small model" if where == "small" else "large model") in str(error.value)
    assert "MultiGPU CFG Split" in str(error.value)
