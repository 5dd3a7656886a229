"""The README's demo command, run on test-sized checkpoints given as paths."""

from tstitch_dev import demo
from tstitch_dev.models import TINY_SD15_LARGE, TINY_SD15_SMALL, ensure_checkpoint


def test_demo_generates_both_images_and_reports_the_speedup(comfy_host, tmp_path, capsys):
    large, small = ensure_checkpoint(TINY_SD15_LARGE), ensure_checkpoint(TINY_SD15_SMALL)
    out = tmp_path / "out"
    assert demo.main(["--large", str(large), "--small", str(small), "--steps", "4", "--size", "64", "--cpu",
                      "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "T-Stitch (2 of 4 steps small)" in printed
    assert "speedup" in printed and "large model alone" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["tstitch-demo-large-only_00001_.png", "tstitch-demo-stitched_00001_.png"]
