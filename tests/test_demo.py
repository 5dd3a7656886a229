"""The README's demo command, run on test-sized checkpoints given as paths."""

import pytest

from tstitch_dev import demo
from tstitch_dev.models import TINY_SD15_LARGE, TINY_SD15_SMALL, ensure_checkpoint

pytestmark = pytest.mark.latest_host_only  # about the demo command, not the host: once per run is enough


def test_demo_generates_both_images_and_reports_the_speedup(comfy_host, tmp_path, capsys, monkeypatch):
    import folder_paths

    large, small = ensure_checkpoint(TINY_SD15_LARGE), ensure_checkpoint(TINY_SD15_SMALL)
    # same-named files earlier in ComfyUI's model folders must not be what the demo loads
    decoys = tmp_path / "decoys"
    decoys.mkdir()
    for path in (large, small):
        (decoys / path.name).write_bytes(b"not a checkpoint")
    for kind in ("checkpoints", "diffusion_models"):
        paths, extensions = folder_paths.folder_names_and_paths[kind]
        monkeypatch.setitem(folder_paths.folder_names_and_paths, kind, ([str(decoys), *paths], extensions))

    out = tmp_path / "out"
    assert demo.main(["--large", str(large), "--small", str(small), "--steps", "4", "--size", "64", "--cpu",
                      "--repeats", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "T-Stitch (2 of 4 steps small)" in printed
    assert "2 interleaved runs of each" in printed
    assert printed.count("over 2 runs") == 2 and "speedup (medians)" in printed and "large model alone" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["tstitch-demo-large-only_00001_.png", "tstitch-demo-stitched_00001_.png"]


def test_interleaved_runs_take_turns_in_alternating_order():
    calls = []
    timed = demo.interleaved(3, {"a": lambda: calls.append("a") or "A", "b": lambda: calls.append("b") or "B"})
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert {name: (result, len(seconds)) for name, (result, seconds) in timed.items()} == {"a": ("A", 3), "b": ("B", 3)}


def test_digits_demo_scores_times_and_draws_both_sides(comfy_host, tmp_path, capsys):
    from tstitch_dev import digits

    small, large = digits.short_recipes(steps=2)
    small_path, large_path = digits.ensure_pair(tmp_path / "models", log=None, small=small, large=large)
    sampling = digits.Sampling(steps=3, per_class=3)  # 3: fewer leave the large model no step at 0.5, refused
    picture = demo.digits_demo(tmp_path / "out", small_path, large_path, fraction=0.5, sampling=sampling)
    printed = capsys.readouterr().out
    assert "large model alone" in printed and "T-Stitch, small_fraction 0.5" in printed
    assert printed.count("(30 samples, 3 steps)") == 2 and printed.count("class accuracy") == 2
    from PIL import Image

    image = Image.open(picture)
    # two panels of 10 digits (28 px each) side by side, 3 rows of samples under the two-line labels
    assert picture.name == demo.DIGITS_PICTURE and image.width >= 2 * 280 and image.height == 30 + 36 + 3 * 28 + 28
