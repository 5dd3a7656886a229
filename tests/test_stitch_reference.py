"""The stitched sampler against an independent reference: our own Euler and DPM++ 2M loops over the
two models' CFG denoisers, and what two chained KSamplerAdvanced nodes can and cannot do."""

import pytest
import torch

from tstitch_dev.testing import CFG, STEPS, cfg_denoiser, euler

SWITCH_STEP = 4  # round(0.4 * 10)

# The reference evaluates cond and uncond in separate forward passes where ComfyUI batches them,
# so results agree to float32 rounding, not bit for bit: 1e-4 relative to the output's scale.
RTOL = 1e-4


def dpmpp_2m(denoisers, x, sigmas):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) in log-sigma time, one history across both models."""
    previous = None
    for i in range(len(sigmas) - 1):
        denoised = denoisers[i](x, sigmas[i])
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
            h = t_next - t
            corrected = denoised
            if previous is not None:
                r = (t + sigmas[i - 1].log()) / h
                corrected = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
            x = (sigmas[i + 1] / sigmas[i]) * x - torch.expm1(-h) * corrected
        previous = denoised
    return x


@pytest.fixture(scope="module")
def reference(small_model, large_model, conds, latent):
    import comfy.model_management
    import comfy.sample
    import comfy.samplers

    comfy.model_management.load_models_gpu([small_model, large_model])
    positive, negative = (c[0][0] for c in conds)
    small, large = (cfg_denoiser(m, positive, negative, CFG) for m in (small_model, large_model))
    sigmas = comfy.samplers.calculate_sigmas(large_model.get_model_object("model_sampling"), "normal", STEPS)

    def run(method, batch_size=1, switch_step=SWITCH_STEP):
        empty = latent(batch_size)["samples"]
        noise = comfy.sample.prepare_noise(empty, 0)
        # ComfyUI starts a full denoise from sigma_max at noise * sqrt(1 + sigma^2) (max_denoise)
        x = noise * torch.sqrt(1.0 + sigmas[0] ** 2)
        denoisers = [small] * switch_step + [large] * (STEPS - switch_step)
        with torch.no_grad():
            x = method(denoisers, x, sigmas)
        return large_model.model.process_latent_out(x)

    return run


def assert_matches(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=RTOL * expected.abs().max().item())


@pytest.mark.parametrize("method, sampler_name", [(euler, "euler"), (dpmpp_2m, "dpmpp_2m")])
def test_stitched_sampler_matches_the_reference_loop(method, sampler_name, reference, small_model, large_model,
                                                     stitch, ksample):
    assert_matches(ksample(stitch(small_model, large_model, 0.4), sampler_name), reference(method))


@pytest.mark.parametrize("switch_step", [SWITCH_STEP - 1, SWITCH_STEP + 1])
def test_the_tolerance_tells_a_switch_one_step_off_apart(switch_step, reference, small_model, large_model, stitch,
                                                         ksample):
    actual = ksample(stitch(small_model, large_model, 0.4), "dpmpp_2m")
    with pytest.raises(AssertionError):
        assert_matches(actual, reference(dpmpp_2m, switch_step=switch_step))


def test_batch_with_cfg_matches_the_reference_loop(reference, small_model, large_model, stitch, ksample, latent):
    actual = ksample(stitch(small_model, large_model, 0.4), "euler", latent_image=latent(batch_size=3))
    assert_matches(actual, reference(euler, batch_size=3))


@pytest.fixture(scope="module")
def chained_ksampler_advanced(run_node, conds, latent):
    """The split done today: KSamplerAdvanced on the small model for steps 0-3, another on the large for 4-9."""
    positive, negative = conds

    def advanced(model, sampler_name, latent_image, add_noise, start, end, leftover_noise):
        return run_node("KSamplerAdvanced", model=model, add_noise=add_noise, noise_seed=0, steps=STEPS, cfg=CFG,
                        sampler_name=sampler_name, scheduler="normal", positive=positive, negative=negative,
                        latent_image=latent_image, start_at_step=start, end_at_step=end,
                        return_with_leftover_noise=leftover_noise)[0]

    def run(small, large, sampler_name):
        first = advanced(small, sampler_name, latent(), "enable", 0, SWITCH_STEP, "enable")
        return advanced(large, sampler_name, first, "disable", SWITCH_STEP, 10000, "disable")["samples"]

    return run


def test_euler_stitch_equals_two_chained_ksampler_advanced(small_model, large_model, stitch, ksample,
                                                           chained_ksampler_advanced):
    # Euler keeps no history, so the split is the same trajectory (up to the latent scaling round trip)
    assert_matches(ksample(stitch(small_model, large_model, 0.4), "euler"),
                   chained_ksampler_advanced(small_model, large_model, "euler"))


def test_multistep_history_crosses_the_switch_where_chaining_drops_it(small_model, large_model, stitch, ksample,
                                                                      reference, chained_ksampler_advanced):
    stitched = ksample(stitch(small_model, large_model, 0.4), "dpmpp_2m")
    assert_matches(stitched, reference(dpmpp_2m))
    chained = chained_ksampler_advanced(small_model, large_model, "dpmpp_2m")
    with pytest.raises(AssertionError):
        assert_matches(chained, stitched)
