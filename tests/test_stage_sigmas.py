"""TStitchStageSigmas: each model of a pair runs exactly its own steps, spaced by the scheduler with its own
model sampling, through SamplerCustomAdvanced with the pair; bad counts refused before the first step."""

import pytest
import torch

from tstitch_dev.models import TINY_WAN_HIGH_NOISE, TINY_WAN_LOW_NOISE
from tstitch_dev.testing import CFG, cfg_denoiser, euler


def stage_sigmas(run_node, model, counts, scheduler="normal", denoise=1.0):
    return run_node("TStitchStageSigmas", model=model, scheduler=scheduler, steps_per_model=counts,
                    denoise=denoise)[0]


@pytest.fixture(scope="module")
def custom_sample(run_node, conds, latent):
    """Sample ``model`` on ``sigmas`` through SamplerCustomAdvanced (euler, CFG, seed 0); returns the latent."""

    def sample(model, sigmas, conditioning=conds, latent_image=None):
        positive, negative = conditioning
        latent_image = latent() if latent_image is None else latent_image
        noise = run_node("RandomNoise", noise_seed=0)[0]
        guider = run_node("CFGGuider", model=model, positive=positive, negative=negative, cfg=CFG)[0]
        sampler = run_node("KSamplerSelect", sampler_name="euler")[0]
        return run_node("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                        latent_image=latent_image)[0]["samples"]

    return sample


@pytest.fixture(scope="module")
def wan(load_unet, run_node):
    """Wan 2.2's experts as the recipe runs them: the high-noise one with shift 8, the low-noise one with 5."""
    shifted = lambda spec, shift: run_node("ModelSamplingSD3", model=load_unet(spec), shift=shift)[0]
    return shifted(TINY_WAN_HIGH_NOISE, 8.0), shifted(TINY_WAN_LOW_NOISE, 5.0)


@pytest.fixture(scope="module")
def wan_inputs(run_node):
    generator = torch.Generator().manual_seed(5)
    conditioning = tuple([[torch.randn(1, 16, 4096, generator=generator), {}]] for _ in range(2))
    video = run_node("EmptyHunyuanLatentVideo", width=32, height=32, length=1, batch_size=1)[0]
    return dict(conditioning=conditioning, latent_image=video)


def steps_of(calls):
    """The model of each step: euler calls each model once per step, cond and uncond batched."""
    return calls.names()


@pytest.mark.parametrize("rule, fraction", [("timestep", 0.5), ("steps", 0.4)])
@pytest.mark.parametrize("counts", ["2, 3", "4, 1", "1, 6"])
def test_each_sd_model_runs_exactly_its_steps(rule, fraction, counts, small_model, large_model, stitch, tag, calls,
                                              run_node, custom_sample):
    n1, n2 = (int(c) for c in counts.split(","))
    if rule == "steps":
        fraction = n1 / (n1 + n2)
    pair = stitch(tag(small_model, "S"), tag(large_model, "L"), fraction, rule)
    sigmas = stage_sigmas(run_node, pair, counts)
    assert len(sigmas) == n1 + n2 + 1 and float(sigmas[-1]) == 0.0
    custom_sample(pair, sigmas)
    assert steps_of(calls) == "S" * n1 + "L" * n2


@pytest.mark.parametrize("rule", ["timestep", "steps"])
def test_each_of_three_sd_models_runs_exactly_its_steps(rule, small_model, medium_model, large_model, stitch, tag,
                                                         calls, run_node, custom_sample):
    fractions = (0.2, 0.6) if rule == "timestep" else (1 / 6, 3 / 6)
    pair = stitch(tag(small_model, "S"), stitch(tag(medium_model, "M"), tag(large_model, "L"), fractions[1], rule),
                  fractions[0], rule)
    custom_sample(pair, stage_sigmas(run_node, pair, "1, 2, 3"))
    assert steps_of(calls) == "S" + "MM" + "LLL"


@pytest.mark.parametrize("rule", ["timestep", "steps"])
def test_wan_experts_each_run_exactly_their_steps(rule, wan, stitch, tag, calls, run_node, custom_sample, wan_inputs):
    high, low = wan
    fraction = 0.125 if rule == "timestep" else 0.5
    pair = stitch(tag(high, "H"), tag(low, "L"), fraction, rule)
    sigmas = stage_sigmas(run_node, pair, "4, 4", scheduler="simple")
    out = custom_sample(pair, sigmas, **wan_inputs)
    assert torch.isfinite(out).all() and steps_of(calls) == "HHHH" + "LLLL"
    if rule == "timestep":  # Wan 2.2 t2v: the high-noise expert runs t/T >= 0.875, t/T being sigma for flow
        assert all(sigma >= 0.875 for name, sigma in calls if name == "H")
        assert float(sigmas[4]) == float(torch.tensor(0.875).nextafter(torch.tensor(0.0)))


def test_three_wan_models_each_run_exactly_their_steps(wan, load_unet, run_node, stitch, tag, calls, custom_sample,
                                                       wan_inputs):
    from tstitch_dev.models import TINY_WAN_SMALL

    high, low = wan
    draft = run_node("ModelSamplingSD3", model=load_unet(TINY_WAN_SMALL), shift=8.0)[0]
    pair = stitch(tag(draft, "D"), stitch(tag(high, "H"), tag(low, "L"), 0.125, "timestep"), 0.05, "timestep")
    custom_sample(pair, stage_sigmas(run_node, pair, "2, 3, 2", scheduler="simple"), **wan_inputs)
    assert steps_of(calls) == "DD" + "HHH" + "LL"


@pytest.mark.parametrize("name", ["wan22_a14b_t2v_lightning_4_4", "wan22_a14b_i2v_lightning_4_4"])
def test_the_lightning_examples_give_each_expert_exactly_four_steps(name, run_node, stitch, tag, calls, custom_sample,
                                                                    wan_inputs):
    """The example's own settings (read from its JSON) on the stand-ins of its files: each expert with its
    Lightning LoRA and shift, the pair, the stage sigmas; the high-noise expert's 4 steps all at or above the
    published boundary, the low-noise expert's 4 below it."""
    import json

    import folder_paths
    from tstitch_dev.examples import EXAMPLE_FILES, example_path

    workflow = json.loads(example_path(name).read_text())
    widgets = lambda node_type: [node["widgets_values"] for node in workflow["nodes"] if node["type"] == node_type]
    ((scheduler, counts, denoise),) = widgets("TStitchStageSigmas")
    assert counts == "4, 4" and widgets("ModelSamplingSD3") == [[5.0], [5.0]]
    # the switch, set once: on the pair (image to video) or on the T-Stitch Guider the sigmas read (text to video)
    ((fraction, switch_by, *_),) = widgets("TStitchModelPair") + widgets("TStitchGuider")

    def stand_in(folder, file_name):
        path = EXAMPLE_FILES[(folder, file_name)]()
        folder_paths.add_model_folder_path(folder, str(path.parent))
        return path.name

    def expert(noise):
        ((unet, dtype),) = [w for w in widgets("UNETLoader") if noise in w[0]]
        ((lora, strength),) = [w for w in widgets("LoraLoaderModelOnly") if noise in w[0]]
        model = run_node("UNETLoader", unet_name=stand_in("diffusion_models", unet), weight_dtype=dtype)[0]
        model = run_node("LoraLoaderModelOnly", model=model, lora_name=stand_in("loras", lora),
                         strength_model=strength)[0]
        return run_node("ModelSamplingSD3", model=model, shift=5.0)[0]

    pair = stitch(tag(expert("high_noise"), "H"), tag(expert("low_noise"), "L"), fraction, switch_by)
    custom_sample(pair, stage_sigmas(run_node, pair, counts, scheduler, denoise), **wan_inputs)
    assert steps_of(calls) == "HHHH" + "LLLL"
    boundary = 1.0 - fraction  # t/T is sigma for flow models
    assert all((sigma >= boundary) == (model == "H") for model, sigma in calls)


def test_the_sd15_recipe_gives_the_small_model_4_steps_and_the_large_one_16(small_model, large_model, stitch, tag,
                                                                            calls, run_node, custom_sample):
    """README: BK-SDM-Tiny 4 steps, then SD1.5 16, with the steps rule: small_fraction 0.2 = 4 / 20."""
    pair = stitch(tag(small_model, "S"), tag(large_model, "L"), 0.2, "steps")
    sigmas = stage_sigmas(run_node, pair, "4, 16", scheduler="karras")
    custom_sample(pair, sigmas)
    assert len(sigmas) == 21 and steps_of(calls) == "S" * 4 + "L" * 16


def t_over_t_max(model_sampling, sigma):
    """t / T as the pair's timestep rule reads it: the timestep the model sees, over its value at sigma_max."""
    t_max = float(model_sampling.timestep(model_sampling.sigma_max))
    return float(model_sampling.timestep(torch.tensor(float(sigma)))) / t_max


def discrete_time(model_sampling):
    """(u -> sigma, sigma -> u) of a discrete model: sigma(t) interpolates log sigma between integer timesteps."""
    import numpy as np

    log_sigmas = model_sampling.log_sigmas.double().numpy()
    sigma_of = lambda u: float(model_sampling.sigma(torch.tensor(u * 999.0)))
    return sigma_of, lambda sigma: float(np.interp(np.log(sigma), log_sigmas, np.arange(1000))) / 999.0


def flow_time(model_sampling):
    """(u -> sigma, sigma -> u) of a shifted flow model: sigma = s u / (1 + (s - 1) u), u the time before the shift."""
    s = float(model_sampling.shift)
    return lambda u: s * u / (1 + (s - 1) * u), lambda sigma: sigma / (s - (s - 1) * sigma)


def hand_stage(model_sampling, scheduler, steps, first, boundary, time):
    """The documented spacing, written out: the scheduler's (n+1)-step schedule's first n + 1 sigmas stretched
    linearly in the model's time u from the stage's first sigma to its boundary, or, for the last stage, its
    n-step schedule's first n sigmas with their u scaled by u(first) / u(the schedule's first sigma)."""
    import comfy.samplers

    sigma_of, u_of = time(model_sampling)
    if boundary == 0:
        points = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps).tolist()[:steps]
        scale = u_of(first) / u_of(points[0])
        return [first] + [sigma_of(u_of(s) * scale) for s in points[1:]]
    points = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps + 1).tolist()[:steps + 1]
    u = [u_of(s) for s in points]
    u_first, u_end = u_of(first), u_of(boundary)
    laid = [u_end + (x - u[-1]) * (u_first - u_end) / (u[0] - u[-1]) for x in u]
    return [first] + [sigma_of(x) for x in laid[1:-1]]


@pytest.mark.parametrize("scheduler", ["simple", "normal", "karras", "beta"])
def test_sd_stage_spacing_is_the_documented_stretch_of_each_scheduler(scheduler, small_model, large_model, stitch,
                                                                      run_node):
    import comfy.samplers

    pair = stitch(small_model, large_model, 0.5, "timestep")
    sigmas = stage_sigmas(run_node, pair, "3, 4", scheduler=scheduler).tolist()
    ms = large_model.get_model_object("model_sampling")
    # the boundary: the largest float32 sigma whose t/T is below 1 - 0.5, so the pair gives it to the large model
    boundary = sigmas[3]
    assert t_over_t_max(ms, boundary) < 0.5 <= t_over_t_max(ms, torch.tensor(boundary).nextafter(torch.tensor(99.)))
    start = comfy.samplers.calculate_sigmas(ms, scheduler, 7)[0].item()
    expected = (hand_stage(small_model.get_model_object("model_sampling"), scheduler, 3, start, boundary,
                           discrete_time) + hand_stage(ms, scheduler, 4, boundary, 0, discrete_time) + [0.0])
    assert sigmas == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("scheduler", ["simple", "normal", "karras", "beta"])
def test_each_wan_expert_is_spaced_with_its_own_shift(scheduler, wan, stitch, run_node):
    high, low = wan
    sigmas = stage_sigmas(run_node, stitch(high, low, 0.125, "timestep"), "3, 3", scheduler=scheduler).tolist()
    boundary = sigmas[3]
    high_ms, low_ms = (m.get_model_object("model_sampling") for m in wan)
    assert (float(high_ms.shift), float(low_ms.shift)) == (8.0, 5.0)
    expected = (hand_stage(high_ms, scheduler, 3, 1.0, boundary, flow_time)
                + hand_stage(low_ms, scheduler, 3, boundary, 0, flow_time) + [0.0])
    assert sigmas == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # with the shifts the other way round, the spacing inside each stage would differ
    swapped = hand_stage(low_ms, scheduler, 3, 1.0, boundary, flow_time) + hand_stage(high_ms, scheduler, 3,
                                                                                      boundary, 0, flow_time)
    assert sigmas[1:3] != pytest.approx(swapped[1:3], rel=1e-3)
    assert sigmas[4:6] != pytest.approx(swapped[4:6], rel=1e-3)


def test_a_plain_split_of_wans_simple_schedule_is_two_chained_ksampler_advanced(load_unet, run_node, stitch,
                                                                                 custom_sample, wan_inputs):
    """simple is uniform in a flow model's time before the shift, so with one shift on both experts "4, 4" split
    by steps is the 8-step simple schedule itself, and sampling it is Wan 2.2's usual KSamplerAdvanced 0-4 / 4-8."""
    import comfy.samplers

    high, low = (run_node("ModelSamplingSD3", model=load_unet(spec), shift=5.0)[0]
                 for spec in (TINY_WAN_HIGH_NOISE, TINY_WAN_LOW_NOISE))
    sigmas = stage_sigmas(run_node, stitch(high, low, 0.5, "steps"), "4, 4", scheduler="simple")
    plain = comfy.samplers.calculate_sigmas(low.get_model_object("model_sampling"), "simple", 8)
    torch.testing.assert_close(sigmas, plain, rtol=1e-5, atol=1e-6)

    positive, negative = wan_inputs["conditioning"]

    def advanced(model, latent_image, add_noise, start, end, leftover):
        return run_node("KSamplerAdvanced", model=model, add_noise=add_noise, noise_seed=0, steps=8, cfg=CFG,
                        sampler_name="euler", scheduler="simple", positive=positive, negative=negative,
                        latent_image=latent_image, start_at_step=start, end_at_step=end,
                        return_with_leftover_noise=leftover)[0]

    chained = advanced(low, advanced(high, wan_inputs["latent_image"], "enable", 0, 4, "enable"), "disable", 4, 8,
                       "disable")["samples"]
    out = custom_sample(stitch(high, low, 0.5, "steps"), sigmas, **wan_inputs)
    torch.testing.assert_close(out, chained, rtol=1e-4, atol=1e-4 * chained.abs().max().item())


def steps_each_stage_starts(sigmas, model_sampling, until):
    """Each stage's steps counted from outside the pack: stage i runs while t/T (read with the last model's
    sampling) stays at or above 1 - until[i]; the sigmas fall, so each stage is a run."""
    stages = [sum(t_over_t_max(model_sampling, sigma) < 1 - share for share in until) for sigma in sigmas[:-1]]
    return [stages.count(index) for index in range(len(until) + 1)]


@pytest.mark.parametrize("kind", ["sd", "wan"])
def test_every_scheduler_gives_each_stage_exactly_its_steps_however_low_the_boundary(kind, small_model, large_model,
                                                                                     wan, stitch, run_node):
    """Every scheduler ComfyUI offers, boundaries from high to low, short and long stages, a pair and
    large -> small -> large Stages: each stage exactly its count, on falling sigmas, or (only where the scheduler
    itself starts below the first boundary, as ddim_uniform does) the refusal that says so."""
    import comfy.samplers

    first, last = (small_model, large_model) if kind == "sd" else wan
    model_sampling = last.get_model_object("model_sampling")
    plans = [(stitch(first, last, share, "timestep"), [share], counts)
             for share in (0.3, 0.7, 0.9) for counts in ([1, 3], [4, 2], [2, 1])]
    plans += [(run_node("TStitchStages", model_1=last, model_2=first, model_3=last, until=f"{a}, {b}",
                        switch_by="timestep", offload_idle_model=False)[0], [a, b], counts)
              for a, b in ((0.2, 0.625), (0.5, 0.9)) for counts in ([2, 3, 2], [1, 1, 4])]
    wrong = []
    for scheduler in comfy.samplers.KSampler.SCHEDULERS:
        for model, until, counts in plans:
            text = ", ".join(map(str, counts))
            try:
                sigmas = stage_sigmas(run_node, model, text, scheduler=scheduler).tolist()
            except ValueError as error:
                if not ("gets no steps: the schedule starts at sigma" in str(error) and scheduler == "ddim_uniform"):
                    wrong.append(f"{scheduler} {until} {text}: {error}")
                continue
            got = steps_each_stage_starts(sigmas, model_sampling, until)
            if got != counts or sigmas[-1] != 0 or any(b >= a for a, b in zip(sigmas, sigmas[1:])):
                wrong.append(f"{scheduler} {until} {text}: steps {got}, sigmas {sigmas}")
    assert wrong == []


@pytest.fixture(scope="module")
def hand_loop(small_model, large_model, conds, latent):
    """Euler over the two models' CFG denoisers on ``sigmas``, straight from apply_model (no pack code)."""
    import comfy.model_management
    import comfy.sample

    comfy.model_management.load_models_gpu([small_model, large_model])
    positive, negative = (c[0][0] for c in conds)
    small, large = (cfg_denoiser(m, positive, negative, CFG) for m in (small_model, large_model))

    def run(sigmas, n1):
        noise = comfy.sample.prepare_noise(latent()["samples"], 0)
        x = noise * torch.sqrt(1.0 + sigmas[0] ** 2)
        with torch.no_grad():
            x = euler([small] * n1 + [large] * (len(sigmas) - 1 - n1), x, sigmas)
        return large_model.model.process_latent_out(x)

    return run


def test_a_plain_split_of_the_normal_schedule_is_ksamplers_and_the_hand_loops(small_model, large_model, stitch,
                                                                             run_node, custom_sample, hand_loop,
                                                                             ksample):
    """normal is uniform in t, so 4 + 6 steps stretched between the large model's step 4 (the steps rule's
    boundary) and its ends are the 10-step normal schedule itself, and sampling them is KSampler's split."""
    import comfy.samplers

    pair = stitch(small_model, large_model, 0.4, "steps")
    sigmas = stage_sigmas(run_node, pair, "4, 6")
    plain = comfy.samplers.calculate_sigmas(large_model.get_model_object("model_sampling"), "normal", 10)
    torch.testing.assert_close(sigmas, plain, rtol=1e-5, atol=1e-6)
    out = custom_sample(pair, sigmas)
    expected = hand_loop(plain, 4)
    tolerance = dict(rtol=1e-4, atol=1e-4 * expected.abs().max().item())
    torch.testing.assert_close(out, expected, **tolerance)
    torch.testing.assert_close(out, ksample(pair, "euler", "normal", steps=10), **tolerance)


def test_denoise_starts_the_stages_where_ksampler_would(small_model, large_model, stitch, tag, calls, run_node,
                                                        custom_sample):
    import comfy.samplers

    pair = stitch(tag(small_model, "S"), tag(large_model, "L"), 0.3, "timestep")
    sigmas = stage_sigmas(run_node, pair, "2, 3", denoise=0.8)
    assert float(sigmas[0]) == pytest.approx(float(comfy.samplers.KSampler(large_model, 5, "cpu", scheduler="normal",
                                                                           denoise=0.8).sigmas[0]))
    custom_sample(pair, sigmas, latent_image={"samples": torch.zeros(1, 4, 8, 8)})
    assert steps_of(calls) == "SS" + "LLL"


def test_a_model_denoise_leaves_without_steps_is_given_none(small_model, large_model, stitch, tag, calls, run_node,
                                                            custom_sample):
    pair = stitch(tag(small_model, "S"), tag(large_model, "L"), 0.5, "timestep")
    with pytest.raises(ValueError, match=r"small model \(SD15\) gets no steps: the schedule starts at sigma .* "
                                         r"\(denoise 0.3\), below where it hands over .* Raise denoise .* or give "
                                         r"it 0 steps"):
        stage_sigmas(run_node, pair, "2, 3", denoise=0.3)
    custom_sample(pair, stage_sigmas(run_node, pair, "0, 3", denoise=0.3),
                  latent_image={"samples": torch.zeros(1, 4, 8, 8)})
    assert steps_of(calls) == "LLL"


@pytest.mark.parametrize("counts, message", [
    ("4", r"gives 1 count\(s\), but the pair has 2 models; write 2 counts"),
    ("1, 2, 3", r"gives 3 count\(s\), but the pair has 2 models"),
    ("2, x", r"is not a list of whole numbers"),
    ("0, 0", r"at least one step"),
    ("0, 5", r"small model \(SD15\) runs sigma .* but steps_per_model gives it 0 steps; give it at least 1"),
])
def test_counts_that_do_not_fit_the_pair_are_refused(counts, message, small_model, large_model, stitch, run_node):
    with pytest.raises(ValueError, match="T-Stitch Stage Sigmas: .*" + message):
        stage_sigmas(run_node, stitch(small_model, large_model, 0.5, "timestep"), counts)


def test_counts_the_steps_rule_would_split_otherwise_are_refused_with_the_fraction_that_fits(small_model,
                                                                                            large_model, stitch,
                                                                                            run_node):
    with pytest.raises(ValueError, match=r"steps_per_model 3, 7 gives the first model 3 of 10 steps, but the pair "
                                         r"switches by steps with small_fraction 0.4, which gives them round\(0.4 x "
                                         r"10\) = 4. Set that small_fraction to 3/10 = 0.3, or switch_by timestep"):
        stage_sigmas(run_node, stitch(small_model, large_model, 0.4, "steps"), "3, 7")
    assert len(stage_sigmas(run_node, stitch(small_model, large_model, 0.3, "steps"), "3, 7")) == 11


def test_a_model_the_pair_never_runs_takes_no_steps(small_model, large_model, stitch, run_node):
    pair = stitch(small_model, large_model, 0.0, "timestep")
    with pytest.raises(ValueError, match=r"its small_fraction is 0, so the pair never runs it"):
        stage_sigmas(run_node, pair, "1, 3")
    assert len(stage_sigmas(run_node, pair, "0, 3")) == 4


def test_only_a_pair_has_stage_sigmas(large_model, run_node):
    with pytest.raises(ValueError, match="not a T-Stitch pair; connect the output of T-Stitch Model Pair"):
        stage_sigmas(run_node, large_model, "2, 4")


@pytest.mark.parametrize("rule, fraction", [("timestep", 0.3), ("steps", 0.5)])
def test_the_sigmas_of_a_guider_are_those_of_the_pair_it_samples(rule, fraction, small_model, large_model, stitch,
                                                                  run_node, conds):
    # the switch set once, on the T-Stitch Guider: its sigmas are the pair's with its small_fraction and switch_by
    positive, negative = conds
    guider = run_node("TStitchGuider", small_model=small_model, large_model=large_model, small_fraction=fraction,
                      switch_by=rule, small_positive=positive, small_negative=negative, small_cfg=4.0,
                      large_positive=positive, large_negative=negative, large_cfg=7.0, offload_idle_model=True)[0]
    from_guider = run_node("TStitchStageSigmas", guider=guider, scheduler="karras", steps_per_model="3, 3",
                           denoise=1.0)[0]
    pair = stitch(small_model, large_model, fraction, rule)
    torch.testing.assert_close(from_guider, stage_sigmas(run_node, pair, "3, 3", "karras"), rtol=0, atol=0)
    # any guider of a pair: ComfyUI's CFGGuider on it too
    cfg_guider = run_node("CFGGuider", model=pair, positive=positive, negative=negative, cfg=7.0)[0]
    torch.testing.assert_close(run_node("TStitchStageSigmas", guider=cfg_guider, scheduler="karras",
                                        steps_per_model="3, 3", denoise=1.0)[0], from_guider, rtol=0, atol=0)


def test_stage_sigmas_take_the_pair_or_a_guider_of_one(small_model, large_model, stitch, run_node, conds):
    positive, negative = conds
    pair = stitch(small_model, large_model, 0.5, "steps")
    of_pair = run_node("CFGGuider", model=pair, positive=positive, negative=negative, cfg=7.0)[0]
    of_model = run_node("CFGGuider", model=large_model, positive=positive, negative=negative, cfg=7.0)[0]
    sigmas = lambda **given: run_node("TStitchStageSigmas", scheduler="normal", steps_per_model="2, 2", **given)
    with pytest.raises(ValueError, match=r"connect one of model .* or guider .*; both are connected"):
        sigmas(model=pair, guider=of_pair)
    with pytest.raises(ValueError, match=r"connect one of model .* or guider .*; neither is connected"):
        sigmas()
    with pytest.raises(ValueError, match="the guider does not sample a T-Stitch pair"):
        sigmas(guider=of_model)


def test_refused_before_the_first_step(small_model, large_model, stitch, tag, calls, run_node):
    """The node refuses when it runs: the sampler that would take its sigmas never starts."""
    with pytest.raises(ValueError):
        stage_sigmas(run_node, stitch(tag(small_model, "S"), tag(large_model, "L"), 0.4, "steps"), "3, 7")
    assert calls == []


def test_lay_stage_points_stretches_linearly():
    from tstitch_core import lay_stage_points

    assert lay_stage_points([1.0, 0.5, 0.0], 0.9, 0.5) == pytest.approx([0.9, 0.7, 0.5])
    assert lay_stage_points([0.7], 0.3, 0.1) == [0.3]


def test_the_boundary_is_the_largest_float32_sigma_the_switch_leaves_to_the_next_model():
    import numpy as np

    from tstitch_core import ALWAYS, NEVER, SwitchPoint, compute_boundary_sigma

    flow = lambda sigma: float(np.float32(sigma)) * 1000.0  # t = 1000 sigma, T = 1000
    boundary = compute_boundary_sigma(SwitchPoint(875.0, True, by_timestep=True), flow, 1.0)
    assert boundary == float(np.nextafter(np.float32(0.875), np.float32(0)))
    assert compute_boundary_sigma(SwitchPoint(0.5, False), flow, 1.0) == 0.5  # steps: the step's own sigma
    assert compute_boundary_sigma(NEVER, flow, 1.0) == float("inf")
    assert compute_boundary_sigma(ALWAYS, flow, 1.0) == float("-inf")


def test_stage_ranges_and_counts_in_pure_terms():
    from tstitch_core import compute_stage_ranges, parse_step_counts

    assert parse_step_counts(" 2, 3 ,1", 3) == [2, 3, 1]
    # a start below the first boundary leaves the first stage an empty range
    assert compute_stage_ranges(1.0, [0.8, 0.3]) == [(1.0, 0.8), (0.8, 0.3), (0.3, 0.0)]
    assert compute_stage_ranges(0.5, [0.8]) == [(0.5, 0.5), (0.5, 0.0)]


def test_more_steps_than_ksampler_allows_are_refused_before_any_work(small_model, large_model, stitch, run_node):
    # "100000000, 1" computed for about an hour, with no progress and no Cancel
    pair = stitch(small_model, large_model, 0.5, "timestep")
    with pytest.raises(ValueError, match=r"T-Stitch Stage Sigmas: steps_per_model '100000000, 1' asks for 100000001 "
                                         r"steps in all; at most 10000 are allowed, as KSampler allows\."):
        stage_sigmas(run_node, pair, "100000000, 1")


def test_a_long_schedule_shows_its_progress_and_stops_on_cancel(small_model, large_model, stitch, run_node,
                                                                progress_updates, cancel_after):
    import comfy.model_management

    pair = stitch(small_model, large_model, 0.5, "timestep")
    stage_sigmas(run_node, pair, "40, 60")
    # one update per sigma inverted: each stage's points plus its first sigma and boundary
    assert progress_updates[0] == (1, 104) and progress_updates[-1] == (104, 104)
    seen = cancel_after(10)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        stage_sigmas(run_node, pair, "40, 61")
    assert len(seen) == 10  # stopped at the next sigma


def test_steps_per_model_takes_spaces_and_quotes_at_most_200_characters_of_a_huge_input(small_model, large_model,
                                                                                         stitch, run_node):
    pair = stitch(small_model, large_model, 0.5, "timestep")
    assert torch.equal(stage_sigmas(run_node, pair, "2 4"), stage_sigmas(run_node, pair, "2, 4"))
    with pytest.raises(ValueError) as error:
        stage_sigmas(run_node, pair, "2, x" + "9" * 1_000_000)
    message = str(error.value)
    assert len(message) < 500 and "... (1000004 characters)" in message
    assert message.startswith("T-Stitch Stage Sigmas: steps_per_model '2, x999")
