"""T-Stitch's quality, fraction by fraction, on a DiT pair trained here (tstitch_dev/digits.py).

    ./tstitch bench --pair trained-digits                 the shipped pair's curve, orders and probe calibration
    ./tstitch bench --pair trained-digits --small held-apart   the same with the small model held apart
    ./tstitch bench --pair trained-digits --per-class 20 --seeds 0,1 --fractions 0,0.5,1
    ./tstitch bench --pair trained-digits --from-json FOLDER   a run's report written again from its results.json

For each small_fraction it samples every digit through ComfyUI (the pack's DiT loader, Class Index and
Model Pair nodes, KSampler; 0 is the large model alone, 1 the small one alone), for two noise seeds, and
scores the samples with a classifier trained on the real digits: the share it recognises as the digit
they were conditioned on, and the Frechet distance of its features to the real digits' (this data set's
FID). The Agreement Probe runs on the same pair. Writes results.md, quality.png and results.json to
bench/results/trained-digits-<settings>/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tstitch_core import parse_fractions
from tstitch_core.agreement import DEFAULT_MIN_AGREEMENT
from tstitch_core.report import SweepPlan
from tstitch_core.validation import parse_sweep_plans
from tstitch_dev import digits
from tstitch_dev.comfy_env import boot_comfyui
from tstitch_dev.host import comfyui_version

from .report import describe_machine

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_FRACTIONS = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"
PLOT_NAME = "quality.png"
PROBE_PER_CLASS = 10
CURVE_PER_CLASS = 60  # 600 samples a setting and seed: the large model's seed spread under 0.02 accuracy
# the orders at equal small-model shares 0.2 and 0.4: small last (large first, as SRDiffusion runs them), then
# large -> small -> large with the small window centred (FlowBlending); small first is the curve's own fraction
DEFAULT_WINDOWS = "0.8-1,0.6-1,0.4-0.6,0.3-0.7"
# min_agreement values the calibration table tries (the node's default among them)
CALIBRATION_THRESHOLDS = (0.99, 0.999, 0.9995, 0.9996, 0.9997, 0.9998)
# the paper's DiT-S -> DiT-XL curve (FID-5K), read off the official repository's figure
PAPER_FID = {0.0: 9.2, 0.4: 9.2, 0.5: 10.1, 1.0: 33.0}


@dataclass(frozen=True)
class Point:
    """One setting (fraction) for one seed."""

    fraction: float
    seed: int
    accuracy: float
    frechet: float
    seconds: float


@dataclass(frozen=True)
class Row:
    fraction: float
    small_steps: int
    accuracy: list[float]  # by seed
    frechet: list[float]
    seconds: float  # median over seeds
    speedup: float  # large alone's median seconds over this one's

    @property
    def accuracy_mean(self) -> float:
        return statistics.fmean(self.accuracy)

    @property
    def frechet_mean(self) -> float:
        return statistics.fmean(self.frechet)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="./tstitch bench --pair trained-digits",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", choices=["trained-digits"], default="trained-digits")
    parser.add_argument("--fractions", default=DEFAULT_FRACTIONS, help=f"comma-separated (default {DEFAULT_FRACTIONS})")
    parser.add_argument("--small", choices=["shipped", "held-apart"], default="shipped", help=(
        "the small model: the shipped pair's, or one held apart from the probe's calibration (depth "
        f"{digits.HELD_APART_SMALL.depth}, trained on first use and cached) with the shipped large model"))
    parser.add_argument("--seeds", default="0,1,2", help="noise seeds, comma-separated (default 0,1,2)")
    defaults = digits.Sampling()
    parser.add_argument("--per-class", type=int, default=CURVE_PER_CLASS,
                        help=f"samples of each digit per seed (default {CURVE_PER_CLASS})")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--cfg", type=float, default=defaults.cfg)
    parser.add_argument("--sampler", default=defaults.sampler)
    parser.add_argument("--scheduler", default=defaults.scheduler)
    parser.add_argument("--switch-by", choices=["timestep", "steps"], default=defaults.switch_by)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: a shared 2-core host)")
    parser.add_argument("--windows", default=DEFAULT_WINDOWS, help=(
        "windows a-b, comma-separated: T-Stitch Stages large -> small (from a to b) -> large, FlowBlending's order "
        f"(a-1: large -> small), each beside the fraction of the same small-model share (default {DEFAULT_WINDOWS}; "
        "none: no windows)"))
    parser.add_argument("--out", type=Path, help="results folder (default under bench/results)")
    args = parser.parse_args(argv)
    try:
        args.fractions = sorted(set(parse_fractions(args.fractions)))
        args.windows = (sorted(set(parse_sweep_plans(args.windows)[0]))
                        if args.windows.strip() not in ("", "none") else [])
        if 0.0 not in args.fractions:
            raise ValueError("--fractions must include 0: the large model alone, which every setting is judged by")
        if any(window.start == 0.0 for window in args.windows):
            raise ValueError("--windows: each window a-b must start after 0 (a fraction f is --fractions' f)")
        args.seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError as error:
        parser.error(str(error))
    if args.per_class < 2 or args.steps < 1:
        parser.error("--per-class must be at least 2 (a covariance) and --steps at least 1")
    return args


def small_steps(large, sampling: digits.Sampling, fraction: float) -> int:
    """Steps the small model starts under the pair's rule, as the pack counts them."""
    import comfy.samplers
    import torch

    from tstitch_core.schedule import SwitchRule, compute_switch_point, count_stage_steps

    model_sampling = large.get_model_object("model_sampling")
    sigmas = [float(s) for s in comfy.samplers.calculate_sigmas(model_sampling, sampling.scheduler, sampling.steps)]

    def timestep_of(sigma):
        return float(model_sampling.timestep(torch.tensor(sigma)))

    point = compute_switch_point(SwitchRule(fraction, sampling.switch_by), sigmas, timestep_of(max(sigmas)))
    return count_stage_steps([point], sigmas, timestep_of)[0]


def measure_curve(small, large, classifier, sampling: digits.Sampling, fractions, seeds, log=print) -> list[Point]:
    """Every fraction for every seed; the fractions interleaved in a new order per seed, so a busy spell of a
    shared machine does not fall on one end of the curve."""
    import random

    conditionings = digits.class_conditionings(large)
    points = []
    for seed in seeds:
        order = list(fractions)
        random.Random(seed).shuffle(order)
        for fraction in order:
            model = digits.stitched_model(small, large, fraction, sampling.switch_by)
            images, labels, seconds = digits.sample_digits(model, conditionings, sampling, seed)
            point = Point(fraction, seed, classifier.accuracy(images, labels), classifier.frechet_distance(images),
                          seconds)
            points.append(point)
            if log:
                log(f"  seed {seed}, small_fraction {fraction:g}: accuracy {point.accuracy:.3f}, "
                    f"Frechet {point.frechet:.3f}, {seconds:.1f} s")
    return points


def window_model(small, large, window: SweepPlan, switch_by: str):
    """T-Stitch Stages for a window: the large model, the small one from ``window.start`` to ``window.end``, the
    large one again (large -> small when the window ends at 1)."""
    import nodes

    stages = nodes.NODE_CLASS_MAPPINGS["TStitchStages"]
    if window.end >= 1.0:
        return stages.execute(model_1=large, model_2=small, until=f"{window.start:g}", switch_by=switch_by).result[0]
    return stages.execute(model_1=large, model_2=small, model_3=large, until=f"{window.start:g}, {window.end:g}",
                          switch_by=switch_by).result[0]


def window_small_steps(large, sampling: digits.Sampling, window: SweepPlan) -> int:
    """Steps the small model starts in a window: the steps before its end less those before its start."""
    return (small_steps(large, sampling, window.end) if window.end < 1.0 else sampling.steps) - small_steps(
        large, sampling, window.start)


def measure_windows(small, large, classifier, sampling: digits.Sampling, windows, seeds, log=print) -> list[Point]:
    """Every window for every seed, as measure_curve does fractions (Point.fraction holds the window's label)."""
    conditionings = digits.class_conditionings(large)
    points = []
    for seed in seeds:
        for window in windows:
            model = window_model(small, large, window, sampling.switch_by)
            images, labels, seconds = digits.sample_digits(model, conditionings, sampling, seed)
            points.append(Point(f"{window:g}", seed, classifier.accuracy(images, labels),
                                classifier.frechet_distance(images), seconds))
            if log:
                log(f"  seed {seed}, window {window:g}: accuracy {points[-1].accuracy:.3f}, "
                    f"Frechet {points[-1].frechet:.3f}, {seconds:.1f} s")
    return points


def windows_markdown(windows, window_points: list[Point], rows: list[Row], steps_of_window: dict) -> str:
    """The orders compared at equal small-model share: for each share, T-Stitch's order (small first, if measured)
    and then each window with that share. "within" uses the seed-to-seed spread over every setting of the run,
    the windows' included."""
    seeds = sorted({p.seed for p in window_points})
    by = {(p.fraction, p.seed): p for p in window_points}
    large = next(r for r in rows if r.fraction == 0.0)
    by_window = {f"{w:g}": ([by[(f"{w:g}", s)].accuracy for s in seeds], [by[(f"{w:g}", s)].frechet for s in seeds])
                 for w in windows}
    spread_accuracy = max(seed_spread(rows)[0], *(max(a) - min(a) for a, _ in by_window.values()))
    spread_frechet = max(seed_spread(rows)[1], *(max(d) - min(d) for _, d in by_window.values()))
    within = lambda accuracy, frechet: (statistics.fmean(accuracy) >= large.accuracy_mean - spread_accuracy
                                        and statistics.fmean(frechet) <= large.frechet_mean + spread_frechet)
    cells = lambda accuracy, frechet: (f"{' / '.join(f'{a:.3f}' for a in accuracy)} | {statistics.fmean(accuracy):.3f} "
                                       f"| {' / '.join(f'{d:.2f}' for d in frechet)} | {statistics.fmean(frechet):.2f}")
    by_fraction = {round(r.fraction, 6): r for r in rows}
    lines = ["", "## Orders at equal small-model share (T-Stitch Stages windows)", "",
             "Window a-b: the large model to a, the small one from a to b, the large one after (a-1: large, then "
             "small), each after T-Stitch's order with the same share (small first) where that was measured. "
             f"\"within\": both measures within the seed-to-seed spread of every setting of this run (accuracy "
             f"{spread_accuracy:.3f}, Frechet {spread_frechet:.3f}) of the large model alone "
             f"({large.accuracy_mean:.3f}, {large.frechet_mean:.2f}).", "",
             "| plan | small steps | class accuracy (by seed) | mean | Frechet (by seed) | mean | seconds | speedup | "
             "within |",
             "|---|---:|---|---:|---|---:|---:|---:|:---:|"]
    for share in sorted({round(w.small_share, 6) for w in windows}):
        first = by_fraction.get(share)
        if first is not None:
            lines.append(f"| {first.fraction:g} (small first) | {first.small_steps} | "
                         f"{cells(first.accuracy, first.frechet)} | {first.seconds:.1f} | {first.speedup:.2f}x | "
                         f"{'yes' if within(first.accuracy, first.frechet) else 'no'} |")
        for window in (w for w in windows if round(w.small_share, 6) == share):
            label = f"{window:g}"
            seconds = statistics.median(by[(label, s)].seconds for s in seeds)
            lines.append(f"| {label} | {steps_of_window[label]} | {cells(*by_window[label])} | {seconds:.1f} | "
                         f"{large.seconds / seconds:.2f}x | {'yes' if within(*by_window[label]) else 'no'} |")
    return "\n".join(lines) + "\n"


def probe_agreements(small, large, sampling: digits.Sampling, seeds, per_class: int = PROBE_PER_CLASS) -> dict:
    """The Agreement Probe's per-step figures for each digit and seed, on a batch of that digit: ``{(digit, seed):
    [StepAgreement]}``, through the node's own trajectory and comparison (switch_by steps)."""
    import nodes
    import torch

    probe = sys.modules[nodes.NODE_CLASS_MAPPINGS["TStitchAgreementProbe"].__module__]
    latent = nodes.EmptyLatentImage().generate(64, 64, per_class)[0]
    found = {}
    with torch.inference_mode(), digits.progress_bars_off():
        for digit, (positive, negative) in enumerate(digits.class_conditionings(large)):
            for seed in seeds:
                settings = probe.Settings(sampling.cfg, positive, negative, latent, seed * 1000 + digit)
                trajectory = probe.follow_trajectory(large, sampling.steps, sampling.sampler, sampling.scheduler, 1.0,
                                                     settings, 1)
                found[(digit, seed)] = trajectory.agreements_of(small, settings, 1)
    return found


def flat_rows(rows: list[Row]) -> list[Row]:
    """The flat region: the large model alone and the fractions after it whose quality stays within the seed
    spread of the large model's, up to the first that does not (the knee)."""
    within = within_spread(rows)
    flat = []
    for row in rows:
        if row.fraction > 0 and not within[row.fraction]:
            break
        flat.append(row)
    return flat


def flat_steps(rows: list[Row]) -> int:
    """The most small steps of the flat region."""
    return flat_rows(rows)[-1].small_steps


@dataclass(frozen=True)
class Calibration:
    """One min_agreement on every probed digit and seed: the suggested small steps (switch_by steps)."""

    min_agreement: float
    suggested_steps: list[int]

    def inside(self, flat: int) -> int:
        """How many suggestions lie in the flat region: at least one small step, at most ``flat``."""
        return sum(1 <= k <= flat for k in self.suggested_steps)


def calibrate(agreements: dict, thresholds=CALIBRATION_THRESHOLDS) -> list[Calibration]:
    from tstitch_core.agreement import leading_agreeing_steps

    return [Calibration(t, [leading_agreeing_steps(a, t) for a in agreements.values()]) for t in thresholds]


def calibration_markdown(calibrations: list[Calibration], flat: int, steps: int, default: float) -> str:
    lines = ["", "## The Agreement Probe against the curve", "",
             f"The probe on every digit and seed of the curve ({PROBE_PER_CLASS} samples a batch), switch_by steps; "
             f"the flat region: 1 to {flat} small steps of {steps} (the fractions whose class accuracy and Frechet "
             "distance stay within the seed spread of the large model's, up to the knee).", "",
             "| min_agreement | suggested small steps: median (min-max) | inside the flat region |",
             "|---:|---|---:|"]
    for c in calibrations:
        label = f"{c.min_agreement:g}{' (default)' if c.min_agreement == default else ''}"
        lines.append(f"| {label} | {statistics.median(c.suggested_steps):g} ({min(c.suggested_steps)}-"
                     f"{max(c.suggested_steps)}) | {c.inside(flat)} of {len(c.suggested_steps)} |")
    return "\n".join(lines) + "\n"


def build_rows(points: list[Point], steps_by_fraction: dict[float, int]) -> list[Row]:
    fractions = sorted({p.fraction for p in points})
    seeds = sorted({p.seed for p in points})
    by = {(p.fraction, p.seed): p for p in points}
    large_seconds = statistics.median(by[(0.0, s)].seconds for s in seeds) if 0.0 in fractions else None
    rows = []
    for f in fractions:
        seconds = statistics.median(by[(f, s)].seconds for s in seeds)
        rows.append(Row(f, steps_by_fraction[f], [by[(f, s)].accuracy for s in seeds],
                        [by[(f, s)].frechet for s in seeds], seconds,
                        large_seconds / seconds if large_seconds else float("nan")))
    return rows


def seed_spread(rows: list[Row]) -> tuple[float, float]:
    """The largest difference between two seeds of one setting, over all settings: (accuracy, Frechet)."""
    return (max(max(r.accuracy) - min(r.accuracy) for r in rows), max(max(r.frechet) - min(r.frechet) for r in rows))


def within_spread(rows: list[Row]) -> dict[float, bool]:
    """Whether a setting's quality is the large model's within the seed-to-seed spread, on both measures
    (accuracy no lower, Frechet no higher than the large model's by more than the spread)."""
    large = next(r for r in rows if r.fraction == 0.0)
    spread_accuracy, spread_frechet = seed_spread(rows)
    return {r.fraction: (r.accuracy_mean >= large.accuracy_mean - spread_accuracy
                         and r.frechet_mean <= large.frechet_mean + spread_frechet) for r in rows}


def spread_bands(rows: list[Row]):
    """(accuracy, Frechet) bands: the large model's mean plus and minus the seed-to-seed spread."""
    large = next(r for r in rows if r.fraction == 0.0)
    spread_accuracy, spread_frechet = seed_spread(rows)
    return ((large.accuracy_mean - spread_accuracy, large.accuracy_mean + spread_accuracy),
            (large.frechet_mean - spread_frechet, large.frechet_mean + spread_frechet))


def to_markdown(rows: list[Row], setup: dict, machine: dict) -> str:
    spread_accuracy, spread_frechet = seed_spread(rows)
    within = within_spread(rows)
    seeds = setup["seeds"]
    lines = [f"# T-Stitch quality on a DiT pair trained here (digits, {setup['small']} -> {setup['large']})", "",
             "- machine: " + "; ".join(f"{key} {value}" for key, value in machine.items()),
             f"- pair: {setup['small_description']} -> {setup['large_description']}, trained by "
             f"tstitch_dev/digits.py ({setup['train_note']})",
             f"- sampling: {setup['steps']} steps {setup['sampler']}/{setup['scheduler']}, cfg {setup['cfg']:g} "
             f"(all 4 channels), switch_by {setup['switch_by']}, {setup['per_class']} samples of each digit per "
             f"seed ({10 * setup['per_class']} per setting), seeds {', '.join(map(str, seeds))}; through the pack's "
             "DiT loader, Class Index and Model Pair nodes and KSampler",
             f"- classifier: an MLP (64 hidden units) trained on 75% of the 1797 real digits, held-out accuracy "
             f"{setup['classifier_accuracy']:.3f}; Frechet distance on its hidden features, samples against all "
             f"real digits (the real digits against themselves, split in halves: {setup['real_frechet']:.3f})",
             *([f"- {setup['note']}"] if setup.get("note") else []),
             f"- seed-to-seed spread (largest difference between the seeds of one setting): accuracy "
             f"{spread_accuracy:.3f}, Frechet {spread_frechet:.3f}; \"within\": both measures within that spread "
             "of the large model's", "",
             "| small_fraction | small steps | class accuracy (by seed) | mean | Frechet (by seed) | mean | "
             "seconds | speedup | within |",
             "|---:|---:|---|---:|---|---:|---:|---:|:---:|"]
    for r in rows:
        label = {0.0: "0 (large alone)", 1.0: "1 (small alone)"}.get(r.fraction, f"{r.fraction:g}")
        lines.append(f"| {label} | {r.small_steps} | {' / '.join(f'{a:.3f}' for a in r.accuracy)} | "
                     f"{r.accuracy_mean:.3f} | {' / '.join(f'{d:.2f}' for d in r.frechet)} | {r.frechet_mean:.2f} | "
                     f"{r.seconds:.1f} | {r.speedup:.2f}x | {'yes' if within[r.fraction] else 'no'} |")
    kept = [r.fraction for r in rows if within[r.fraction] and r.fraction > 0]
    lines += ["", f"Stitched settings within the spread of the large model: "
                  f"{', '.join(f'{f:g}' for f in kept) if kept else 'none'}."]
    lines.append("Times are one sampling of all digits per seed (median over the seeds), on a shared machine.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--from-json" in argv:  # ./tstitch bench --pair trained-digits --from-json FOLDER
        return report_from_json(Path(argv[argv.index("--from-json") + 1]))
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    sampling = digits.Sampling(args.steps, args.sampler, args.scheduler, args.cfg, args.per_class, args.switch_by)
    small_recipe = digits.SMALL if args.small == "shipped" else digits.HELD_APART_SMALL
    started = time.perf_counter()
    small_path, large_path = digits.shipped_pair()
    if args.small == "held-apart":
        small_path = digits.ensure_trained(digits.HELD_APART_SMALL, digits.HELD_APART_SMALL_NAME)
    train_seconds = time.perf_counter() - started
    from .run import HOST_WORKDIR

    host = boot_comfyui(HOST_WORKDIR, cpu=True)
    out = args.out or RESULTS / (f"trained-digits-{args.small}-cpu-{args.steps}steps-cfg{args.cfg:g}-"
                                 f"{args.per_class}per-class-{args.switch_by}")
    print(f"T-Stitch quality: trained digits pair ({args.small} small model), {len(args.fractions)} fractions x "
          f"{len(args.seeds)} seeds x {10 * args.per_class} samples, {args.steps} steps {args.sampler}/"
          f"{args.scheduler} cfg {args.cfg:g}", flush=True)
    classifier = digits.train_classifier()
    images, _ = digits.load_digit_images()
    real_frechet = classifier_split_frechet(classifier, images)
    small, large = digits.load_trained(small_path), digits.load_trained(large_path)
    agreements = probe_agreements(small, large, sampling, args.seeds)
    points = measure_curve(small, large, classifier, sampling, args.fractions, args.seeds)
    window_points = measure_windows(small, large, classifier, sampling, args.windows, args.seeds)
    import comfy.model_management

    machine = describe_machine(comfy.model_management.get_torch_device(), comfyui_version(host))
    setup = {**asdict(sampling), "seeds": args.seeds, "small": small_path.name, "large": large_path.name,
             "small_description": f"DiT width {small_recipe.width}, depth {small_recipe.depth}",
             "large_description": f"DiT width {digits.LARGE.width}, depth {digits.LARGE.depth}",
             "train_note": (f"the large model {digits.LARGE.steps} steps, the small {small_recipe.steps}, batch "
                            f"{digits.LARGE.batch_size}" + ("" if train_seconds < 5 else
                                                            f"; trained in this run: {train_seconds:.0f} s")),
             "classifier_accuracy": classifier.held_out_accuracy, "real_frechet": real_frechet}
    write_report(out, machine, setup, points, window_points, agreements, large, sampling, args.windows)
    return 0


def write_report(out: Path, machine: dict, setup: dict, points: list[Point], window_points: list[Point],
                 agreements: dict, large, sampling: digits.Sampling, windows) -> None:
    """results.md, results.json and the plot from what a run measured (or, with --from-json, what it wrote)."""
    rows = build_rows(points, {p.fraction: small_steps(large, sampling, p.fraction) for p in points})
    markdown = to_markdown(rows, setup, machine)
    if windows:
        markdown += windows_markdown(windows, window_points, rows,
                                     {f"{w:g}": window_small_steps(large, sampling, w) for w in windows})
    calibrations = calibrate(agreements) if agreements and 0.0 in {p.fraction for p in points} else []
    if calibrations:
        markdown += calibration_markdown(calibrations, flat_steps(rows), sampling.steps, DEFAULT_MIN_AGREEMENT)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown)
    probe = {"flat_steps": flat_steps(rows) if calibrations else None,
             "calibration": [asdict(c) for c in calibrations],
             "by_digit_and_seed": [{"digit": digit, "seed": seed, "cosine": [a.cosine for a in found],
                                    "rel_l2": [a.rel_l2 for a in found]} for (digit, seed), found in agreements.items()]}
    (out / "results.json").write_text(json.dumps({"machine": machine, "setup": setup, "probe": probe,
                                                  "points": [asdict(p) for p in points],
                                                  "window_points": [asdict(p) for p in window_points]}, indent=1))
    from .plot_quality import draw_quality

    draw_quality(rows, "T-Stitch on a DiT pair trained on digits (shaded: the large model +- the seed spread)",
                 spread_bands(rows)).save(out / PLOT_NAME)
    print(markdown)
    print(f"Results in {out}")


def report_from_json(folder: Path) -> int:
    """Write a run's results.md, plot and calibration again from its results.json (after the thresholds or the
    report change), measuring nothing: the large model is loaded only for the steps each setting gives it."""
    from tstitch_core.agreement import StepAgreement

    from .run import HOST_WORKDIR

    found = json.loads((folder / "results.json").read_text())
    setup = found["setup"]
    boot_comfyui(HOST_WORKDIR, cpu=True)
    sampling = digits.Sampling(setup["steps"], setup["sampler"], setup["scheduler"], setup["cfg"],
                               setup["per_class"], setup["switch_by"])
    large = digits.load_trained(digits.shipped_pair()[1])
    agreements = {(entry["digit"], entry["seed"]): [StepAgreement(i, 0.0, 0.0, cosine, rel) for i, (cosine, rel)
                                                    in enumerate(zip(entry["cosine"], entry["rel_l2"]))]
                  for entry in found["probe"]["by_digit_and_seed"]}
    window_points = [Point(**p) for p in found["window_points"]]
    windows = sorted(set(parse_sweep_plans(",".join(sorted({p.fraction for p in window_points})))[0])) \
        if window_points else []
    write_report(folder, found["machine"], setup, [Point(**p) for p in found["points"]], window_points, agreements,
                 large, sampling, windows)
    return 0


def classifier_split_frechet(classifier, images) -> float:
    """The Frechet distance between two halves of the real digits (every other one): the floor the measure
    has at about this many samples."""
    from tstitch_dev.digits import feature_statistics, frechet_distance

    a, b = feature_statistics(classifier.features(images[::2])), feature_statistics(classifier.features(images[1::2]))
    return frechet_distance(*a, *b)


if __name__ == "__main__":
    sys.exit(main())
