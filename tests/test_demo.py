"""The README's demo command, run on test-sized checkpoints given as paths."""

import json

import numpy as np
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


def test_digits_demo_scores_times_and_draws_each_panel(comfy_host, tmp_path, capsys):
    from tstitch_dev import digits

    small, large = digits.short_recipes(steps=2)
    small_path, large_path = digits.ensure_pair(tmp_path / "models", log=None, small=small, large=large)
    sampling = digits.Sampling(steps=3, per_class=3)  # 3: fewer leave the large model no step at 0.5, refused
    picture = demo.digits_demo(tmp_path / "out", small_path, large_path, (0.3, 0.5), sampling=sampling,
                               notes=("kept", "past the knee"))
    printed = capsys.readouterr().out
    assert "large model alone" in printed and "T-Stitch, small_fraction 0.3" in printed
    assert "T-Stitch, small_fraction 0.5" in printed
    assert printed.count("(30 samples, 3 steps)") == 3 and printed.count("class accuracy") == 3
    from PIL import Image

    image = Image.open(picture)
    # three panels of 10 digits (24 px, 4 px apart) side by side, 3 rows of samples under the two-line labels
    panel = 10 * 28 - 4
    assert picture.name == demo.DIGITS_PICTURE and image.width == 3 * panel + 4 * 28
    assert image.height == 30 + (16 * 3 + 8) + 3 * 28 + 28  # three label lines: name, note, figures
    pixels = np.asarray(image)
    top = 30 + 16 * 3 + 8
    # spaced: the 4 px between two digits of a row stay paper white
    assert (pixels[top:top + 24, 28 + 24:28 + 28] == 255).all()


def write_curve(folder, accuracy_by_fraction, frechet=3.0):
    """A results.json as the bench writes it: two seeds, the same accuracy for both unless given as a pair."""
    points = []
    for fraction, accuracy in accuracy_by_fraction.items():
        for seed, value in enumerate(accuracy if isinstance(accuracy, tuple) else (accuracy, accuracy)):
            points.append({"fraction": fraction, "seed": seed, "accuracy": value, "frechet": frechet, "seconds": 1.0})
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"points": points}))
    return folder


def test_the_demos_fractions_are_the_curves_last_flat_one_and_a_visible_drop(tmp_path):
    # seed spread 0.02 (at 0.1): 0.2 is within it, 0.3 is not, so 0.4 back within does not count
    curve = write_curve(tmp_path / "curve", {0.0: 0.95, 0.1: (0.95, 0.93), 0.2: 0.94, 0.3: 0.92, 0.4: 0.94,
                                             0.5: 0.91, 0.6: 0.84, 1.0: 0.2})
    assert demo.curve_fractions(curve) == (0.2, 0.6)
    # no fraction past the flat ones drops by demo.KNEE_DROP: the last one measured
    assert demo.curve_fractions(write_curve(tmp_path / "flat", {0.0: 0.9, 0.5: 0.9, 1.0: 0.88})) == (0.5, 1.0)


def test_the_committed_curve_gives_the_demo_a_flat_fraction_and_one_past_the_knee():
    from bench.quality import Point, build_rows, within_spread

    kept, past = demo.curve_fractions()
    found = json.loads((demo.DIGITS_CURVE / "results.json").read_text())
    rows = build_rows([Point(**p) for p in found["points"]], {p["fraction"]: 0 for p in found["points"]})
    within = within_spread(rows)
    assert 0 < kept < past < 1 and within[kept] and not within[past]
