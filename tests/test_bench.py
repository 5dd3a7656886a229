"""The benchmark's smoke test: a short CPU run on the test-sized models, through the real host.

It checks that the table is written and consistent with itself and with the timed samples, and that
the plot is a valid image; it sets no bar on the timings.
"""

import json
import re
import shutil
import statistics

import pytest
from PIL import Image

from bench import run
from tstitch_core import compute_switch_index

pytestmark = pytest.mark.latest_host_only  # about the benchmark command, not the host: once per run is enough

FRACTIONS, STEPS, SIZE = [0.0, 0.5, 1.0], 2, 32


@pytest.fixture(scope="module")
def results(comfy_host, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    argv = ["--pair", "tiny", "--fractions", "0,0.5,1", "--steps", str(STEPS), "--size", str(SIZE), "--repeats", "1",
            "--cpu", "--out", str(out)]
    assert run.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def data(results) -> dict:
    return json.loads((results / "results.json").read_text())


def markdown_table(markdown: str, heading: str) -> list[list[str]]:
    """The cells of the table under ``heading``, header and separator left out."""
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_markdown_has_a_row_per_fraction_with_the_packs_small_step_count(results):
    rows = markdown_table((results / "results.md").read_text(), "By fraction")
    assert [(float(r[0]), int(r[1])) for r in rows] == [(f, compute_switch_index(STEPS, f)) for f in FRACTIONS]
    assert [int(r[1]) for r in rows] == [0, 1, 2]


def test_markdown_speedups_and_ideal_times_follow_from_its_own_times(results):
    markdown = (results / "results.md").read_text()
    large, small = (float(r[1]) for r in markdown_table(markdown, "Models alone"))
    rows = markdown_table(markdown, "By fraction")
    for fraction, k, stitched, _, chained, _, ideal, overhead, speedup, ideal_speedup, chained_speedup, *_ in rows:
        k, stitched, chained, ideal = int(k), float(stitched), float(chained), float(ideal)
        assert ideal == pytest.approx(k * small / STEPS + (STEPS - k) * large / STEPS, rel=2e-3), fraction
        assert float(speedup.rstrip("x")) == pytest.approx(large / stitched, rel=2e-3, abs=1e-3), fraction
        assert float(ideal_speedup.rstrip("x")) == pytest.approx(large / ideal, rel=2e-3, abs=1e-3), fraction
        assert float(chained_speedup.rstrip("x")) == pytest.approx(large / chained, rel=2e-3, abs=1e-3), fraction
        assert float(overhead.rstrip("%")) == pytest.approx((stitched / ideal - 1) * 100, rel=2e-2, abs=0.2), fraction
    assert float(rows[0][6]) == pytest.approx(large, rel=1e-3)  # f = 0: N steps of the large model
    assert float(rows[-1][6]) == pytest.approx(small, rel=1e-3)


def test_noise_summary_follows_from_the_rows(results):
    markdown = (results / "results.md").read_text()
    rows = markdown_table(markdown, "By fraction")
    summary = next(line for line in markdown.splitlines() if line.startswith("Over all"))
    found = re.search(r"Over all (\d+) fractions: mean overhead vs ideal ([-+\d.]+)%, mean stitched / chained "
                      r"([\d.]+)\. Repeated runs of one configuration spread ([\d.]+)%", summary)
    count, overhead, ratio, spread = found.groups()
    assert int(count) == len(FRACTIONS)
    assert float(overhead) == pytest.approx(statistics.mean(float(r[7].rstrip("%")) for r in rows), abs=0.011)
    assert float(ratio) == pytest.approx(statistics.mean(float(r[11]) for r in rows), abs=0.0011)
    assert float(spread) == 0.0  # one repeat: no spread


def test_rerendering_from_results_json_writes_the_same_report(results, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    (copy / "results.md").unlink()
    (copy / "speedup.png").unlink()
    assert run.main(["--rerender", str(copy)]) == 0
    assert (copy / "results.md").read_text() == (results / "results.md").read_text()
    assert json.loads((copy / "results.json").read_text()) == json.loads((results / "results.json").read_text())
    assert (copy / "speedup.png").read_bytes() == (results / "speedup.png").read_bytes()


def test_table_is_computed_from_the_timed_samples(data):
    seconds = {(s["config"]["kind"], s["config"]["fraction"]): s["seconds"] for s in data["samples"]}
    assert sorted(seconds, key=str) == sorted([("large alone", None), ("small alone", None), ("agreement probe", None)] + [
        (kind, f) for f in FRACTIONS for kind in ("stitched", "chained")], key=str)
    assert all(len(runs) == 1 for runs in seconds.values())  # one repeat
    table = data["table"]
    large, small = table["large"]["median"], table["small"]["median"]
    assert (large, small) == (seconds["large alone", None][0], seconds["small alone", None][0])
    for row in table["rows"]:
        assert row["stitched"]["median"] == seconds["stitched", row["fraction"]][0]
        assert row["chained"]["median"] == seconds["chained", row["fraction"]][0]
        assert row["speedup"] == pytest.approx(large / row["stitched"]["median"])
        assert row["stitched_per_chained"] == pytest.approx(row["stitched"]["median"] / row["chained"]["median"])
        assert row["stitched"]["peak_mib"] > 0 and row["chained"]["peak_mib"] > 0


def test_the_probe_is_timed_against_the_large_model_alone_with_the_ratio_its_two_passes_predict(results, data):
    """One large-model sampling plus one small-model call per step: 1 + small / large times the large model."""
    markdown = (results / "results.md").read_text()
    large, small = (float(r[1]) for r in markdown_table(markdown, "Models alone"))
    (name, median, low_high, ratio, expected, peak), = markdown_table(markdown, "Agreement probe")
    probe_seconds = next(s["seconds"] for s in data["samples"] if s["config"]["kind"] == "agreement probe")
    assert name == "probe" and float(median) == pytest.approx(probe_seconds[0], rel=1e-3)
    assert low_high == f"{probe_seconds[0]:.4g}-{probe_seconds[0]:.4g}"  # one repeat
    assert float(ratio.rstrip("x")) == pytest.approx(float(median) / large, rel=2e-3, abs=1e-3)
    assert float(expected.rstrip("x")) == pytest.approx(1 + small / large, rel=2e-3, abs=1e-3)
    probe = data["table"]["probe"]
    assert probe["ratio"] == pytest.approx(probe["stats"]["median"] / data["table"]["large"]["median"])
    assert probe["expected_ratio"] == pytest.approx(1 + data["table"]["small"]["median"]
                                                    / data["table"]["large"]["median"])
    assert float(peak) > 0


def test_report_describes_the_machine_and_rates_every_target(results, comfy_host):
    from tstitch_dev.host import comfyui_version

    markdown = (results / "results.md").read_text()
    for fact in ("- CPU: ", "- torch: ", "- device: cpu", f"- ComfyUI: {comfyui_version(comfy_host)}"):
        assert fact in markdown
    targets = [line for line in markdown.split("## Targets\n", 1)[1].splitlines() if line.startswith("- ")]
    assert len(targets) == 2  # no f = 0.4 row, so no paper-setting target
    assert all(line.startswith(("- PASS ", "- MISS ")) for line in targets)


def test_plot_is_a_png_image(results):
    with Image.open(results / "speedup.png") as image:
        image.verify()
    with Image.open(results / "speedup.png") as image:
        assert image.format == "PNG" and image.size[0] > 0 and image.size[1] > 0
        image.load()


@pytest.mark.parametrize("pair, large, small", [
    ("sd15-bk-sdm-tiny", ("SD15", 859.5), ("SD15", 323.4)),
    ("sdxl-ssd-1b", ("SDXL", 2567.5), ("SSD1B", 1331.3)),
    ("sdxl-vega", ("SDXL", 2567.5), ("Segmind_Vega", 745.2)),
])
def test_benchmark_models_are_the_real_architectures_as_comfyui_detects_them(pair, large, small, comfy_host):
    # on the meta device: ComfyUI's detection reads only key names and shapes, so no weights are built
    import torch
    import comfy.model_detection
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from tstitch_dev.models import unet_config

    def detect(spec):
        unet = UNetModel(**unet_config(spec), dtype=torch.float32, device="meta",
                         operations=comfy.ops.disable_weight_init)
        state_dict = unet.state_dict()
        config = comfy.model_detection.model_config_from_unet(state_dict, "")
        return type(config).__name__, round(sum(t.numel() for t in state_dict.values()) / 1e6, 1)

    assert (detect(run.PAIRS[pair].large), detect(run.PAIRS[pair].small)) == (large, small)


@pytest.mark.parametrize("pair, large, small", [("dit-s-xl", 675.1, 33.0), ("dit-b-xl", 675.1, 130.5)])
def test_dit_benchmark_models_have_the_published_sizes(pair, large, small):
    # DiT paper, table 1: DiT-S/2 33M, DiT-B/2 130M, DiT-XL/2 675M parameters; the published DiT-XL-2-256x256.pt
    # holds 675,129,632 numbers, its fixed position table among them
    import math
    from tstitch_dev.models import dit_tensor_shapes

    def millions(spec):
        return round(sum(math.prod(shape) for shape in dit_tensor_shapes(spec).values()) / 1e6, 1)

    assert (millions(run.PAIRS[pair].large), millions(run.PAIRS[pair].small)) == (large, small)


@pytest.fixture(scope="module")
def dit_results(comfy_host, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-dit")
    argv = ["--pair", "tiny-dit", "--fractions", "0,0.4,1", "--steps", "5", "--size", "64", "--repeats", "1", "--cpu",
            "--out", str(out)]
    assert run.main(argv) == 0
    return (out / "results.md").read_text()


def test_the_dit_pair_runs_the_official_sampler_and_sits_beside_the_papers_figures(dit_results):
    assert "5 steps ddim/ddim_uniform, cfg 4" in dit_results and "loaded by the pack's DiT loader" in dit_results
    large, small = (float(r[1]) for r in markdown_table(dit_results, "Models alone"))
    rows = markdown_table(dit_results, "Against the paper")
    (label, here, paper_measured, paper_flops), *speedups = rows
    assert label == "small / large per-step cost r"
    assert float(here) == pytest.approx(small / large, rel=2e-3, abs=1e-3)
    assert (float(paper_measured), float(paper_flops)) == (0.097, 0.044)  # 1.6 / 16.5 s and 5 / 114 GFLOPs
    stitched = {float(r[0]): float(r[8].rstrip("x")) for r in markdown_table(dit_results, "By fraction")}
    for (label, here, expected, by_flops), fraction in zip(speedups, (0.0, 0.4, 1.0)):
        assert label == f"speedup at small_fraction {fraction:g}"
        assert float(here.rstrip("x")) == pytest.approx(stitched[fraction], abs=0.006)
        assert float(expected.split("x")[0]) == pytest.approx(1 / (fraction * 1.6 / 16.5 + 1 - fraction), abs=0.006)
        assert float(by_flops.split("x")[0]) == pytest.approx(1 / (fraction * 5 / 114 + 1 - fraction), abs=0.006)
        assert ("reported: about 1.5x" in expected) == (fraction == 0.4)


# --- the quality curve on the trained digits pair (bench/quality.py): its table from hand-made points ---

def quality_points():
    from bench.quality import Point

    # (fraction, seed) -> accuracy, Frechet, seconds
    figures = {(0.0, 0): (0.95, 1.0, 10.0), (0.0, 1): (0.93, 1.2, 12.0),
               (0.5, 0): (0.92, 1.1, 8.0), (0.5, 1): (0.90, 1.3, 6.0),
               (1.0, 0): (0.40, 9.0, 2.0), (1.0, 1): (0.45, 8.0, 3.0)}
    return [Point(f, s, *values) for (f, s), values in figures.items()]


def test_quality_rows_take_means_over_seeds_and_speedups_over_the_large_models_median():
    from bench.quality import build_rows, seed_spread, within_spread

    rows = build_rows(quality_points(), {0.0: 0, 0.5: 10, 1.0: 20})
    assert [(r.fraction, r.small_steps) for r in rows] == [(0.0, 0), (0.5, 10), (1.0, 20)]
    assert rows[1].accuracy == [0.92, 0.90] and rows[1].accuracy_mean == pytest.approx(0.91)
    assert rows[2].frechet_mean == pytest.approx(8.5)
    # medians of two seeds: large 11 s, stitched 7 s, small 2.5 s
    assert [r.speedup for r in rows] == pytest.approx([1.0, 11 / 7, 11 / 2.5])
    # the largest seed-to-seed difference of any setting: accuracy 0.05 (small), Frechet 1.0 (small)
    assert seed_spread(rows) == pytest.approx((0.05, 1.0))
    # 0.5: accuracy 0.91 >= 0.94 - 0.05 and Frechet 1.2 <= 1.1 + 1.0; the small model: neither
    assert within_spread(rows) == {0.0: True, 0.5: True, 1.0: False}


def test_quality_table_and_plot_are_written_from_the_rows():
    from bench.quality import build_rows, to_markdown
    from bench.plot_quality import draw_quality

    rows = build_rows(quality_points(), {0.0: 0, 0.5: 10, 1.0: 20})
    setup = {"steps": 20, "sampler": "euler", "scheduler": "normal", "cfg": 1.5, "switch_by": "timestep",
             "per_class": 5, "seeds": [0, 1], "small": "s.pt", "large": "l.pt", "small_description": "depth 1",
             "large_description": "depth 4", "train_note": "cached", "classifier_accuracy": 0.97, "real_frechet": 0.3}
    markdown = to_markdown(rows, setup, {"CPU": "test"})
    assert "| 0 (large alone) | 0 | 0.950 / 0.930 | 0.940 | 1.00 / 1.20 | 1.10 | 11.0 | 1.00x | yes |" in markdown
    assert "| 1 (small alone) | 20 | 0.400 / 0.450 | 0.425 | 9.00 / 8.00 | 8.50 | 2.5 | 4.40x | no |" in markdown
    assert "within the spread of the large model: 0.5." in markdown
    from bench.quality import spread_bands

    assert spread_bands(rows) == (pytest.approx((0.89, 0.99)), pytest.approx((0.1, 2.1)))
    image = draw_quality(rows, "test", spread_bands(rows))
    assert image.size == (900, 44 + 3 * 230 + 30)


def test_the_flat_region_ends_at_the_first_setting_outside_the_spread_and_calibration_counts_suggestions():
    from bench.quality import Point, build_rows, calibrate, calibration_markdown, flat_steps
    from tstitch_core.agreement import StepAgreement

    # 0.25 and 0.5 within the spread (0.05), 0.75 not, so 0.9 back within does not extend the flat region
    points = quality_points() + [Point(0.25, s, 0.94, 1.0, 9.0) for s in (0, 1)] + [
        Point(0.75, s, 0.80, 3.0, 5.0) for s in (0, 1)] + [Point(0.9, s, 0.94, 1.0, 4.0) for s in (0, 1)]
    rows = build_rows(points, {0.0: 0, 0.25: 5, 0.5: 10, 0.75: 15, 0.9: 18, 1.0: 20})
    assert flat_steps(rows) == 10

    def run(*cosines):
        return [StepAgreement(i, 1.0, 1.0, c, 0.0) for i, c in enumerate(cosines)]

    agreements = {(0, 0): run(0.999, 0.998, 0.99, 0.9), (1, 0): run(0.999, 0.999, 0.999, 0.9),
                  (2, 0): run(0.98, 0.999, 0.999, 0.999)}
    calibrations = calibrate(agreements, thresholds=(0.95, 0.999))
    assert [c.suggested_steps for c in calibrations] == [[3, 3, 4], [1, 3, 0]]
    assert [c.inside(3) for c in calibrations] == [2, 2]  # 4 steps past the region; 0 steps is not in it
    markdown = calibration_markdown(calibrations, 3, 4, 0.999)
    assert "| 0.95 | 3 (3-4) | 2 of 3 |" in markdown and "| 0.999 (default) | 1 (0-3) | 2 of 3 |" in markdown


def test_bench_hands_the_trained_digits_pair_to_the_quality_curve():
    assert run.wants_quality(["--pair", "trained-digits", "--per-class", "5"])
    assert run.wants_quality(["--steps", "3", "--pair=trained-digits"])
    assert not run.wants_quality(["--pair", "tiny", "--name", "trained-digits"])
    from bench.quality import parse_args

    args = parse_args(["--pair", "trained-digits", "--fractions", "1,0,0.5", "--seeds", "3,4", "--per-class", "6"])
    assert (args.fractions, args.seeds, args.per_class, args.switch_by) == ([0.0, 0.5, 1.0], [3, 4], 6, "timestep")
    assert args.small == "shipped" and parse_args(["--small", "held-apart", "--windows", "none"]).windows == []


def test_quality_curve_end_to_end_on_the_shipped_pair(comfy_host, tmp_path, monkeypatch, capsys):
    """The command's whole path (classifier, sampling through ComfyUI, probe, calibration, files) on the shipped
    pair at 2 sample steps, 2 of each digit: the pipeline, not the quality; then the report written again from
    its results.json is the same report."""
    from bench import quality

    monkeypatch.setattr("bench.quality.PROBE_PER_CLASS", 2)
    out = tmp_path / "out"
    assert run.main(["--pair", "trained-digits", "--fractions", "0,0.5,1", "--seeds", "0,1", "--per-class", "2",
                     "--steps", "2", "--windows", "none", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert sorted((p["fraction"], p["seed"]) for p in data["points"]) == [(f, s) for f in (0.0, 0.5, 1.0) for s in (0, 1)]
    assert all(0 <= p["accuracy"] <= 1 and p["frechet"] >= 0 for p in data["points"])
    probed = data["probe"]["by_digit_and_seed"]
    assert sorted((p["digit"], p["seed"]) for p in probed) == [(d, s) for d in range(10) for s in (0, 1)]
    assert all(len(p["cosine"]) == len(p["rel_l2"]) == 2 for p in probed)
    assert [c["min_agreement"] for c in data["probe"]["calibration"]] == list(quality.CALIBRATION_THRESHOLDS)
    assert data["setup"]["classifier_accuracy"] > 0.95
    markdown = (out / "results.md").read_text()
    assert "| 0 (large alone) | 0 |" in markdown and "| 1 (small alone) | 2 |" in markdown
    assert "## The Agreement Probe against the curve" in markdown
    assert Image.open(out / "quality.png").size == (900, 44 + 3 * 230 + 30)
    assert "Results in" in capsys.readouterr().out
    (out / "results.md").unlink()
    assert run.main(["--pair", "trained-digits", "--from-json", str(out)]) == 0
    assert (out / "results.md").read_text() == markdown


def test_windows_are_tabled_beside_the_fraction_of_the_same_share():
    from bench.quality import Point, build_rows, parse_args, windows_markdown
    from tstitch_core.report import SweepPlan

    rows = build_rows(quality_points(), {0.0: 0, 0.5: 10, 1.0: 20})
    window = SweepPlan(0.25, 0.75)
    points = [Point("0.25-0.75", 0, 0.94, 1.0, 9.0), Point("0.25-0.75", 1, 0.92, 1.4, 13.0)]
    markdown = windows_markdown([window], points, rows, {"0.25-0.75": 10})
    lines = markdown.splitlines()
    same_share = lines.index("| 0.5 (small first) | 10 | 0.920 / 0.900 | 0.910 | 1.10 / 1.30 | 1.20 | 7.0 | 1.57x | yes |")
    # median 11 s for the large model alone over 11 s here; 0.93 >= 0.94 - 0.05 and 1.2 <= 1.1 + 1.0
    assert lines[same_share + 1] == "| 0.25-0.75 | 10 | 0.940 / 0.920 | 0.930 | 1.00 / 1.40 | 1.20 | 11.0 | 1.00x | yes |"
    assert "(accuracy 0.050, Frechet 1.000)" in markdown  # the spread of every setting, the window's included
    # a window whose seeds differ more widens the spread it is judged by
    wide = [Point("0.25-0.75", 0, 0.99, 1.0, 9.0), Point("0.25-0.75", 1, 0.80, 1.4, 13.0)]
    assert "(accuracy 0.190, Frechet 1.000)" in windows_markdown([window], wide, rows, {"0.25-0.75": 10})
    assert parse_args(["--windows", "0.5-1, 0.25-0.75"]).windows == [SweepPlan(0.25, 0.75), SweepPlan(0.5, 1.0)]
    with pytest.raises(SystemExit):
        parse_args(["--windows", "0.4"])  # a fraction, not a window


def test_quality_windows_end_to_end_on_a_briefly_trained_pair(comfy_host, tmp_path, monkeypatch):
    """A window through T-Stitch Stages on the same pipeline: sampled, scored and tabled."""
    monkeypatch.setattr("bench.quality.PROBE_PER_CLASS", 2)
    out = tmp_path / "out"
    assert run.main(["--pair", "trained-digits", "--fractions", "0,0.5", "--windows", "0.25-0.75", "--seeds", "0",
                     "--per-class", "2", "--steps", "4", "--switch-by", "steps", "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert [(p["fraction"], p["seed"]) for p in data["window_points"]] == [("0.25-0.75", 0)]
    markdown = (out / "results.md").read_text()
    assert "| 0.5 (small first) | 2 |" in markdown and "| 0.25-0.75 | 2 |" in markdown
