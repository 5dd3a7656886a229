"""Which model runs each call, on the real host: samplers, schedulers, step ranges, nesting."""

import math

import pytest
import torch



@pytest.mark.parametrize("sampler_name", ["euler", "dpmpp_2m", "heun"])
def test_fraction_zero_is_the_large_model_alone_bit_for_bit(sampler_name, small_model, large_model, stitch, ksample):
    expected = ksample(large_model, sampler_name)
    assert torch.equal(ksample(stitch(small_model, large_model, 0.0), sampler_name), expected)


@pytest.mark.parametrize("sampler_name", ["euler", "dpmpp_2m", "heun", "dpmpp_2m_cfg_pp"])
def test_fraction_one_is_the_small_model_alone_bit_for_bit(sampler_name, small_model, large_model, stitch, ksample):
    expected = ksample(small_model, sampler_name)
    assert torch.equal(ksample(stitch(small_model, large_model, 1.0), sampler_name), expected)


# 10 steps at f = 0.4: the small model runs steps 0-3. Heun evaluates each step at its start and
# (but for the last step) at its end; step 3's corrector lands on the switch sigma, so it is large's.
@pytest.mark.parametrize("sampler_name, expected", [
    ("euler", "SSSS" + "LLLLLL"),
    ("dpmpp_2m", "SSSS" + "LLLLLL"),
    ("heun", "SS" "SS" "SS" "SL" + "LL" * 5 + "L"),
])
def test_each_model_call_goes_to_the_model_of_its_step(sampler_name, expected, small_model, large_model, stitch,
                                                       ksample, tag, calls):
    ksample(stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4), sampler_name)
    assert calls.names() == expected


@pytest.mark.parametrize("sampler_name", ["dpmpp_2s_ancestral", "dpmpp_sde", "dpm_2", "res_multistep"])
def test_evaluations_between_schedule_points_follow_their_sigma(sampler_name, small_model, large_model, stitch,
                                                                ksample, tag, calls):
    import comfy.samplers

    ksample(tag(large_model, "L"), sampler_name)
    evaluated = [sigma for _, sigma in calls]
    calls.clear()
    ksample(stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4), sampler_name)
    sigmas = comfy.samplers.KSampler(large_model, 10, "cpu", sampler=sampler_name, scheduler="normal").sigmas.tolist()
    switch_sigma = sigmas[4]
    assert [sigma for _, sigma in calls] == evaluated  # the same evaluation points as the large model alone
    assert calls.names() == "".join("S" if sigma > switch_sigma else "L" for sigma in evaluated)
    assert "S" in calls.names() and "L" in calls.names()


@pytest.mark.parametrize("scheduler, steps, denoise", [
    ("normal", 10, 1.0), ("karras", 7, 1.0), ("exponential", 13, 1.0), ("simple", 10, 0.6), ("beta", 12, 1.0),
])
def test_timestep_mode_routes_by_t_over_T_whatever_the_schedule(scheduler, steps, denoise, small_model, large_model,
                                                                 stitch, ksample, tag, calls):
    fraction = 0.3
    ksample(stitch(tag(small_model, "S"), tag(large_model, "L"), fraction, "timestep"), scheduler=scheduler,
            steps=steps, denoise=denoise)
    model_sampling = large_model.get_model_object("model_sampling")
    for name, sigma in calls:
        t = float(model_sampling.timestep(torch.tensor([sigma])))
        assert name == ("S" if t / 999 >= 1 - fraction else "L"), (sigma, t)
    if denoise == 1.0:
        assert "S" in calls.names() and "L" in calls.names()


def test_timestep_mode_on_flow_models_reads_sigma_as_t_over_T(small_model, large_model, run_node, stitch, ksample,
                                                              tag, calls):
    # the same rule holds when both models are flow models (ModelSamplingSD3, shift 3): there t / T is sigma
    small_flow, large_flow = (run_node("ModelSamplingSD3", model=m, shift=3.0)[0] for m in (small_model, large_model))
    ksample(stitch(tag(small_flow, "S"), tag(large_flow, "L"), 0.5, "timestep"), scheduler="simple")
    assert calls.names().startswith("S") and calls.names().endswith("L")
    for name, sigma in calls:
        assert name == ("S" if sigma >= 0.5 else "L"), sigma


def test_ksampler_advanced_counts_only_the_steps_it_runs(small_model, large_model, stitch, run_node, conds, latent,
                                                         tag, calls):
    positive, negative = conds
    model = stitch(tag(small_model, "S"), tag(large_model, "L"), 0.5)
    run_node("KSamplerAdvanced", model=model, add_noise="enable", noise_seed=0, steps=10, cfg=5.0,
             sampler_name="euler", scheduler="normal", positive=positive, negative=negative, latent_image=latent(),
             start_at_step=2, end_at_step=8, return_with_leftover_noise="enable")
    assert calls.names() == "SSS" + "LLL"  # steps 2-7: six steps, the first half small


def test_denoise_below_one_counts_only_the_steps_it_runs(small_model, large_model, stitch, ksample, tag, calls):
    generator = torch.Generator().manual_seed(7)
    image_latent = {"samples": torch.randn(1, 4, 8, 8, generator=generator)}
    out = ksample(stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4), denoise=0.5,
                  latent_image=image_latent)
    assert calls.names() == "SSSS" + "LLLLLL"
    assert torch.isfinite(out).all()


def test_batch_with_cfg_routes_whole_batches(small_model, large_model, stitch, ksample, tag, calls, latent):
    out = ksample(stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4), latent_image=latent(batch_size=3))
    assert calls.names() == "SSSS" + "LLLLLL"
    assert out.shape == (3, 4, 8, 8)
    assert not torch.equal(out[0], out[1])  # each image has its own noise


def test_nested_pair_runs_three_stages_on_one_trajectory(small_model, medium_model, large_model, stitch, ksample,
                                                         tag, calls):
    s, b, l = tag(small_model, "S"), tag(medium_model, "B"), tag(large_model, "L")
    inner = stitch(b, l, 0.5)
    ksample(stitch(s, inner, 0.2))
    # every fraction on the full trajectory: S 20%, B up to 50%, L the rest
    assert calls.names() == "SS" + "BBB" + "LLLLL"


def test_nesting_on_either_side_gives_the_same_three_stages(small_model, medium_model, large_model, stitch, ksample):
    outer_large = stitch(small_model, stitch(medium_model, large_model, 0.5), 0.2)
    outer_small = stitch(stitch(small_model, medium_model, 0.2), large_model, 0.5)
    assert torch.equal(ksample(outer_large, "dpmpp_2m"), ksample(outer_small, "dpmpp_2m"))


def test_a_pair_of_pairs_is_a_valid_four_stage_stitch(small_model, medium_model, large_model, load_unet, stitch,
                                                      ksample, tag, calls):
    from tstitch_dev.models import MINI_SD15_SMALL_ALT

    s2 = tag(load_unet(MINI_SD15_SMALL_ALT), "T")
    front = stitch(tag(small_model, "S"), s2, 0.2)
    back = stitch(tag(medium_model, "B"), tag(large_model, "L"), 0.7)
    ksample(stitch(front, back, 0.4))
    assert calls.names() == "SS" + "TT" + "BBB" + "LLL"


@pytest.mark.parametrize("sampler_name", ["euler", "ddim", "uni_pc", "lcm", "dpmpp_3m_sde", "euler_ancestral_cfg_pp",
                                          "dpmpp_2m_cfg_pp", "deis", "ipndm", "sa_solver", "er_sde", "dpm_fast",
                                          "gradient_estimation", "seeds_2"])
def test_samplers_run_both_models_in_one_pass(sampler_name, small_model, large_model, stitch, ksample, tag, calls):
    out = ksample(stitch(tag(small_model, "S"), tag(large_model, "L"), 0.5, "timestep"), sampler_name, steps=6)
    names = calls.names()
    assert torch.isfinite(out).all()
    assert names.startswith("S") and names.endswith("L") and "LS" not in names, names
    assert not math.isclose(out.abs().mean().item(), 0.0)


def test_custom_samplers_take_the_stitched_model(small_model, large_model, stitch, run_node, conds, latent, ksample):
    positive, negative = conds
    model = stitch(small_model, large_model, 0.4)
    sampler = run_node("KSamplerSelect", sampler_name="dpmpp_2m")[0]
    sigmas = run_node("BasicScheduler", model=model, scheduler="normal", steps=10, denoise=1.0)[0]
    expected = ksample(model, "dpmpp_2m")

    custom = run_node("SamplerCustom", model=model, add_noise=True, noise_seed=0, cfg=5.0, positive=positive,
                      negative=negative, sampler=sampler, sigmas=sigmas, latent_image=latent())[0]
    assert torch.equal(custom["samples"], expected)

    guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=5.0)[0]
    noise = run_node("RandomNoise", noise_seed=0)[0]
    advanced = run_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                        latent_image=latent())[0]
    assert torch.equal(advanced["samples"], expected)


@pytest.mark.parametrize("guider_id, guider_inputs", [
    ("BasicGuider", {}),
    ("DualCFGGuider", {"cfg_conds": 5.0, "cfg_cond2_negative": 2.0, "style": "regular"}),
])
def test_other_guiders_route_each_call_by_its_sigma(guider_id, guider_inputs, small_model, large_model, stitch,
                                                    run_node, conds, latent, tag, calls):
    positive, negative = conds
    model = stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4)
    if guider_id == "BasicGuider":
        inputs = dict(model=model, conditioning=positive)
    else:
        inputs = dict(model=model, cond1=positive, cond2=negative, negative=negative, **guider_inputs)
    guider = run_node(guider_id, **inputs)[0]
    run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
             sampler=run_node("KSamplerSelect", sampler_name="euler")[0],
             sigmas=run_node("BasicScheduler", model=model, scheduler="normal", steps=10, denoise=1.0)[0],
             latent_image=latent())
    assert calls.names() == "SSSS" + "LLLLLL"
