"""The sweep's table and captions (pure)."""

import math

import pytest

from tstitch_core import SweepRow, format_caption, format_sweep_table


def test_the_table_has_a_column_per_figure_and_a_row_per_fraction():
    rows = [SweepRow(0.0, 0, 20, 10.0, math.inf, 1.0, 0.0), SweepRow(0.4, 8, 20, 8.0, 31.234, 0.91234, 0.1234)]
    lines = format_sweep_table(rows, reference_seconds=10.0).splitlines()
    assert lines[0].split("  ")[0] == "fraction" and lines[0].endswith("latent rel. L2")
    assert lines[1].split() == ["0", "0/20", "10.00", "1.00x", "inf", "1.0000", "0.0000"]
    assert lines[2].split() == ["0.4", "8/20", "8.00", "1.25x", "31.23", "0.9123", "0.1234"]
    assert len({len(line) for line in lines}) == 1  # aligned


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
    assert [line.split()[-1] for line in table.splitlines()[2:]] == ["small", "small", "large", "large"]


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
    assert lines[3].split() == ["step", "sigma", "t/T", "cosine", "small", "rel.L2", "small", "cosine", "model2",
                                "rel.L2", "model2", "model"]
    assert lines[4].split() == ["1", "10", "1.000", "0.9900", "0.0100", "0.9900", "0.0100", "small"]
    assert [line.split()[-1] for line in lines[4:]] == ["small", "model2", "model2", "large", "large"]
    assert [line.split()[5] for line in lines[4:]] == ["0.9900", "0.9500", "0.9200", "0.5000", "0.9900"]
    assert len({len(line) for line in lines[3:]}) == 1  # aligned


def test_one_model_before_the_large_one_keeps_the_single_pair_table():
    from tstitch_core import format_agreement_table, format_stages_agreement_table

    steps = agreements([0.99, 0.97, 0.8, 0.95])
    assert format_stages_agreement_table([steps], ["small model (A)"], 0.9) == format_agreement_table(steps, 0.9)
