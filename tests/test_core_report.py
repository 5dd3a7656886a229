"""The sweep's table and captions (pure)."""

import math

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


def test_the_table_opens_with_the_suggestion_in_both_rules():
    from tstitch_core import format_agreement_table

    table = format_agreement_table(agreements([0.99, 0.97, 0.8, 0.95], [1.0, 0.8, 0.5, 0.2]), 0.9)
    assert table.splitlines()[0] == ("The small model agrees (cosine >= 0.9) for the first 2 of 4 steps: suggested "
                                     "small_fraction 0.500 (switch_by steps); on this schedule, switch_by timestep: "
                                     "small_fraction 0.200 (up to 0.500).")
    assert [line.split()[-1] for line in table.splitlines()[2:]] == ["small", "small", "large", "large"]
