"""From timed samples to the table: medians and spreads, the ideal time, overheads, speedups, the targets."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import torch

from tstitch_core import compute_switch_index

from .measure import CHAINED, LARGE, PROBE, PROBE_MIN_AGREEMENT, SMALL, STITCHED, Config, Sample

OVERHEAD_LIMIT_PCT = 2.0
PAPER_FRACTION = 0.4  # the T-Stitch paper's setting
MIB = 2 ** 20
PLOT_NAME = "speedup.png"


@dataclass(frozen=True)
class Stats:
    """Median and spread of one configuration's sampling times (s), and its highest peak memory."""

    median: float
    low: float
    high: float
    peak_mib: float


@dataclass(frozen=True)
class Row:
    fraction: float
    small_steps: int  # k: steps the small model runs
    stitched: Stats
    chained: Stats
    ideal: float  # k small steps and N - k large steps at their measured per-step costs
    overhead_pct: float  # stitched over ideal
    speedup: float  # large alone over stitched
    ideal_speedup: float
    chained_speedup: float
    stitched_per_chained: float  # stitched time over chained time


@dataclass(frozen=True)
class ProbeCost:
    """TStitchAgreementProbe against the large model alone: one large sampling plus one small call per step."""

    stats: Stats
    ratio: float  # probe over large alone
    expected_ratio: float  # 1 + small alone / large alone: both models' per-step cost over the large one's


@dataclass(frozen=True)
class Table:
    steps: int
    large: Stats
    small: Stats
    rows: list[Row]
    probe: ProbeCost | None = None  # None in results measured before the probe was timed


@dataclass(frozen=True)
class PaperFigures:
    """What the T-Stitch paper reports for a pair (DiT, 256x256), printed beside what was measured here."""

    small: str
    large: str
    cost_measured: float  # small / large sampling time, 8 images on an RTX 3090 (1.6 / 4.0 / 16.5 s)
    cost_flops: float  # small / large GFLOPs per step (5 / 22 / 114)
    speedup_at_paper_fraction: float | None = None  # "about 1.5x" for DiT-S at 40%


@dataclass(frozen=True)
class Target:
    goal: str
    passed: bool
    measured: str


def summarize(samples: list[Sample]) -> Stats:
    seconds = [s.seconds for s in samples]
    return Stats(statistics.median(seconds), min(seconds), max(seconds), max(s.peak_bytes for s in samples) / MIB)


def build_table(samples: dict[Config, list[Sample]], fractions: list[float], steps: int) -> Table:
    large, small = summarize(samples[Config(LARGE)]), summarize(samples[Config(SMALL)])
    # whole-run times per step: the per-run costs outside the steps are shared out among them
    large_step, small_step = large.median / steps, small.median / steps
    rows = []
    for fraction in fractions:
        k = compute_switch_index(steps, fraction)
        stitched = summarize(samples[Config(STITCHED, fraction)])
        chained = summarize(samples[Config(CHAINED, fraction)])
        ideal = k * small_step + (steps - k) * large_step
        rows.append(Row(fraction, k, stitched, chained, ideal, overhead_pct=(stitched.median / ideal - 1) * 100,
                        speedup=large.median / stitched.median, ideal_speedup=large.median / ideal,
                        chained_speedup=large.median / chained.median,
                        stitched_per_chained=stitched.median / chained.median))
    probe = None
    if Config(PROBE) in samples:
        stats = summarize(samples[Config(PROBE)])
        probe = ProbeCost(stats, stats.median / large.median, 1 + small.median / large.median)
    return Table(steps, large, small, rows, probe)


def check_targets(table: Table) -> list[Target]:
    worst = max(table.rows, key=lambda r: r.overhead_pct)
    slowest = max(table.rows, key=lambda r: r.stitched_per_chained)
    targets = [
        Target(f"stitched within {OVERHEAD_LIMIT_PCT:g}% of ideal at every fraction",
               worst.overhead_pct <= OVERHEAD_LIMIT_PCT, f"worst {worst.overhead_pct:+.2f}% at f={worst.fraction:g}"),
        Target("stitched never slower than chained KSamplerAdvanced", slowest.stitched_per_chained <= 1.0,
               f"worst stitched/chained {slowest.stitched_per_chained:.3f} at f={slowest.fraction:g}"),
    ]
    for row in table.rows:
        if math.isclose(row.fraction, PAPER_FRACTION):
            targets.append(Target(f"speedup at f={PAPER_FRACTION:g} at least the ideal",
                                  row.speedup >= row.ideal_speedup,
                                  f"{row.speedup:.3f}x, ideal {row.ideal_speedup:.3f}x"))
    return targets


def describe_noise(table: Table) -> str:
    """The targets' context: mean overhead and stitched/chained over all fractions, and how much runs vary."""
    rows = table.rows
    configs = [table.large, table.small] + [stats for r in rows for stats in (r.stitched, r.chained)]
    spread_pct = statistics.median((s.high - s.low) / s.median * 100 for s in configs)
    return (f"Over all {len(rows)} fractions: mean overhead vs ideal "
            f"{statistics.mean(r.overhead_pct for r in rows):+.2f}%, mean stitched / chained "
            f"{statistics.mean(r.stitched_per_chained for r in rows):.3f}. Repeated runs of one "
            f"configuration spread {spread_pct:.1f}% (median of (max - min) / median): a difference smaller than "
            "that is within this machine's noise.")


def describe_machine(device: torch.device, comfyui: str) -> dict[str, str]:
    machine = {
        "CPU": f"{cpu_model()}, {os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads",
        "memory": f"{psutil.virtual_memory().total / 2 ** 30:.1f} GiB",
        "device": str(device),
        "torch": torch.__version__,
        "ComfyUI": comfyui,
        "Python": platform.python_version(),
        "pack commit": pack_commit(),
    }
    if device.type == "cuda":
        machine["GPU"] = f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}"
    return machine


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def pack_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                                timeout=10, cwd=Path(__file__).resolve().parent)
    except OSError:
        return "unknown"
    return result.stdout.strip() or "unknown"


def to_markdown(title: str, machine: dict[str, str], setup: list[str], table: Table, targets: list[Target],
                memory_label: str, paper: PaperFigures | None = None) -> str:
    lines = [f"# T-Stitch benchmark: {title}", "", f"![speedup over the large model alone]({PLOT_NAME})", "",
             "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    lines += ["", "## Setup", ""] + [f"- {line}" for line in setup]
    lines += ["", "## Models alone", "", f"| model | median s | min-max s | per step s | {memory_label} |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for name, stats in (("large", table.large), ("small", table.small)):
        lines.append(f"| {name} | {stats.median:.4g} | {spread(stats)} | {stats.median / table.steps:.4g} | "
                     f"{stats.peak_mib:.0f} |")
    lines += ["", "## By fraction", "",
              ("| small_fraction | small steps k | stitched s | min-max | chained s | min-max | ideal s | overhead vs "
               "ideal | speedup | ideal speedup | chained speedup | stitched / chained | "
               f"{memory_label} stitched | {memory_label} chained |"),
              "| ---: " * 14 + "|"]
    for r in table.rows:
        lines.append(f"| {r.fraction:g} | {r.small_steps} | {r.stitched.median:.4g} | {spread(r.stitched)} | "
                     f"{r.chained.median:.4g} | {spread(r.chained)} | {r.ideal:.4g} | {r.overhead_pct:+.2f}% | "
                     f"{r.speedup:.3f}x | {r.ideal_speedup:.3f}x | {r.chained_speedup:.3f}x | "
                     f"{r.stitched_per_chained:.3f} | {r.stitched.peak_mib:.0f} | "
                     f"{r.chained.peak_mib:.0f} |")
    if table.probe:
        probe = table.probe
        lines += ["", "## Agreement probe", "",
                  (f"TStitchAgreementProbe (min_agreement {PROBE_MIN_AGREEMENT:g}), the whole node: the large model's "
                   "sampling, one small-model call per step, the plot. Expected: 1 + small alone / large alone times "
                   "the large model alone."), "",
                  f"| | median s | min-max s | x large alone | expected x | {memory_label} |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |",
                  (f"| probe | {probe.stats.median:.4g} | {spread(probe.stats)} | {probe.ratio:.3f}x | "
                   f"{probe.expected_ratio:.3f}x | {probe.stats.peak_mib:.0f} |")]
    if paper:
        lines += compare_with_paper(table, paper)
    lines += ["", "## Targets", ""] + [f"- {format_target(t)}" for t in targets] + ["", describe_noise(table)]
    return "\n".join(lines) + "\n"


def stitched_speedup(cost_ratio: float, fraction: float) -> float:
    """Large alone over a stitch whose first ``fraction`` of steps cost ``cost_ratio`` of a large step."""
    return 1 / (fraction * cost_ratio + 1 - fraction)


def compare_with_paper(table: Table, paper: PaperFigures) -> list[str]:
    """Markdown lines: per-step cost ratio and speedups measured here next to the paper's."""
    ratio = table.small.median / table.large.median
    lines = ["", "## Against the paper", "",
             (f"{paper.small} over {paper.large}, as the T-Stitch paper reports them (DiT, 256x256: sampling time of "
              "8 images on an RTX 3090, and GFLOPs per step). The expected speedup at f is 1 / (f r + 1 - f) for a "
              "per-step cost ratio r."), "",
             "| | measured here | paper, measured | paper, by FLOPs |", "| --- | ---: | ---: | ---: |",
             f"| small / large per-step cost r | {ratio:.3f} | {paper.cost_measured:.3f} | {paper.cost_flops:.3f} |"]
    for row in table.rows:
        reported = ""
        if paper.speedup_at_paper_fraction and math.isclose(row.fraction, PAPER_FRACTION):
            reported = f" (reported: about {paper.speedup_at_paper_fraction:g}x)"
        lines.append(f"| speedup at small_fraction {row.fraction:g} | {row.speedup:.2f}x | "
                     f"{stitched_speedup(paper.cost_measured, row.fraction):.2f}x expected{reported} | "
                     f"{stitched_speedup(paper.cost_flops, row.fraction):.2f}x expected |")
    return lines


def spread(stats: Stats) -> str:
    return f"{stats.low:.4g}-{stats.high:.4g}"


def format_target(target: Target) -> str:
    return f"{'PASS' if target.passed else 'MISS'} {target.goal}: {target.measured}"


def to_json(machine: dict, setup: dict, table: Table, targets: list[Target],
            samples: dict[Config, list[Sample]]) -> dict:
    """Everything in the markdown, and every timed sample, so the table can be recomputed."""
    return {"machine": machine, "setup": setup, "table": asdict(table), "targets": [asdict(t) for t in targets],
            "samples": [{"config": asdict(config), "seconds": [s.seconds for s in runs],
                         "peak_bytes": [s.peak_bytes for s in runs]} for config, runs in samples.items()]}
