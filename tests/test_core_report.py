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
