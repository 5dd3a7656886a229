"""TStitchAgreementProbe on pairs whose answer is known: identical weights, a copy made to diverge below a
chosen sigma, unrelated models, nested pairs of such copies and a Wan (flow) pair; and the suggestion as T-Stitch
Model Pair then runs it."""

import math

import numpy as np
import pytest
import torch

STEPS = 8


@pytest.fixture(scope="module")
def probe(run_node, conds, latent):
    def run(small, large, min_agreement=0.99, steps=STEPS, sampler_name="euler", **overrides):
        positive, negative = conds
        inputs = dict(small_model=small, large_model=large, seed=3, steps=steps, cfg=5.0, sampler_name=sampler_name,
                      scheduler="normal", positive=positive, negative=negative, latent_image=latent(size=32),
                      denoise=1.0, min_agreement=min_agreement)
        return run_node("TStitchAgreementProbe", **{**inputs, **overrides})

    return run


def rows_of(table: str) -> list[list[str]]:
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["step", "sigma"])
    return [line.split() for line in lines[header + 1:]]  # the suggestion, the header, then one line per step


@pytest.fixture(scope="module")
def twin(load_unet):
    """The large model loaded a second time: the same weights, another model."""
    from tstitch_dev.models import MINI_SD15_LARGE

    return load_unet(MINI_SD15_LARGE)


def schedule(model, steps=STEPS, scheduler="normal", sampler_name="euler"):
    """The sigmas KSampler samples (dpm_2 and uni_pc drop the next-to-last of steps + 1)."""
    import comfy.samplers

    return comfy.samplers.KSampler(model, steps, "cpu", sampler=sampler_name, scheduler=scheduler,
                                   denoise=1.0).sigmas.tolist()


def test_the_same_weights_agree_at_every_step_and_the_whole_trajectory_is_suggested(probe, twin, large_model):
    plot, table, suggested, stages = probe(twin, large_model, min_agreement=0.9999)
    assert suggested == 1.0 and stages == "1"  # the whole trajectory: the small model alone
    assert all(float(row[3]) >= 0.9999 and row[5] == row[6] == "small" for row in rows_of(table))
    assert table.splitlines()[0].startswith(f"The small model agrees (cosine >= 0.9999) for the first {STEPS} of")
    assert plot.shape == (1, 432, 768, 3)


@pytest.mark.parametrize("diverge_after", [2, 5])
def test_a_copy_that_diverges_below_a_sigma_is_suggested_up_to_that_step(probe, twin, large_model, diverge_after):
    _, table, suggested, stages = probe(diverging_copy(twin, large_model, diverge_after), large_model)
    assert suggested == diverge_after / STEPS
    assert stages == {2: "0.25", 5: "0.625"}[diverge_after]  # a leading run: T-Stitch's split, the same fraction
    for column in (5, 6):  # the split and the window give each step the same model
        assert [row[column] for row in rows_of(table)] == ["small"] * diverge_after + ["large"] * (STEPS - diverge_after)
    assert table.splitlines()[1].startswith(f"Longest agreeing run of the small model: steps 1-{diverge_after} of 8, "
                                            f"from the first step: suggested_stages \"{stages}\" (T-Stitch's split")


def test_unrelated_models_are_suggested_the_large_model_alone_with_a_message(probe, small_model, large_model):
    _, table, suggested, stages = probe(small_model, large_model, min_agreement=0.9999)
    assert suggested == 0.0
    assert table.splitlines()[0].startswith("The small model disagrees from the first step")
    # compared as the sampler steps ((x - denoised) / sigma), unrelated models disagree at every step, the last
    # included: their denoised predictions, both near x at the lowest sigma, made that step look like agreement
    assert [row[6] for row in rows_of(table)] == ["large"] * STEPS and stages == "0"
    assert all(float(row[3]) < 0.9 for row in rows_of(table)), table


def test_a_copy_that_agrees_at_no_step_is_suggested_no_small_steps(probe, twin, large_model):
    _, table, suggested, stages = probe(window_copy(twin, large_model, STEPS, STEPS), large_model)
    assert (suggested, stages) == (0.0, "0")
    assert table.splitlines()[1] == ("suggested_stages 0: the small model agrees at no step, so there is no window "
                                     "for it (0 means no small steps: the large model alone).")
    assert [row[6] for row in rows_of(table)] == ["large"] * STEPS


def test_the_small_model_is_asked_at_exactly_the_large_models_inputs(probe, twin, large_model):
    """With the same weights the two predictions are the same bits at every step: the small model saw the very
    x, sigma and conditioning the large model's trajectory passed through."""
    _, table, _, _ = probe(twin, large_model, min_agreement=0.0, sampler_name="dpmpp_2m")
    assert [row[4] for row in rows_of(table)] == ["0.0000"] * STEPS


def diverging_copy(twin, large_model, diverge_after, scheduler="normal", steps=STEPS):
    """``twin`` with noise added to its output from step ``diverge_after + 1`` of the schedule on (the wrapper reads
    sigma); divided by sigma, so the denoised prediction moves alike at every sigma, for eps and flow models."""
    sigmas = schedule(large_model, steps=steps, scheduler=scheduler)
    below = (sigmas[diverge_after - 1] + sigmas[diverge_after]) / 2

    def perturbed(apply_model, args):
        out = apply_model(args["input"], args["timestep"], **args["c"])
        sigma = float(args["timestep"].reshape(-1)[0])
        return out + 10 * torch.randn_like(out) / sigma if sigma < below else out

    diverging = twin.clone()
    diverging.set_model_unet_function_wrapper(perturbed)
    return diverging


def test_the_timestep_range_it_reports_gives_the_pair_exactly_the_suggested_steps(probe, twin, large_model, run_node):
    import re

    _, table, suggested, stages = probe(diverging_copy(twin, large_model, 5), large_model)
    low, high = timestep_fractions(table.splitlines()[0])
    for fraction, rule in ((suggested, "steps"), (low, "timestep"), (high, "timestep")):
        pair = run_node("TStitchModelPair", small_model=twin, large_model=large_model, small_fraction=fraction,
                        switch_by=rule)[0]
        summary = run_node("TStitchSchedulePreview", model=pair, steps=STEPS, scheduler="normal", denoise=1.0)[1]
        assert re.search(rf"small model \([^)]*\): steps 1-5 of {STEPS}\b", summary), (fraction, rule, summary)


def timestep_fractions(line: str) -> tuple[float, float]:
    import re

    return tuple(map(float, re.search(r"switch_by timestep: small_fraction (\d+\.\d+) to (\d+\.\d+)", line).groups()))


def steps_of_each_model(run_node, pair, steps=STEPS, scheduler="normal") -> str:
    return run_node("TStitchSchedulePreview", model=pair, steps=steps, scheduler=scheduler, denoise=1.0)[1]


@pytest.fixture(scope="module")
def twins(load_unet):
    """Two more loads of the large model's weights, for a nested pair's two earlier models."""
    from tstitch_dev.models import MINI_SD15_LARGE

    return load_unet(MINI_SD15_LARGE), load_unet(MINI_SD15_LARGE)


@pytest.mark.parametrize("nested", ["small_model", "large_model"])
def test_a_nested_pair_is_probed_model_by_model_and_each_gets_the_steps_it_agrees_on(probe, twins, large_model,
                                                                                    stitch, run_node, nested):
    import re

    smallest, middle = diverging_copy(twins[0], large_model, 2), diverging_copy(twins[1], large_model, 5)
    # the nested pair's own fractions play no part: every model is asked at every step
    small, large = ((stitch(smallest, middle, 0.125), large_model) if nested == "small_model"
                    else (smallest, stitch(middle, large_model, 0.875)))
    plot, table, suggested, stages = probe(small, large)
    assert suggested == 2 / STEPS  # the smallest model's: the pair where it hands over to the middle one
    assert stages == "0.25"  # the smallest model's window, against the large model alone: its leading run
    lines = table.splitlines()
    assert re.match(r"- small model \(SD15\): steps 1-2 of 8; it hands over at small_fraction 0\.250 ", lines[1])
    assert re.match(r"- model 2 of 3 \(SD15\): steps 3-5 of 8; it hands over at small_fraction 0\.625 ", lines[2])
    assert lines[2].endswith("Alone it agrees for the first 5 steps.")
    rows = rows_of(table)
    assert [row[-2] for row in rows] == ["small"] * 2 + ["model2"] * 3 + ["large"] * 3
    assert [row[-1] for row in rows] == ["small"] * 2 + ["large"] * 6  # the window: the smallest model's
    assert lines[3].startswith("Longest agreeing run of the small model (SD15): steps 1-2 of 8, from the first step")
    # each model's own columns: the same bits as the large model's until its noise starts, then far off
    assert [row[4] == "0.0000" for row in rows] == [True] * 2 + [False] * 6
    assert [row[6] == "0.0000" for row in rows] == [True] * 5 + [False] * 3
    assert all(float(row[5]) < 0.9 for row in rows[5:]) and all(float(row[3]) < 0.9 for row in rows[2:])
    # the suggested fractions, in either rule, give a nested pair exactly those steps
    (first_low, first_high), (second_low, second_high) = (timestep_fractions(line) for line in lines[1:3])
    for fractions, rule in (((suggested, 5 / STEPS), "steps"), ((first_low, second_low), "timestep"),
                            ((first_high, second_high), "timestep")):
        pair = stitch(stitch(smallest, middle, fractions[0], rule), large_model, fractions[1], rule)
        summary = steps_of_each_model(run_node, pair)
        assert "small model (SD15): steps 1-2 of 8" in summary and "model 2 of 3 (SD15): steps 3-5 of 8" in summary, (
            fractions, rule, summary)
    # a curve per model in its colour, over a strip that colours each step by the model the suggestion gives it
    blue, green, orange = (86, 180, 233), (0, 158, 115), (230, 159, 0)  # smallest, middle, large
    pixels = (plot[0].numpy() * 255).round().astype(np.uint8)
    bottom, bar = 432 - 28 - 22 * 4, (768 - 24 - 64) / STEPS  # the plot's layout: 3 + 1 legend lines, 8 bars
    strip = [tuple(pixels[bottom - 3, round(64 + (step + 0.5) * bar)]) for step in range(STEPS)]
    assert strip == [blue] * 2 + [green] * 3 + [orange] * 3
    curves = pixels[44:bottom - 7]
    assert all(np.all(curves == colour, axis=-1).sum() > 200 for colour in (blue, green))


def window_copy(twin, large_model, start, end, scheduler="normal", steps=STEPS):
    """``twin`` made to diverge above one sigma and below another, as ``diverging_copy``: noise on its output at
    steps 1 to ``start`` and from step ``end + 1`` on, so that it agrees exactly at steps ``start + 1`` to ``end``."""
    sigmas = schedule(large_model, steps=steps, scheduler=scheduler)
    above, below = ((sigmas[k - 1] + sigmas[k]) / 2 for k in (start, end))

    def perturbed(apply_model, args):
        out = apply_model(args["input"], args["timestep"], **args["c"])
        sigma = float(args["timestep"].reshape(-1)[0])
        return out + 10 * torch.randn_like(out) / sigma if sigma > above or sigma < below else out

    diverging = twin.clone()
    diverging.set_model_unet_function_wrapper(perturbed)
    return diverging


def timestep_window(line: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """((lowest a, highest a), (lowest b, highest b)) of the table's switch_by timestep until for the window."""
    import re

    found = re.search(r"switch_by timestep: until a from (\d+\.\d+) to (\d+\.\d+), b from (\d+\.\d+) to (\d+\.\d+)\.",
                      line)
    assert found, line
    low_a, high_a, low_b, high_b = map(float, found.groups())
    return (low_a, high_a), (low_b, high_b)


@pytest.mark.parametrize("start, end", [(2, 6), (1, 4), (5, 7)])
def test_a_copy_that_diverges_above_one_sigma_and_below_another_is_suggested_exactly_the_steps_between(
        probe, twins, large_model, stitch, run_node, start, end):
    """The known answer of the window: the copy agrees bit for bit at steps start + 1 to end and nowhere else. The
    suggested until, in either rule, gives a model exactly those steps between two others: checked on the pair's
    own rules, nested (the large model's weights loaded again first, the copy, the large model), and on T-Stitch
    Stages (the large model, the copy, the large model), the steps value typed in exactly as the probe gives it."""
    copy = window_copy(twins[1], large_model, start, end)
    plot, table, suggested, stages = probe(copy, large_model)
    assert suggested == 0.0  # it disagrees at step 1: T-Stitch's split is the large model alone
    a, b = (f"{k / STEPS:.3f}".rstrip("0") for k in (start, end))
    assert stages == f"{a}, {b}"
    rows = rows_of(table)
    assert [row[6] for row in rows] == ["large"] * start + ["small"] * (end - start) + ["large"] * (STEPS - end)
    assert [row[4] == "0.0000" for row in rows] == [start <= step < end for step in range(STEPS)]  # the same bits
    window = table.splitlines()[1]
    assert window.startswith(f"Longest agreeing run of the small model: steps {start + 1}-{end} of 8: "
                             f"suggested_stages \"{stages}\" for T-Stitch Stages with the large model, the small model, "
                             f"the large model again (switch_by steps: large until {a}, small until {b}, large after)")
    (low_a, high_a), (low_b, high_b) = timestep_window(window)
    first = "small model (SD15): " + ("step 1 of 8" if start == 1 else f"steps 1-{start} of 8")
    middle = "model 2 of 3 (SD15): " + (f"step {end} of 8" if end - start == 1 else f"steps {start + 1}-{end} of 8")
    for until, rule in (((float(a), float(b)), "steps"), ((low_a, low_b), "timestep"), ((high_a, high_b), "timestep"),
                        ((low_a, high_b), "timestep"), ((high_a, low_b), "timestep")):
        three = stitch(stitch(twins[0], copy, until[0], rule), large_model, until[1], rule)
        summary = steps_of_each_model(run_node, three)
        assert middle in summary and first in summary, (until, rule, summary)
        # and T-Stitch Stages itself, the large model in stages 1 and 3, the output typed in as it is
        typed = stages if rule == "steps" else f"{until[0]}, {until[1]}"
        window = run_node("TStitchStages", model_1=large_model, model_2=copy, model_3=large_model, until=typed,
                          switch_by=rule, offload_idle_model=False)[0]
        summary = steps_of_each_model(run_node, window).splitlines()
        assert summary[1].startswith("stage 2 (model_2") and summary[1].split(": ", 1)[1].startswith(
            middle.split(": ", 1)[1]), (typed, rule, summary)
        assert summary[0].split(": ", 1)[1].startswith(first.split(": ", 1)[1]), (typed, rule, summary)
    # the plot brackets the window in white: down both its sides and across the top
    pixels = (plot[0].numpy() * 255).round().astype(np.uint8)
    white = np.all(pixels == (255, 255, 255), axis=-1)
    bar = (768 - 24 - 64) / STEPS
    bottom = 432 - 28 - 22 * 3  # 2 legend lines and the window's
    for step in (start, end):
        assert white[44:bottom, round(64 + step * bar) - 2:round(64 + step * bar) + 2].any(axis=1).sum() > 0.9 * (
            bottom - 44), step
    across = [white[38:42, round(64 + (step + 0.5) * bar)].any() for step in range(STEPS)]
    assert across == [start <= step < end for step in range(STEPS)]


def test_a_window_that_reaches_the_last_step_says_the_large_models_last_stage_would_be_empty(probe, twin,
                                                                                             large_model):
    _, table, suggested, stages = probe(window_copy(twin, large_model, 3, STEPS), large_model)
    assert (suggested, stages) == (0.0, "0.375, 1")
    assert [row[6] for row in rows_of(table)] == ["large"] * 3 + ["small"] * 5
    assert table.splitlines()[1].endswith("The run reaches the last step, so the large model's last stage is empty: "
                                          "T-Stitch Stages refuses that; give it the large model, then the small "
                                          "model, with until \"0.375\".")


@pytest.fixture(scope="module")
def wan_pair(load_unet, run_node):
    """(the large test Wan 2.1 model, its weights loaded again), each with ModelSamplingSD3 shift 8 as Wan runs."""
    from tstitch_dev.models import TINY_WAN_LARGE

    return tuple(run_node("ModelSamplingSD3", model=load_unet(TINY_WAN_LARGE), shift=8.0)[0] for _ in range(2))


def test_a_wan_flow_pair_is_suggested_up_to_its_divergence_and_reported_in_t_over_t_max_equal_to_sigma(
        probe, wan_pair, run_node, stitch):
    import re

    large, twin = wan_pair
    generator = torch.Generator().manual_seed(5)  # UMT5-XXL embeddings' shape, as the Wan recipes' tests
    positive, negative = ([[torch.randn(1, 16, 4096, generator=generator), {}]] for _ in range(2))
    video = run_node("EmptyHunyuanLatentVideo", width=64, height=64, length=5, batch_size=1)[0]
    wan = dict(positive=positive, negative=negative, latent_image=video, scheduler="simple")
    _, table, suggested, stages = probe(twin, large, min_agreement=0.9999, **wan)
    assert suggested == 1.0 and [row[4] for row in rows_of(table)] == ["0.0000"] * STEPS  # the same bits
    _, table, suggested, stages = probe(diverging_copy(twin, large, 3, scheduler="simple"), large, **wan)
    assert suggested == 3 / STEPS
    rows = rows_of(table)
    assert [row[5] for row in rows] == ["small"] * 3 + ["large"] * (STEPS - 3)
    sigmas = schedule(large, scheduler="simple")
    assert [float(row[1]) for row in rows] == pytest.approx(sigmas[:-1], rel=1e-3)
    assert [float(row[2]) for row in rows] == pytest.approx(sigmas[:-1], abs=6e-4)  # t / T is sigma for flow
    low, high = timestep_fractions(table.splitlines()[0])
    assert 1 - sigmas[2] <= low < 1 - sigmas[2] + 0.001 and 1 - sigmas[3] - 0.001 <= high < 1 - sigmas[3]
    for fraction, rule in ((suggested, "steps"), (low, "timestep"), (high, "timestep")):
        summary = steps_of_each_model(run_node, stitch(twin, large, fraction, rule), scheduler="simple")
        assert re.search(rf"small model \(WAN21[^)]*\): steps 1-3 of {STEPS}\b", summary), (fraction, rule, summary)


def test_every_sampler_is_probed_at_the_sigmas_it_samples_or_refused_by_name(probe, twin, large_model):
    """The same weights agree bit for bit at every step of the schedule each sampler really runs (dpm_2 and uni_pc
    drop the next-to-last sigma of steps + 1; uni_pc reports a step after moving x on): the small model was asked at
    the very (x, sigma) of the large model's call. Samplers that step on sigmas of their own are refused by name."""
    import comfy.samplers

    refused, wrong = {}, {}
    for name in comfy.samplers.KSampler.SAMPLERS:
        try:
            _, table, suggested, stages = probe(twin, large_model, min_agreement=0.99999, sampler_name=name)
        except ValueError as error:
            refused[name] = str(error)
            continue
        rows = rows_of(table)
        sigmas = schedule(large_model, sampler_name=name)
        if (suggested != 1.0 or [row[4] for row in rows] != ["0.0000"] * STEPS
                or [float(row[1]) for row in rows] != pytest.approx(sigmas[:-1], rel=1e-3)):
            wrong[name] = table
    assert not wrong, wrong
    assert set(refused) == {"dpm_fast", "dpm_adaptive"}, refused
    for name, message in refused.items():
        assert message.startswith(f"T-Stitch Agreement Probe: the {name} sampler evaluates the model at sigmas of its "
                                  f"own"), message


@pytest.mark.parametrize("sampler_name", ["heun", "dpm_2", "dpmpp_2s_ancestral", "dpmpp_2m"])
def test_the_small_model_is_asked_where_the_trajectory_is_not_at_a_trial_point(probe, twin, large_model, conds,
                                                                                 latent, sampler_name):
    """Second-order samplers also call the model at the next sigma on a trial x: the small model must be asked at
    the x the trajectory passes through at each step, which KSampler's callback reports for these samplers."""
    import comfy.sample

    positive, negative = conds
    image = latent(size=32)
    trajectory = []
    comfy.sample.sample(large_model, comfy.sample.prepare_noise(image["samples"], 3), STEPS, 5.0, sampler_name,
                        "normal", positive, negative, image["samples"], seed=3,
                        callback=lambda step, x0, x, total: trajectory.append(x.clone()))
    asked = []

    def record_input(apply_model, args):
        asked.append(args["input"][:1].clone())  # the sampler's x (cond and uncond batched: the same x twice)
        return apply_model(args["input"], args["timestep"], **args["c"])

    small = twin.clone()
    small.set_model_unet_function_wrapper(record_input)
    probe(small, large_model, min_agreement=0.0, sampler_name=sampler_name)
    assert len(asked) == len(trajectory) == STEPS
    for step, (x, seen) in enumerate(zip(trajectory, asked)):
        assert torch.equal(seen, x), step


def test_a_step_whose_small_prediction_is_nan_never_agrees_and_is_named(probe, twin, large_model):
    sigmas = schedule(large_model)
    below = (sigmas[3] + sigmas[4]) / 2

    def nan_below(apply_model, args):
        out = apply_model(args["input"], args["timestep"], **args["c"])
        return out * math.nan if float(args["timestep"].reshape(-1)[0]) < below else out

    broken = twin.clone()
    broken.set_model_unet_function_wrapper(nan_below)
    plot, table, suggested, stages = probe(broken, large_model, min_agreement=-1.0)  # every number agrees at -1
    assert suggested == 4 / STEPS
    assert table.splitlines()[0].endswith(f"Not a number at steps 5-{STEPS}: the small model's prediction holds NaN "
                                          f"or inf (such a step never agrees: cosine nan in the table).")
    assert [row[3] for row in rows_of(table)][4:] == ["nan"] * (STEPS - 4)
    pixels = (plot[0].numpy() * 255).round().astype(np.uint8)
    assert np.all(pixels == (213, 94, 0), axis=-1).sum() > 20  # each NaN step is marked on the plot


def test_denoise_zero_leaves_no_step_and_says_so(probe, twin, large_model):
    with pytest.raises(ValueError, match=r"T-Stitch Agreement Probe: denoise 0 leaves no step to probe"):
        probe(twin, large_model, denoise=0.0)


def test_the_probe_keeps_two_latents_per_step_and_no_predictions(probe, twin, large_model):
    """x and the large model's prediction for every step, kept on ComfyUI's intermediate device; each small
    prediction is reduced to its figures at once (the probe used to keep a third latent per step)."""
    import gc
    import warnings

    steps, shape = 16, (1, 4, 4, 4)  # the 32 px test latent

    def latents_alive() -> int:
        with warnings.catch_warnings():  # isinstance on every object touches deprecated torch attributes
            warnings.simplefilter("ignore")
            return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor) and tuple(o.shape) == shape)

    alive = []

    def count_latents(apply_model, args):
        alive.append(latents_alive())
        return apply_model(args["input"], args["timestep"], **args["c"])

    small = twin.clone()
    small.set_model_unet_function_wrapper(count_latents)
    gc.collect()
    before = latents_alive()
    probe(small, large_model, steps=steps)
    held = [count - before for count in alive]
    assert len(held) == steps
    # 2 per step, and the dozen or so that sampling holds (noise, latent, the sampler's x, its inpainting copies)
    assert max(held) <= 2 * steps + 12, held
    assert held[-1] - held[0] <= 1, held  # nothing piles up as the steps go


def test_a_tied_timestep_tail_is_reported_honestly_and_the_range_given_works(probe, twin, large_model, run_node):
    """karras at 60 steps ends in steps that share a discrete timestep: no timestep fraction can split them."""
    import re

    import comfy.samplers

    steps = 60
    sigmas = comfy.samplers.KSampler(large_model, steps, "cpu", scheduler="karras").sigmas.tolist()
    model_sampling = large_model.get_model_object("model_sampling")
    t = [float(model_sampling.timestep(torch.tensor([s]))) for s in sigmas[:-1]]
    tie = next(k for k in range(1, steps) if t[k - 1] == t[k])  # steps tie and tie + 1 (1-based) share a timestep
    perturbed = diverging_copy(twin, large_model, tie, scheduler="karras", steps=steps)
    _, table, suggested, stages = probe(perturbed, large_model, steps=steps, scheduler="karras")
    assert suggested == tie / steps
    first = table.splitlines()[0]
    match = re.search(rf"switch_by timestep: no small_fraction gives exactly {tie} steps, since steps (\d+)-(\d+) "
                      rf"share one timestep \(t/T [\d.]+\) and the rule gives them to the same model; for the first "
                      rf"(\d+), small_fraction ([\d.]+) to ([\d.]+)\.", first)
    assert match, first
    fewer = int(match.group(3))
    assert fewer < tie and int(match.group(1)) <= tie < int(match.group(2))
    for fraction in map(float, match.groups()[3:]):
        pair = run_node("TStitchModelPair", small_model=twin, large_model=large_model, small_fraction=fraction,
                        switch_by="timestep")[0]
        summary = steps_of_each_model(run_node, pair, steps=steps, scheduler="karras")
        assert re.search(rf"small model \([^)]*\): steps 1-{fewer} of {steps}\b", summary), (fraction, summary)


def test_a_nan_min_agreement_through_the_api_is_refused(probe, twin, large_model):
    # NaN passes ComfyUI's min/max check; every node refuses a NaN FLOAT first, the probe's own check backs it
    with pytest.raises(ValueError, match=r"T-Stitch Agreement Probe: min_agreement is nan, which is no number to "
                                         r"compute with; give a finite number from -1 to 1\."):
        probe(twin, large_model, min_agreement=float("nan"))
    from tstitch_core.agreement import validate_min_agreement

    with pytest.raises(ValueError, match=r"T-Stitch Agreement Probe: min_agreement nan is not a cosine similarity"):
        validate_min_agreement(float("nan"))


@pytest.mark.parametrize("models", [1, 2])
def test_the_plot_draws_a_bar_per_step_once_linear_in_the_steps(models, node, monkeypatch):
    # the step strip was drawn inside the per-step loop: 10^8 rectangles at 10000 steps, after sampling
    import sys

    from PIL import ImageDraw

    drawing = sys.modules[node("TStitchAgreementProbe").__module__.rsplit(".", 1)[0] + "._drawing"]
    count, real = [0], ImageDraw.ImageDraw.rectangle
    monkeypatch.setattr(ImageDraw.ImageDraw, "rectangle", lambda self, *a, **k: count.__setitem__(0, count[0] + 1)
                        or real(self, *a, **k))
    steps = 300
    cosines = [[0.95] * steps for _ in range(models)]
    drawing.draw_agreement(cosines, [100, 200][:models], ["a", "b", "c"][:models + 1], 0.9, "t", window=(0, 100),
                           window_label="w")
    # one legend square per model and the window's; a bar per step for one model; a strip cell per step for more
    assert count[0] == (models + 1) + 1 + steps * (2 if models == 1 else 1)
