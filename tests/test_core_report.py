"""The sweep's table and captions (pure)."""

import math

import pytest
import torch

from tstitch_core import SweepRow, format_caption, format_sweep_table


def test_the_table_has_a_column_per_figure_and_a_row_per_fraction():
    rows = [SweepRow(0.0, 0, 20, 10.0, math.inf, 1.0, 0.0, 5, 5),
            SweepRow(0.4, 8, 20, 8.0, 31.234, 0.91234, 0.1234, 1, 5)]
    lines = format_sweep_table(rows, reference_seconds=10.0).splitlines()
    assert lines[0].split("  ")[0] == "fraction" and lines[0].endswith("latent rel. L2")
    assert lines[1].split() == ["0", "0/20", "10.00", "1.00x", "inf", "5/5", "1.0000", "0.0000"]
    assert lines[2].split() == ["0.4", "8/20", "8.00", "1.25x", "31.23", "1/5", "0.9123", "0.1234"]
    assert len({len(line) for line in lines[:3]}) == 1  # aligned
    assert lines[3] == ""  # the notes follow, after an empty line
    assert "identical: how many are equal to it (PSNR inf) and left out of that mean" in lines[4]


@pytest.mark.parametrize("repeats, warmup, note", [
    (1, [0.8], "seconds: one timed run per fraction, after an untimed warm-up run at small_fraction 0.8; "
               "decoding waits until the last timed run."),
    (3, [0.0, 1.0], "seconds: the median of 3 timed runs (the fractions taking turns) per fraction, after an "
                    "untimed warm-up run at small_fraction 0 and 1; decoding waits until the last timed run.")])
def test_the_table_says_how_the_seconds_were_timed(repeats, warmup, note):
    rows = [SweepRow(0.0, 0, 20, 10.0, math.inf, 1.0, 0.0)]
    assert note in format_sweep_table(rows, 10.0, repeats=repeats, warmup=warmup).splitlines()


def test_identical_frames_are_counted_apart_and_the_psnr_is_the_mean_over_the_others():
    from tstitch_core.report import summarize_psnr

    assert summarize_psnr([30.0, math.inf, 40.0]) == (35.0, 1)  # one identical frame does not make it inf
    assert summarize_psnr([math.inf, math.inf]) == (math.inf, 2)
    assert summarize_psnr([25.0]) == (25.0, 0)


def test_the_latent_distance_is_the_mean_of_each_video_frame_and_batch_items_own():
    from tstitch_core.report import compute_latent_rel_l2

    reference = torch.ones(2, 16, 3, 2, 2)  # [B, C, T, H, W], as Wan's latents; each frame's norm is 8
    samples = reference.clone()
    samples[0, :, 1] += 1.0  # item 0, frame 1: ||d|| = 8, so 1.0; item 1, frame 2: ||d|| = 4, so 0.5
    samples[1, :4, 2] += 1.0
    by_hand = [(samples[b, :, t] - reference[b, :, t]).norm() / reference[b, :, t].norm()
               for b in range(2) for t in range(3)]
    assert compute_latent_rel_l2(samples, reference) == pytest.approx(torch.stack(by_hand).mean().item(), rel=1e-6)
    assert compute_latent_rel_l2(samples, reference) == pytest.approx((1.0 + 0.5) / 6, rel=1e-6)
    assert compute_latent_rel_l2(samples, reference) != pytest.approx(
        ((samples - reference).norm() / reference.norm()).item(), rel=1e-3)  # not one global norm


def test_the_latent_distance_of_images_is_the_mean_over_the_batch_items():
    from tstitch_core.report import compute_latent_rel_l2

    reference = torch.stack([torch.full((4, 2, 2), 1.0), torch.full((4, 2, 2), 10.0)])  # norms 4 and 40
    samples = reference + torch.stack([torch.full((4, 2, 2), 0.5), torch.zeros(4, 2, 2)])  # 2 / 4, then 0
    assert compute_latent_rel_l2(samples, reference) == pytest.approx(0.25, rel=1e-6)


def test_an_all_zero_reference_frame_counts_zero_when_matched_and_inf_otherwise():
    from tstitch_core.report import compute_latent_rel_l2

    reference = torch.zeros(1, 4, 2, 2, 2)
    assert compute_latent_rel_l2(reference.clone(), reference) == 0.0
    assert compute_latent_rel_l2(reference + 1, reference) == math.inf


def test_the_warmup_runs_every_model_once_in_as_few_runs_as_it_can():
    from tstitch_core.report import pick_warmup_fractions

    stages = {0.0: {1}, 0.2: {0, 1}, 0.6: {0, 1}, 1.0: {0}}  # stage 1 is the large model
    assert pick_warmup_fractions(stages) == [0.6]  # both models; the more small steps, the cheaper
    assert pick_warmup_fractions({0.0: {1}, 1.0: {0}}) == [1.0, 0.0]
    assert pick_warmup_fractions({0.0: {2}, 0.3: {0, 2}, 0.7: {0, 1, 2}}) == [0.7]  # a nested pair's three models


def test_a_caption_gives_fraction_speedup_and_ssim():
    assert format_caption(SweepRow(0.4, 8, 20, 8.0, 30.0, 0.91234, 0.1), 10.0) == "f = 0.40  1.25x  SSIM 0.912"


def agreements(cosines, t_over_t_max=None):
    from tstitch_core import StepAgreement

    t_over_t_max = t_over_t_max or [1 - i / len(cosines) for i in range(len(cosines))]
    return [StepAgreement(i, 10.0 - i, t, c, 1 - c) for i, (c, t) in enumerate(zip(cosines, t_over_t_max))]


def test_the_suggestion_stops_at_the_first_step_below_the_threshold():
    from tstitch_core import leading_agreeing_steps, suggested_fraction

    steps = agreements([0.99, 0.97, 0.8, 0.95])  # a later recovery does not count: the small steps come first
    assert leading_agreeing_steps(steps, 0.9) == 2 and suggested_fraction(steps, 0.9) == 0.5
    assert suggested_fraction(steps, 0.5) == 1.0 and suggested_fraction(steps, 0.995) == 0.0


def test_the_timestep_range_covers_exactly_the_suggested_steps():
    from tstitch_core import timestep_fraction_range

    steps = agreements([1, 1, 1, 1], t_over_t_max=[1.0, 0.8, 0.5, 0.2])
    assert timestep_fraction_range(steps, 2) == (1 - 0.8, 1 - 0.5)  # t/T >= 1 - f holds for 1.0 and 0.8 only
    assert timestep_fraction_range(steps, 0) == (0.0, 0.0) and timestep_fraction_range(steps, 4) == (0.8, 1.0)


@pytest.mark.parametrize("t_over_t_max", [[1.0, 0.5436, 0.3214, 0.1], [1.0, 0.9998, 0.9993, 0.2], [1.0, 0.8, 0.5, 0.2]])
def test_the_timestep_fractions_as_printed_give_exactly_the_suggested_steps(t_over_t_max):
    import re

    from tstitch_core import describe_timestep_fractions

    steps = agreements([1, 1, 1, 1], t_over_t_max)
    for small in range(1, 5):
        text = describe_timestep_fractions(steps, small)
        for shown in re.fullmatch(r"switch_by timestep: small_fraction ([\d.]+) to ([\d.]+)", text).groups():
            # the rule: a step is the small model's when t/T >= 1 - small_fraction
            assert sum(t >= 1 - float(shown) for t in t_over_t_max) == small, (small, text)
    assert describe_timestep_fractions(steps, 0) == "switch_by timestep: small_fraction 0"


def test_the_table_opens_with_the_suggestion_in_both_rules():
    from tstitch_core import format_agreement_table

    table = format_agreement_table(agreements([0.99, 0.97, 0.8, 0.95], [1.0, 0.8, 0.5, 0.2]), 0.9)
    assert table.splitlines()[0] == ("The small model agrees (cosine >= 0.9) for the first 2 of 4 steps: suggested "
                                     "small_fraction 0.500 (switch_by steps); on this schedule, switch_by timestep: "
                                     "small_fraction 0.201 to 0.499.")
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("step"))
    model = lines[header].split().index("model")
    assert [line.split()[model] for line in lines[header + 1:]] == ["small", "small", "large", "large"]


def test_each_nested_model_takes_the_agreeing_steps_after_the_one_before_it():
    from tstitch_core import compute_stage_handovers

    smallest = agreements([0.99, 0.99, 0.5, 0.99, 0.99, 0.99])  # a later recovery does not count
    middle = agreements([0.5, 0.99, 0.99, 0.99, 0.8, 0.99])  # disagrees at step 1, which the smallest runs anyway
    assert compute_stage_handovers([smallest, middle], 0.9) == [2, 4]
    assert compute_stage_handovers([middle, smallest], 0.9) == [0, 2]  # the middle one's first step fails
    assert compute_stage_handovers([smallest], 0.9) == [2]
    assert compute_stage_handovers([agreements([1.0] * 4), agreements([1.0] * 4)], 0.9) == [4, 4]


def test_the_nested_table_gives_each_model_its_steps_fractions_and_columns():
    from tstitch_core import format_stages_agreement_table

    t = [1.0, 0.8, 0.6, 0.4, 0.2]
    stages = [agreements([0.99, 0.5, 0.5, 0.5, 0.5], t), agreements([0.99, 0.95, 0.92, 0.5, 0.99], t)]
    lines = format_stages_agreement_table(stages, ["small model (A)", "model 2 of 3 (B)"], 0.9).splitlines()
    assert lines[1] == ("- small model (A): step 1 of 5; it hands over at small_fraction 0.200 (switch_by steps); on "
                        "this schedule, switch_by timestep: small_fraction 0.001 to 0.199. Alone it agrees for "
                        "the first 1 step.")
    assert lines[2] == ("- model 2 of 3 (B): steps 2-3 of 5; it hands over at small_fraction 0.600 (switch_by steps); "
                        "on this schedule, switch_by timestep: small_fraction 0.401 to 0.599. Alone it agrees "
                        "for the first 3 steps.")
    # the smallest model's window (the probe's suggested_stages), then the figures with the model and stage columns
    assert lines[3].startswith("Longest agreeing run of the small model (A): step 1 of 5, from the first step: "
                               "suggested_stages \"0.2\"")
    assert lines[4].split() == ["step", "sigma", "t/T", "cosine", "small", "rel.L2", "small", "cosine", "model2",
                                "rel.L2", "model2", "model", "stages"]
    assert lines[5].split() == ["1", "10", "1.000", "0.99000", "0.0100", "0.99000", "0.0100", "small", "small"]
    assert [line.split()[-2] for line in lines[5:]] == ["small", "model2", "model2", "large", "large"]
    assert [line.split()[5] for line in lines[5:]] == ["0.99000", "0.95000", "0.92000", "0.50000", "0.99000"]
    assert len({len(line) for line in lines[4:]}) == 1  # aligned


def test_one_model_before_the_large_one_keeps_the_single_pair_table():
    from tstitch_core import format_agreement_table, format_stages_agreement_table

    steps = agreements([0.99, 0.97, 0.8, 0.95])
    assert format_stages_agreement_table([steps], ["small model (A)"], 0.9) == format_agreement_table(steps, 0.9)
