"""T-Stitch speed, fraction by fraction, through the real ComfyUI host: its loaders, nodes and samplers.

    python -m bench.run                                   SD1.5 + BK-SDM-Tiny, 10 steps, on the GPU if there is one
    python -m bench.run --pair sdxl-ssd-1b --size 512 --steps 25
    python -m bench.run --pair trained-digits             quality by fraction on a DiT pair trained here (quality.py)

For each small_fraction it times TStitchModelPair into KSampler, and the same split as two chained
KSamplerAdvanced, against each model alone; and TStitchAgreementProbe against the large model alone. The models have the real architectures with seeded random
weights (what a step costs does not depend on the weights): built once, cached in ~/.cache/comfyui-tstitch.
Writes results.md, speedup.png and results.json to bench/results/<name>/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tstitch_core import parse_fractions as core_parse_fractions
from tstitch_dev import models
from tstitch_dev.cli import add_sampling_options
from tstitch_dev.comfy_env import boot_comfyui
from tstitch_dev.host import CACHE_DIR, comfyui_version

from .measure import Config, Sample, Settings, Workload, configs_for, measure, warm_up
from .plot import draw_speedup
from .report import PLOT_NAME, PaperFigures, build_table, check_targets, describe_machine, to_json, to_markdown

RESULTS = Path(__file__).resolve().parent / "results"
HOST_WORKDIR = CACHE_DIR / "bench-host"  # holds only the link to this pack that ComfyUI loads it through
DEFAULT_FRACTIONS = "0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1"
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}  # torch names


@dataclass(frozen=True)
class Pair:
    title: str
    large: models.UNetSpec | models.DiTSpec
    small: models.UNetSpec | models.DiTSpec
    paper: PaperFigures | None = None

    @property
    def is_dit(self) -> bool:
        return isinstance(self.large, models.DiTSpec)


# the T-Stitch paper's DiT figures: 1.6 / 4.0 / 16.5 s for 8 images, 5 / 22 / 114 GFLOPs (S, B, XL)
DIT_S_ON_XL = PaperFigures("DiT-S/2", "DiT-XL/2", 1.6 / 16.5, 5 / 114, speedup_at_paper_fraction=1.5)
DIT_B_ON_XL = PaperFigures("DiT-B/2", "DiT-XL/2", 4.0 / 16.5, 22 / 114)
DIT_SAMPLING = {"sampler": "ddim", "scheduler": "ddim_uniform", "cfg": 4.0}  # the official T-Stitch DiT sampler's

PAIRS = {
    "sd15-bk-sdm-tiny": Pair("SD1.5 + BK-SDM-Tiny", models.SD15, models.BK_SDM_TINY),
    "sdxl-ssd-1b": Pair("SDXL + SSD-1B", models.SDXL, models.SSD_1B),
    "sdxl-vega": Pair("SDXL + Segmind Vega", models.SDXL, models.SEGMIND_VEGA),
    "dit-s-xl": Pair("DiT-XL/2 + DiT-S/2", models.DIT_XL_2, models.DIT_S_2, DIT_S_ON_XL),
    "dit-b-xl": Pair("DiT-XL/2 + DiT-B/2", models.DIT_XL_2, models.DIT_B_2, DIT_B_ON_XL),
    "tiny": Pair("test-sized SD1.5 pair", models.TINY_SD15_LARGE, models.TINY_SD15_SMALL),  # the smoke test's
    "tiny-dit": Pair("test-sized DiT pair", models.TINY_DIT_XL, models.TINY_DIT_S, DIT_S_ON_XL),
}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", choices=PAIRS, default="sd15-bk-sdm-tiny", help="large + small model: "
                        + "; ".join(f"{name}: {pair.title}" for name, pair in PAIRS.items())
                        + f". --pair {QUALITY_PAIR}: quality, not speed, on a DiT pair trained here "
                          f"(its own options: --pair {QUALITY_PAIR} --help)")
    parser.add_argument("--fractions", default=DEFAULT_FRACTIONS, help=f"comma-separated (default {DEFAULT_FRACTIONS})")
    add_sampling_options(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each configuration (default 5)")
    parser.add_argument("--dtype", choices=DTYPES, help="weights and compute (default fp32 on CPU, fp16 on GPU)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is there")
    parser.add_argument("--name", help="results folder name under bench/results (default from the settings)")
    parser.add_argument("--out", type=Path, help="results folder (overrides --name)")
    parser.add_argument("--rerender", type=Path, metavar="FOLDER", help=(
        "measure nothing: write a results folder's table and plot again from its results.json"))
    args = parser.parse_args(argv)
    if PAIRS[args.pair].is_dit:  # DiT's own sampler, unless asked otherwise
        for option, value in DIT_SAMPLING.items():
            if f"--{option}" not in (argv or []):
                setattr(args, option, value)
    args.fractions = parse_fractions(parser, args.fractions)
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be at least 1")
    return args


def parse_fractions(parser, text: str) -> list[float]:
    try:
        return sorted(set(core_parse_fractions(text)))
    except ValueError as error:
        parser.error(f"--fractions: {error}")


def check_sampler(sampler: str, scheduler: str) -> None:
    # before the models load: a long run should not fail at its first sampling
    import comfy.samplers

    for kind, name, names in (("sampler", sampler, comfy.samplers.KSampler.SAMPLERS),
                              ("scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS)):
        if name not in names:
            sys.exit(f"bench: no {kind} {name!r} in this ComfyUI; it has: {', '.join(names)}")


def load_model(spec: models.UNetSpec | models.DiTSpec, dtype):
    """``spec``'s diffusion-model file (built on first use) through ComfyUI's loader (a DiT: through the pack's
    DiT loader node), in ``dtype``."""
    import comfy.sd

    if isinstance(spec, models.DiTSpec):
        import folder_paths
        import nodes

        folder_paths.add_model_folder_path("diffusion_models", str(models.MODEL_CACHE))
        weight_dtype = {value: key for key, value in DTYPES.items()}[str(dtype).removeprefix("torch.")]
        return nodes.NODE_CLASS_MAPPINGS["TStitchDiTLoader"].execute(
            dit_name=models.ensure_dit(spec).name, weight_dtype=weight_dtype).result[0]
    return comfy.sd.load_diffusion_model(str(models.ensure_diffusion_model(spec)), model_options={"dtype": dtype})


def describe_model(patcher) -> str:
    parameters = sum(p.numel() for p in patcher.model.diffusion_model.parameters())
    return f"{type(patcher.model.model_config).__name__} ({parameters / 1e6:.1f}M parameters)"


def random_conds(family: str, seed: int) -> tuple[list, list]:
    """Seeded stand-ins for encoded prompts in the family's shapes: what a step costs does not depend on them.
    DiTs take a class and the null class, from the pack's ImageNet Class node."""
    import torch

    if family == "dit":
        import nodes

        return tuple(nodes.NODE_CLASS_MAPPINGS["TStitchImageNetClass"].execute(class_name="207 golden retriever").result)
    generator = torch.Generator().manual_seed(seed)
    width, pooled = {"sd15": (768, None), "sdxl": (2048, 1280)}[family]

    def cond():
        extras = {} if pooled is None else {"pooled_output": torch.randn(1, pooled, generator=generator)}
        return [[torch.randn(1, 77, width, generator=generator), extras]]

    return cond(), cond()


@contextmanager
def progress_bars_off():
    # hundreds of samplings: keep the output to the results; the host's setting is put back after
    import comfy.utils

    enabled = comfy.utils.PROGRESS_BAR_ENABLED
    comfy.utils.set_progress_bar_enabled(False)
    try:
        yield
    finally:
        comfy.utils.set_progress_bar_enabled(enabled)


def report_round(started: float, repeats: int):
    def report(done: int):
        elapsed = time.perf_counter() - started
        print(f"round {done} of {repeats} done, {elapsed:.0f} s, about {elapsed / done * (repeats - done):.0f} s left",
              flush=True)

    return report


def time_pair(pair: Pair, settings: Settings, dtype_name: str, fractions: list[float], repeats: int,
              device) -> tuple[dict, dict]:
    """Load both models, warm up, time every configuration; returns the samples and what the models are."""
    import torch

    import nodes

    with torch.inference_mode(), progress_bars_off():  # as ComfyUI's executor runs nodes
        dtype = getattr(torch, DTYPES[dtype_name])
        large, small = load_model(pair.large, dtype), load_model(pair.small, dtype)
        positive, negative = random_conds("dit" if pair.is_dit else pair.large.family, settings.seed)
        latent = nodes.EmptyLatentImage().generate(settings.size, settings.size, 1)[0]
        workload = Workload(small, large, settings, positive, negative, latent)
        warm_up(workload)
        samples = measure(configs_for(fractions), workload, repeats, device,
                          report_round(time.perf_counter(), repeats))
    return samples, {"large": describe_model(large), "small": describe_model(small)}


QUALITY_PAIR = "trained-digits"  # the quality curve on a pair trained here: bench/quality.py


def wants_quality(argv) -> bool:
    return any(arg == f"--pair={QUALITY_PAIR}" or (arg == "--pair" and following == QUALITY_PAIR)
               for arg, following in zip(argv, [*argv[1:], None]))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_quality(argv):
        from .quality import main as quality_main

        return quality_main(argv)
    args = parse_args(argv)
    if args.rerender:
        return write_results(args.rerender, *load_results(args.rerender))
    host = boot_comfyui(HOST_WORKDIR, cpu=True if args.cpu else None)
    check_sampler(args.sampler, args.scheduler)
    import comfy.model_management

    device = comfy.model_management.get_torch_device()
    dtype_name = args.dtype or ("fp32" if device.type == "cpu" else "fp16")
    settings = Settings(args.steps, args.size or (256 if device.type == "cpu" else 512), args.sampler,
                        args.scheduler, args.cfg, args.seed)
    pair = PAIRS[args.pair]
    out = args.out or RESULTS / (args.name or f"{args.pair}-{device.type}-{dtype_name}-{settings.size}px-"
                                              f"{settings.steps}steps")
    print(f"T-Stitch benchmark: {pair.title} on {device}, {dtype_name}, {settings.size}x{settings.size}, "
          f"{settings.steps} steps {settings.sampler}/{settings.scheduler}, {3 + 2 * len(args.fractions)} "
          f"configurations x {args.repeats} repeats (models are built on first use and cached)", flush=True)
    samples, model_descriptions = time_pair(pair, settings, dtype_name, args.fractions, args.repeats, device)
    machine = describe_machine(device, comfyui_version(host))
    setup = {"pair": args.pair, **model_descriptions, "dtype": dtype_name, "repeats": args.repeats,
             **asdict(settings)}
    return write_results(out, machine, setup, samples)


def write_results(out: Path, machine: dict, setup: dict, samples: dict[Config, list[Sample]]) -> int:
    """From the timed samples: results.md, results.json and the plot in ``out``; the table printed too."""
    fractions = sorted({config.fraction for config in samples if config.fraction is not None})
    table = build_table(samples, fractions, setup["steps"])
    targets = check_targets(table)
    device_type = machine["device"].split(":")[0]
    title = PAIRS[setup["pair"]].title
    memory_label = "peak CUDA MiB" if device_type == "cuda" else "peak RSS MiB"
    markdown = to_markdown(title, machine, describe_setup(setup), table, targets, memory_label,
                           PAIRS[setup["pair"]].paper)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown)
    (out / "results.json").write_text(json.dumps(to_json(machine, setup, table, targets, samples), indent=1))
    draw_speedup(table, f"{title}: speedup over the large model alone ({device_type}, {setup['steps']} "
                        f"steps, {setup['size']}px)").save(out / PLOT_NAME)
    print(markdown)
    print(f"Results in {out}")
    return 0


def load_results(out: Path) -> tuple[dict, dict, dict[Config, list[Sample]]]:
    """(machine, setup, samples) as a run saved them in ``out``/results.json."""
    data = json.loads((out / "results.json").read_text())
    samples = {Config(**entry["config"]): [Sample(*sample) for sample in zip(entry["seconds"], entry["peak_bytes"])]
               for entry in data["samples"]}
    return data["machine"], data["setup"], samples


def describe_setup(setup: dict) -> list[str]:
    latent_side = setup["size"] // 8
    loader = "the pack's DiT loader" if PAIRS[setup["pair"]].is_dit else "ComfyUI's diffusion-model loader"
    return [
        (f"large model: {setup['large']}; small model: {setup['small']}; seeded random weights, loaded by "
         f"{loader} in {setup['dtype']}"),
        (f"{setup['steps']} steps {setup['sampler']}/{setup['scheduler']}, cfg {setup['cfg']:g}, "
         f"{setup['size']}x{setup['size']} ({latent_side}x{latent_side} latent), batch 1, seed {setup['seed']}"),
        (f"timed runs of each configuration: {setup['repeats']}, interleaved: every round runs each configuration "
         "once, in a new random order; one short untimed run of each kind first"),
        ("stitched: TStitchModelPair (switch_by steps) into KSampler, the pair node included; chained: "
         "KSamplerAdvanced (small model, add_noise, steps 0 to k, return_with_leftover_noise) into "
         "KSamplerAdvanced (large model, no added noise, step k to the end)"),
        ("ideal: k x (small alone / N) + (N - k) x (large alone / N); speedups are over the large model alone; "
         "times are medians, spreads min-max; peak memory is the highest over the runs"),
    ]


if __name__ == "__main__":
    sys.exit(main())
