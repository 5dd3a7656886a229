"""One rule for a model with no step, on the schedule being sampled, for pairs, nested pairs, T-Stitch Stages and the
Fraction Sweep: the last model with no step while an earlier one has some is refused before step 1 (the output would be
another model's alone), with the fractions that give every model a step; an earlier model with no step (a low-denoise
pass) runs, and the progress text says which model got none.

The strongly shifted flow schedule of LTX-Video, Flux.2 or Wan at shift 8 is made here with ComfyUI's own
ModelSamplingSD3 node (shift 8) on the tiny SD1.5-shaped test models: on 6 simple steps every step starts at or above
t/T 0.615, so switch_by timestep at small_fraction 0.4 (t/T >= 0.6) would give every step to the small model."""

import sys

import pytest
import torch

from tstitch_dev.testing import CFG

STEPS = 6


@pytest.fixture(scope="module")
def shifted(run_node, small_model, large_model):
    """Both test models with flow model sampling at shift 8 (ModelSamplingSD3), as a strongly shifted family has."""
    return tuple(run_node("ModelSamplingSD3", model=m, shift=8.0)[0] for m in (small_model, large_model))


@pytest.fixture
def progress_texts(monkeypatch, node):
    """Every progress text the pack shows during a run (what a server sends to the running node)."""
    run_module = sys.modules[node("TStitchModelPair").__module__.rsplit(".", 1)[0] + "._run"]
    texts = []
    monkeypatch.setattr(run_module, "report_progress_text", texts.append)
    return texts


def pair(run_node, small, large, fraction, switch_by="timestep"):
    return run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=fraction,
                    switch_by=switch_by)[0]


def test_the_all_small_timestep_run_is_refused_before_any_model_runs(shifted, run_node, ksample, tag, calls):
    small, large = shifted
    stitched = pair(run_node, tag(small, "S"), tag(large, "L"), 0.4)
    with pytest.raises(ValueError) as error:
        ksample(stitched, "euler", "simple", steps=STEPS)
    assert calls == []
    message = str(error.value)
    assert message.startswith("T-Stitch: on the schedule being sampled the large model (SD15) would get no step")
    assert "every step of this schedule starts at or above t/T 0.615" in message
    assert "small_fraction from 0.001 to 0.384" in message


@pytest.mark.parametrize("fraction, expected", [(0.384, "SSSSSL"), (0.001, "SLLLLL")])
def test_the_fractions_offered_give_both_models_steps(shifted, run_node, ksample, tag, calls, fraction, expected):
    small, large = shifted
    ksample(pair(run_node, tag(small, "S"), tag(large, "L"), fraction), "euler", "simple", steps=STEPS, cfg=1.0)
    assert calls.names() == expected


def test_a_steps_rule_that_rounds_to_every_step_is_refused(small_model, large_model, run_node, ksample, tag, calls):
    stitched = pair(run_node, tag(small_model, "S"), tag(large_model, "L"), 0.95, "steps")
    with pytest.raises(ValueError, match=r"small_fraction 0.95 of 6 steps rounds to all 6\).* small_fraction from "
                                         r"0.084 to 0.916"):
        ksample(stitched, steps=STEPS)
    assert calls == []


def test_small_fraction_1_asks_for_the_small_model_alone_and_gets_it(shifted, run_node, ksample):
    small, large = shifted
    assert torch.equal(ksample(pair(run_node, small, large, 1.0), "euler", "simple", steps=STEPS),
                       ksample(small, "euler", "simple", steps=STEPS))


def test_a_nested_pair_whose_large_model_gets_no_step_is_refused(shifted, medium_model, run_node, ksample):
    small, large = shifted
    medium = run_node("ModelSamplingSD3", model=medium_model, shift=8.0)[0]
    nested = pair(run_node, pair(run_node, small, medium, 0.2), large, 0.4)
    with pytest.raises(ValueError, match=r"the large model \(SD15\) would get no step .* the small_fraction where "
                                         r"the model 2 of 3 \(SD15\) hands over 0.4 hands over below t/T 0.6"):
        ksample(nested, "euler", "simple", steps=STEPS)


def test_stages_whose_last_stage_gets_no_step_are_refused(small_model, large_model, run_node, ksample, tag, calls):
    large = tag(large_model, "L")
    stages = run_node("TStitchStages", model_1=large, model_2=tag(small_model, "S"), model_3=large,
                      until="0.25, 0.95", switch_by="steps")[0]
    with pytest.raises(ValueError, match=r"T-Stitch Stages: on the schedule being sampled the stage 3 \(model_1, SD15, "
                                         r"0.95 to 1\) would get no step .* until's value 2 from"):
        ksample(stages, steps=STEPS)
    assert calls == []


@pytest.mark.parametrize("switch_by, steps, denoise, until, expected, empty", [
    # round(0.25 x 2) = round(0.625 x 2) = 1: the small model's middle stage is empty
    ("steps", 2, 1.0, (0.25, 0.625), "LL", "stage 2 (model_2, SD15, 0.25 to 0.625): no steps of 2"),
    # denoise 0.3 starts below t/T = 0.75, where stage 1 ends: the pass is the later stages'
    ("timestep", 8, 0.3, (0.25, 0.625), None, "stage 1 (model_1, SD15, 0 to 0.25): no steps of 8"),
])
def test_stages_with_an_earlier_stage_empty_run_and_say_so(switch_by, steps, denoise, until, expected, empty,
                                                          small_model, large_model, run_node, ksample, tag, calls,
                                                          progress_texts):
    large = tag(large_model, "L")
    stages = run_node("TStitchStages", model_1=large, model_2=tag(small_model, "S"), model_3=large,
                      until=", ".join(map(str, until)), switch_by=switch_by)[0]
    ksample(stages, steps=steps, denoise=denoise)
    if expected:
        assert calls.names() == expected
    assert calls and progress_texts and all(empty in text for text in progress_texts)


def test_a_low_denoise_pass_where_the_small_model_gets_no_step_equals_the_large_model_alone(
        small_model, large_model, run_node, ksample, latent, progress_texts):
    # a hires-fix second pass through the same stitched model: denoise 0.3 starts below t/T 0.6
    first = {"samples": ksample(large_model, steps=STEPS)}
    stitched = pair(run_node, small_model, large_model, 0.4)
    again = ksample(stitched, steps=8, denoise=0.3, latent_image=first)
    assert torch.equal(again, ksample(large_model, steps=8, denoise=0.3, latent_image=first))
    assert progress_texts == ["T-Stitch: large model (SD15), steps 1-8 of 8 (small model (SD15): no steps of 8)"]


def test_the_guider_follows_the_same_rule(shifted, run_node, conds, latent, tag, calls):
    small, large = shifted
    positive, negative = conds
    guider = run_node("TStitchGuider", small_model=tag(small, "S"), large_model=tag(large, "L"), small_fraction=0.4,
                      switch_by="timestep", small_positive=positive, small_negative=negative, small_cfg=CFG,
                      large_positive=positive, large_negative=negative, large_cfg=CFG)[0]
    sigmas = run_node("BasicScheduler", model=large, scheduler="simple", steps=STEPS, denoise=1.0)[0]
    with pytest.raises(ValueError, match="the large model .SD15. would get no step"):
        run_node("SamplerCustomAdvanced", noise=run_node("RandomNoise", noise_seed=0)[0], guider=guider,
                 sampler=run_node("KSamplerSelect", sampler_name="euler")[0], sigmas=sigmas, latent_image=latent())
    assert calls == []


def test_the_sweep_samples_an_all_small_setting_as_1_and_says_so(shifted, run_node, conds, latent, vae):
    small, large = shifted
    positive, negative = conds
    images, _, table, _ = run_node(
        "TStitchFractionSweep", small_model=small, large_model=large, vae=vae, fractions="0, 0.4, 1",
        switch_by="timestep", seed=0, steps=STEPS, cfg=CFG, sampler_name="euler", scheduler="simple",
        positive=positive, negative=negative, latent_image=latent(), denoise=1.0)
    assert torch.equal(images[1], images[2])  # 0.4 gives every step to the small model here: the same as 1
    rows = [line.split() for line in table.splitlines()[1:4]]
    assert [(row[0], row[1]) for row in rows] == [("0", "0/6"), ("0.4", "6/6"), ("1", "6/6")]
    assert "0.4: every step small: the same as 1" in table.splitlines()


@pytest.mark.parametrize("scheduler, highest", [("normal", 0.999), ("karras", 0.999), ("simple", 0.833)])
def test_where_an_sd_schedule_leaves_the_large_model_a_step_under_the_timestep_rule(scheduler, highest, large_model,
                                                                                  run_node):
    # the README's family table: SD1.x's discrete schedules over 6 steps (normal and karras end at t = 0)
    from tstitch_core.coverage import fraction_range

    model_sampling = large_model.get_model_object("model_sampling")
    sigmas = run_node("BasicScheduler", model=large_model, scheduler=scheduler, steps=STEPS, denoise=1.0)[0].tolist()
    timestep_of = lambda sigma: float(model_sampling.timestep(torch.tensor([sigma])))  # noqa: E731
    assert fraction_range("timestep", 1, STEPS - 1, sigmas, timestep_of, timestep_of(sigmas[0])) == (0.001, highest)
