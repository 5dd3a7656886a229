"""TStitchSchedulePreview: the schedule, coloured by model, before sampling."""

import numpy as np
import pytest


def preview(run_node, **inputs):
    inputs = {"steps": 10, "scheduler": "normal", "denoise": 1.0, **inputs}
    return run_node("TStitchSchedulePreview", **inputs)


def colour_share(plot, colour):
    pixels = (plot[0].numpy() * 255).round().astype(np.uint8)
    return np.all(pixels == np.array(colour, dtype=np.uint8), axis=-1).mean()


def test_pair_preview_names_each_models_steps_and_share(small_model, large_model, stitch, run_node):
    plot, summary = preview(run_node, model=stitch(small_model, large_model, 0.4))
    assert summary.splitlines() == ["small model (SD15): steps 1-4 of 10 (40%)",
                                    "large model (SD15): steps 5-10 of 10 (60%)"]
    assert plot.shape == (1, 432, 768, 3) and 0.0 <= float(plot.min()) and float(plot.max()) <= 1.0


def test_preview_colours_follow_the_split(small_model, large_model, stitch, run_node):
    blue, orange = (86, 180, 233), (230, 159, 0)  # first stage's and the large model's colours
    more_small = colour_share(preview(run_node, model=stitch(small_model, large_model, 0.8))[0], blue)
    less_small = colour_share(preview(run_node, model=stitch(small_model, large_model, 0.2))[0], blue)
    assert more_small > less_small > 0
    assert colour_share(preview(run_node, model=stitch(small_model, large_model, 0.2))[0], orange) > 0


def test_preview_counts_only_the_steps_that_denoise_runs(small_model, large_model, stitch, run_node):
    _, summary = preview(run_node, model=stitch(small_model, large_model, 0.5, "timestep"), denoise=0.4, steps=10)
    # with denoise 0.4 the trajectory starts at 40% of the noise: a timestep split at 50% falls before it
    assert summary.splitlines()[0] == "small model (SD15): no steps of 10 (0%)"


def test_nested_pairs_and_guiders_are_previewed_too(small_model, medium_model, large_model, stitch, run_node, conds):
    _, summary = preview(run_node, model=stitch(small_model, stitch(medium_model, large_model, 0.5), 0.2))
    assert summary.splitlines() == ["small model (SD15): steps 1-2 of 10 (20%)",
                                    "model 2 of 3 (SD15): steps 3-5 of 10 (30%)",
                                    "large model (SD15): steps 6-10 of 10 (50%)"]
    positive, negative = conds
    guider = run_node("TStitchGuider", small_model=small_model, large_model=large_model, small_fraction=0.3,
                      switch_by="steps", small_positive=positive, small_negative=negative, small_cfg=3.0,
                      large_positive=positive, large_negative=negative, large_cfg=5.0)[0]
    assert preview(run_node, guider=guider)[1].splitlines()[0] == "small model (SD15): steps 1-3 of 10 (30%)"


def test_preview_says_what_to_connect(small_model, large_model, stitch, run_node):
    with pytest.raises(ValueError, match="Connect exactly one of model"):
        preview(run_node)
    with pytest.raises(ValueError, match="not a T-Stitch model: connect the output of T-Stitch Model Pair"):
        preview(run_node, model=large_model)


def test_the_preview_counts_steps_on_the_schedule_of_the_sampler_it_is_told(small_model, large_model, stitch,
                                                                             run_node, tag, calls, ksample):
    """uni_pc samples steps + 1 sigmas with the next-to-last left out, so a timestep switch can fall after another
    number of its steps than of euler's: the preview told the sampler counts the small calls uni_pc really makes."""
    import comfy.samplers
    import torch

    model_sampling = large_model.get_model_object("model_sampling")
    t_over_t = {name: [float(model_sampling.timestep(torch.tensor([s]))) / 999.0 for s in
                       comfy.samplers.KSampler(large_model, 10, "cpu", sampler=name, scheduler="normal").sigmas[:-1]]
                for name in ("euler", "uni_pc")}
    # a fraction where the two schedules put a different number of steps at t/T >= 1 - fraction
    fraction = next(f / 1000 for f in range(1, 1000)
                    if sum(t >= 1 - f / 1000 for t in t_over_t["euler"]) != sum(t >= 1 - f / 1000 for t in t_over_t["uni_pc"]))
    pair = stitch(tag(small_model, "S"), tag(large_model, "L"), fraction, "timestep")
    ksample(pair, sampler_name="uni_pc", cfg=1.0)
    small_calls = calls.names().count("S")
    counted = {name: preview(run_node, model=pair, sampler_name=name)[1].splitlines()[0] for name in ("euler", "uni_pc")}
    assert counted["uni_pc"].startswith(f"small model (SD15): steps 1-{small_calls} of 10"), counted
    assert not counted["euler"].startswith(f"small model (SD15): steps 1-{small_calls} of 10"), counted


def test_given_sigmas_are_previewed_coloured_by_the_model_that_runs_each_step(small_model, large_model, stitch,
                                                                              run_node):
    pair = stitch(small_model, large_model, 0.5, "timestep")
    sigmas = run_node("TStitchStageSigmas", model=pair, scheduler="karras", steps_per_model="3, 4", denoise=1.0)[0]
    plot, summary = preview(run_node, model=pair, sigmas=sigmas)  # steps 10, normal: not what is previewed
    assert summary.splitlines() == ["small model (SD15): steps 1-3 of 7 (43%)",
                                    "large model (SD15): steps 4-7 of 7 (57%)"]
    blue, orange = (86, 180, 233), (230, 159, 0)
    assert colour_share(plot, blue) > 0 and colour_share(plot, orange) > 0
    with pytest.raises(ValueError, match="The sigmas input has no steps to preview"):
        preview(run_node, model=pair, sigmas=sigmas[-1:])


@pytest.mark.parametrize("bad", [0.0, float("nan"), float("inf"), -1.0])
def test_given_sigmas_that_reach_zero_before_the_last_step_are_refused_saying_where(bad, small_model, large_model,
                                                                                     stitch, run_node):
    import torch

    sigmas = torch.tensor([14.6, 5.0, bad, 1.0, 0.0])  # was "math domain error" from the plot's log axis
    with pytest.raises(ValueError, match=rf"T-Stitch Schedule Preview: the sigmas input has sigma {bad:g} at step 3 "
                                         r"of 4; a schedule reaches 0 only at its end"):
        preview(run_node, model=stitch(small_model, large_model, 0.4), sigmas=sigmas)


def test_ten_thousand_steps_are_previewed_bars_a_pixel_wide(small_model, large_model, stitch, run_node):
    # found by the fuzz: bars under 2 pixels wide gave PIL's "x1 must be greater than or equal to x0"
    plot, summary = preview(run_node, model=stitch(small_model, large_model, 0.4), steps=10000)
    assert plot.shape == (1, 432, 768, 3)
    assert summary.splitlines()[0] == "small model (SD15): steps 1-4000 of 10000 (40%)"
