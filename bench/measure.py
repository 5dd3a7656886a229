"""Timing whole samplings through ComfyUI's nodes: each configuration, its peak memory, interleaved repeats.

ComfyUI's ``nodes`` is imported inside the functions: it is importable only once the host is booted.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import psutil
import torch

from tstitch_core import compute_switch_index
from tstitch_core.agreement import DEFAULT_MIN_AGREEMENT

LARGE, SMALL, STITCHED, CHAINED, PROBE = "large alone", "small alone", "stitched", "chained", "agreement probe"
RSS_INTERVAL_S = 0.01
WARM_UP_FRACTION = 0.5  # both models run in the warm-up's splits
END_OF_SCHEDULE = 10000  # KSamplerAdvanced's end_at_step default: past the last step
PROBE_MIN_AGREEMENT = DEFAULT_MIN_AGREEMENT  # the node's; what it costs does not depend on it


@dataclass(frozen=True)
class Config:
    """One timed configuration: a model alone, the split at ``fraction`` (stitched or chained), or the probe."""

    kind: str
    fraction: float | None = None


@dataclass(frozen=True)
class Settings:
    steps: int
    size: int  # image side in pixels
    sampler: str
    scheduler: str
    cfg: float
    seed: int


@dataclass(frozen=True)
class Workload:
    """What every configuration samples: the two loaded models, the settings, conditioning and latent."""

    small: object  # ModelPatcher
    large: object
    settings: Settings
    positive: list
    negative: list
    latent: dict


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_bytes: int


@dataclass
class Peak:
    bytes: int = 0


def configs_for(fractions) -> list[Config]:
    return ([Config(LARGE), Config(SMALL), Config(PROBE)]
            + [Config(kind, f) for f in fractions for kind in (STITCHED, CHAINED)])


def ksample(model, w: Workload) -> dict:
    import nodes

    s = w.settings
    return nodes.KSampler().sample(model, s.seed, s.steps, s.cfg, s.sampler, s.scheduler, w.positive, w.negative,
                                   w.latent)[0]


def sample_stitched(w: Workload, fraction: float) -> dict:
    """TStitchModelPair into KSampler, the pair node included in the cost."""
    import nodes

    pair_node = nodes.NODE_CLASS_MAPPINGS["TStitchModelPair"]
    pair = pair_node.execute(small_model=w.small, large_model=w.large, small_fraction=fraction, switch_by="steps")
    return ksample(pair.result[0], w)


def sample_chained(w: Workload, fraction: float) -> dict:
    """The same split as two KSamplerAdvanced: the small model to step k with its leftover noise, the large on."""
    import nodes

    s = w.settings
    k = compute_switch_index(s.steps, fraction)
    shared = (s.seed, s.steps, s.cfg, s.sampler, s.scheduler, w.positive, w.negative)
    advanced = nodes.KSamplerAdvanced()
    first = advanced.sample(w.small, "enable", *shared, w.latent, 0, k, "enable")[0]
    return advanced.sample(w.large, "disable", *shared, first, k, END_OF_SCHEDULE, "disable")[0]


def run_probe(w: Workload) -> float:
    """TStitchAgreementProbe, the whole node (the large model's sampling, a small-model call per step, the plot);
    returns its suggested fraction."""
    import nodes

    s = w.settings
    probe = nodes.NODE_CLASS_MAPPINGS["TStitchAgreementProbe"].execute(
        small_model=w.small, large_model=w.large, seed=s.seed, steps=s.steps, cfg=s.cfg, sampler_name=s.sampler,
        scheduler=s.scheduler, positive=w.positive, negative=w.negative, latent_image=w.latent, denoise=1.0,
        min_agreement=PROBE_MIN_AGREEMENT)
    return probe.result[2]


RUNNERS: dict[str, Callable[[Workload, float | None], object]] = {
    LARGE: lambda w, _: ksample(w.large, w),
    SMALL: lambda w, _: ksample(w.small, w),
    STITCHED: sample_stitched,
    CHAINED: sample_chained,
    PROBE: lambda w, _: run_probe(w),
}


def run_config(config: Config, w: Workload):
    """One full sampling of ``config``; returns the LATENT (the probe: its suggested fraction)."""
    return RUNNERS[config.kind](w, config.fraction)


@contextmanager
def peak_memory(device: torch.device) -> Iterator[Peak]:
    """Peak memory while the block runs: the CUDA allocator's peak on a GPU, else the process RSS, sampled."""
    peak = Peak()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield peak
        peak.bytes = torch.cuda.max_memory_allocated(device)
        return
    process, stop = psutil.Process(), threading.Event()

    def sample_rss():
        peak.bytes = max(peak.bytes, process.memory_info().rss)

    def keep_sampling():
        while not stop.wait(RSS_INTERVAL_S):
            sample_rss()

    sample_rss()
    sampler = threading.Thread(target=keep_sampling, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()
        sample_rss()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":  # kernels run asynchronously: the clock must wait for them
        torch.cuda.synchronize(device)


def time_config(config: Config, w: Workload, device: torch.device) -> Sample:
    with peak_memory(device) as peak:
        synchronize(device)
        start = time.perf_counter()
        run_config(config, w)
        synchronize(device)
        seconds = time.perf_counter() - start
    return Sample(seconds, peak.bytes)


def warm_up(w: Workload) -> None:
    """One short, untimed sampling of every kind: loading and first-call costs stay out of the timings."""
    short = replace(w, settings=replace(w.settings, steps=min(2, w.settings.steps)))
    for config in configs_for([WARM_UP_FRACTION]):
        run_config(config, short)


def measure(configs: list[Config], w: Workload, repeats: int, device: torch.device,
            on_round: Callable[[int], None] = lambda done: None) -> dict[Config, list[Sample]]:
    """``repeats`` timed samplings of each configuration, round by round, each round in a new random order."""
    samples = {config: [] for config in configs}
    order, shuffler = list(configs), random.Random(0)
    for round_index in range(repeats):
        # slow drifts of a shared machine, and whatever ran just before, then hit every configuration alike
        shuffler.shuffle(order)
        for config in order:
            samples[config].append(time_config(config, w, device))
        on_round(round_index + 1)
    return samples
