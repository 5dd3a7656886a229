"""./tstitch gpu-check: the pack on the path most NVIDIA users run, ComfyUI's dynamic VRAM, in one command.

Two processes, each started the way ComfyUI's main.py starts: one with dynamic VRAM (comfy-aimdo initialised
before torch is imported, init_devices, ModelPatcherDynamic as CoreModelPatcher), one with it off
(--disable-dynamic-vram). Each, through the pack's nodes and ComfyUI's loaders and samplers:
- asserts is_dynamic() on the loaded models (True with dynamic VRAM, False without);
- exactness: f = 0 and f = 1 equal to each model alone, the stitched pass equal to a hand-routed reference
  (tstitch_dev.testing.reference_model), prompts with a scheduled LoRA hook, offload_idle_model on against off;
- memory at real sizes: free VRAM (torch.cuda.mem_get_info, which sees aimdo's allocations) at the first model
  call and after each handover, peak allocated VRAM, with and without offload;
- speed at real sizes in fp16 with random weights (bench/measure.py's interleaved rounds): SD1.5 + BK-SDM-Tiny
  at 512x512 and DiT-S/2 -> DiT-XL/2 at 256x256, each fraction's speedup over the large model alone and over the
  ideal time from the measured per-step costs; with --wan, last, a Wan 2.1 1.3B -> 14B-sized pair.
Without a GPU the same code runs once at test sizes on the CPU (the test suite's smoke). Writes results.json and
results.md to bench/results/gpu/<device>/; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tstitch_dev import models

from . import gpu_prepare

RESULTS = Path(__file__).resolve().parent / "results" / "gpu"
DYNAMIC, STATIC = "dynamic VRAM on", "dynamic VRAM off"
TOLERANCE = 1e-3  # of the output's largest magnitude, where CUDA is not bitwise reproducible
EXACT_FRACTION = 0.4
NOT_AVAILABLE = "dynamic VRAM: not available on this device"
NO_DYNAMIC_VRAM = "this ComfyUI has no dynamic VRAM"
BUDGET_S = 230  # the whole check on one GPU; speed runs left when less than SPEED_RESERVE_S remains are skipped
SPEED_RESERVE_S = 40


@dataclass(frozen=True)
class Sizes:
    exact_size: int  # image side of the exactness checks (test-sized models)
    exact_steps: int
    speed: tuple[tuple[str, int], ...]  # (bench pair, image side)
    steps: int
    fractions: tuple[float, ...]
    repeats: int
    wan: tuple[str, tuple[int, int, int], int]  # --wan: (pair, (width, height, frames), steps), one round at 0.4


GPU = Sizes(512, 10, (("sd15-bk-sdm-tiny", 512), ("dit-s-xl", 256)), 20, (0.2, 0.4, 0.6), 3,
            ("wan-1.3b-14b", (832, 480, 17), 10))
SMOKE = Sizes(64, 3, (("mini", 64), ("tiny-dit", 64)), 2, (0.5,), 1, ("tiny-wan", (64, 64, 5), 2))


def speed_pair(name: str):
    """bench.run's pair of that name, or "mini": the one-level SD1.5 pair most tests sample with (the smoke's)."""
    from .run import PAIRS, Pair

    if name == "mini":
        return Pair("test-sized SD1.5 pair", models.MINI_SD15_LARGE, models.MINI_SD15_SMALL)
    return PAIRS[name]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="./tstitch gpu-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="On a GPU machine that reaches nothing outside: --prepare here, then the "
                                            "calls it prints (docs/gpu-check.md).")
    parser.add_argument("--prepare", action="store_true", help=(
        "here, with the package index: download the wheels the GPU machine lacks and pack ComfyUI's code into "
        ".gpu-check/carry-N (git-ignored), one folder per call; prints the calls to make"))
    parser.add_argument("--wheels", type=Path, metavar="FOLDER", help="--prepare: take the wheels from FOLDER, "
                        "downloading nothing")
    parser.add_argument("--install", action="store_true", help=(
        "there: install what this call carried (.gpu-check/carry-N) into .gpu-check/site and stop"))
    parser.add_argument("--cpu", action="store_true", help="the CPU smoke (test sizes) even where a GPU is")
    parser.add_argument("--wan", action="store_true", help=(
        "last, with dynamic VRAM on only and outside the 4-minute budget: a Wan 2.1 1.3B -> 14B-sized pair (random "
        "fp16 weights built on the GPU; 14B is about 28 GB), 832x480, 17 frames, 10 steps, one round at 0.4"))
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/gpu/<device>)")
    parser.add_argument("--phase", choices=(DYNAMIC, STATIC), help=argparse.SUPPRESS)  # one child process's part
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.prepare:
            from tstitch_dev.host import find_comfyui

            gpu_prepare.prepare(find_comfyui(clone=False), args.wheels)
            return 0
        if args.install or os.environ.get("TSTITCH_CARRIED"):  # set by ./tstitch on a prepared tree
            done = gpu_prepare.install_carried()
            print(f"T-Stitch gpu-check: installed {', '.join(done) or 'nothing new'}", flush=True)
            if args.install:
                return 0
            missing = gpu_prepare.missing_wheels()
            if missing:
                sys.exit(f"T-Stitch gpu-check: {', '.join(missing)} not installed in {gpu_prepare.SITE}: the machine "
                         "went back between the calls. Make the calls --prepare printed again, one right after the "
                         "other.")
            if gpu_prepare.HOST_DIR.is_dir():
                os.environ["COMFYUI_PATH"] = str(gpu_prepare.HOST_DIR)
    except gpu_prepare.PrepareError as error:
        sys.exit(str(error))
    if args.phase:
        return run_phase(args.phase, args.cpu, args.json, args.deadline, args.wan)
    return orchestrate(args.cpu, args.out, args.wan)


# --- the parent: one child process per phase, then the report ---

def orchestrate(cpu: bool, out: Path | None, wan: bool = False) -> int:
    started = time.time()
    cpu = cpu or not cuda_available()
    phases, code = {}, 0
    with tempfile.TemporaryDirectory() as scratch:
        for phase in (DYNAMIC, STATIC):
            first = phases.get(DYNAMIC)
            if first and (first["device_type"] == "cpu" or first["dynamic_note"] == NO_DYNAMIC_VRAM):
                break  # no dynamic VRAM on the CPU or this host: the second phase would run the same code
            path = Path(scratch) / f"{len(phases)}.json"
            command = [sys.executable, *(["-S"] if sys.flags.no_site else []), "-m", "bench.gpu_check", "--phase",
                       phase, "--json", str(path), "--deadline", str(started + BUDGET_S), *(["--cpu"] if cpu else []),
                       *(["--wan"] if wan and phase == DYNAMIC else [])]
            print(f"=== {phase} ===", flush=True)
            code = subprocess.run(command, cwd=gpu_prepare.PACK_ROOT).returncode
            if not path.exists():
                print(f"T-Stitch gpu-check: the '{phase}' process ended (exit {code}) before writing its results; "
                      "the report holds the phases before it", file=sys.stderr)
                code = code or 1
                break
            phases[phase] = json.loads(path.read_text())
    if not phases:
        return code
    report = {"seconds": time.time() - started, "phases": phases}
    out = out or RESULTS / slug(phases[DYNAMIC]["device_name"])
    out.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(report)
    (out / "results.json").write_text(json.dumps(report, indent=1))
    (out / "results.md").write_text(markdown)
    print(markdown)
    print(f"Results in {out}")
    failed = [c["check"] for p in phases.values() for c in p["checks"] if not c["passed"]]
    return 1 if failed or code else 0


def cuda_available() -> bool:
    # here only, in the parent: each phase's own process must start comfy-aimdo before it imports torch
    import torch

    return torch.cuda.is_available()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def to_markdown(report: dict) -> str:
    phases = report["phases"]
    first = next(iter(phases.values()))
    lines = [f"# T-Stitch GPU check: {first['device_name']}", "", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in first["machine"].items()]
    lines += [f"- whole check: {report['seconds']:.0f} s", ""]
    for phase, data in phases.items():
        lines.append(f"- {phase}: {data['dynamic_note']}")
    lines += ["", "## Checks", "", "| check | " + " | ".join(phases) + " |", "| --- |" + " --- |" * len(phases)]
    names = list(dict.fromkeys(c["check"] for data in phases.values() for c in data["checks"]))
    for name in names:
        cells = []
        for data in phases.values():
            found = next((c for c in data["checks"] if c["check"] == name), None)
            cells.append("" if found is None else f"{'PASS' if found['passed'] else 'FAIL'}: {found['detail']}")
        lines.append(f"| {name} | " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    lines += ["", "## Memory", "", ("Stitched at small_fraction "
              f"{EXACT_FRACTION:g}, one sampling after the speed runs, everything unloaded first. Free VRAM is "
              "torch.cuda.mem_get_info's (it sees comfy-aimdo's allocations), at the first model call and at each "
              "handover; peak is torch's allocator's (it does not see aimdo's)."), "",
              "| pair | phase | offload_idle_model | seconds | peak allocated MiB | least free MiB | free MiB at the "
              "first call and each handover |", "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for phase, data in phases.items():
        for run in data["memory"]:
            handovers = ", ".join(f"{name} {mib_text(free)}" for name, free in run["handovers"])
            lines.append(f"| {run['pair']} | {phase} | {'on' if run['offload'] else 'off'} | {run['seconds']:.3f} | "
                         f"{mib_text(run['peak_allocated'])} | {mib_text(run['least_free'])} | {handovers} |")
    lines += ["", "## Speed", "", ("Medians of interleaved rounds (bench/measure.py): the ideal time is k small "
              "steps and N - k large steps at their measured per-step costs; speedups are over the large model "
              "alone."), "",
              "| pair | phase | setting | small_fraction | small steps | large alone s | small alone s | stitched s | "
              "speedup | ideal speedup | stitched / ideal |", "| --- | --- | --- |" + " ---: |" * 8]
    for phase, data in phases.items():
        for pair in data["speed"]:
            if "skipped" in pair:
                lines.append(f"| {pair['pair']} | {phase} | skipped: {pair['skipped']} |" + " |" * 8)
                continue
            table = pair["table"]
            for row in table["rows"]:
                lines.append(f"| {pair['title']} | {phase} | {pair['setting']} | {row['fraction']:g} | "
                             f"{row['small_steps']} | {table['large']['median']:.4g} | "
                             f"{table['small']['median']:.4g} | "
                             f"{row['stitched']['median']:.4g} | {row['speedup']:.3f}x | {row['ideal_speedup']:.3f}x | "
                             f"{row['stitched']['median'] / row['ideal']:.3f} |")
    return "\n".join(lines) + "\n"


def mib_text(value) -> str:
    return "n/a" if value is None else f"{value / 2 ** 20:.0f}"


# --- a child: ComfyUI started as main.py starts it, then the checks ---

def start_comfyui(phase: str, cpu: bool) -> tuple[Path, str]:
    """Import the host as main.py does (comfy-aimdo before torch; dynamic VRAM on in the DYNAMIC phase where
    ComfyUI supports it), then load every node with this pack; returns the host and what became of dynamic VRAM."""
    from tstitch_dev.host import find_comfyui

    host = find_comfyui(clone=False)
    sys.path.insert(0, str(host))
    if gpu_prepare.SITE.is_dir():
        sys.path.append(str(gpu_prepare.SITE))  # after the machine's own packages, which win
    import comfy.options  # noqa: F401  main.py's first import; the command line stays unparsed
    from comfy import cli_args

    args = cli_args.args
    args.cpu = cpu
    args.disable_dynamic_vram = phase == STATIC
    import cuda_malloc  # noqa: F401  as main.py: picks torch's CUDA allocator, so before torch

    wants = getattr(cli_args, "enables_dynamic_vram", lambda: False)()
    if wants:
        assert "torch" not in sys.modules, "comfy-aimdo must start before torch is imported, as in main.py"
        import comfy_aimdo.control

        headroom = None if args.reserve_vram is None else int(args.reserve_vram * 1024 ** 3)
        try:
            comfy_aimdo.control.init(simple_vram_headroom=headroom, nvml_pressure=not args.disable_nvml_pressure)
        except TypeError:
            comfy_aimdo.control.init(simple_vram_headroom=headroom)
    import comfy.model_management as mm
    import comfy.model_patcher

    note = "off (--disable-dynamic-vram)" if phase == STATIC else NOT_AVAILABLE.split(": ")[1]
    if not hasattr(cli_args, "enables_dynamic_vram"):
        note = NO_DYNAMIC_VRAM
    elif wants and (mm.is_nvidia() or (mm.is_amd() and mm.rocm_version >= (7, 14))):
        if mm.torch_version_numeric < (2, 8):
            note = "off: torch older than 2.8"
        else:
            devices = mm.get_all_torch_devices()
            try:
                started = comfy_aimdo.control.init_devices((d.index, int(args.vram_headroom * 1024 ** 3))
                                                           for d in devices)
            except TypeError:  # comfy-aimdo 0.4.9
                started = comfy_aimdo.control.init_devices(d.index for d in devices)
            if started:
                import comfy.memory_management

                comfy.model_patcher.CoreModelPatcher = comfy.model_patcher.ModelPatcherDynamic
                comfy.memory_management.aimdo_enabled = True
                note = "on (comfy-aimdo started as main.py starts it)"
            else:
                note = "off: comfy-aimdo's init_devices failed"
    from tstitch_dev.comfy_env import boot_comfyui

    boot_comfyui(Path(tempfile.mkdtemp(prefix="tstitch-gpu-check-")), cpu=cpu, host=host)
    return host, note


class Recorder:
    """Checks as they run: printed at once, kept for the report; an exception is the check's failure."""

    def __init__(self):
        self.checks = []

    def check(self, name: str, run) -> None:
        try:
            passed, detail = run()
        except Exception as error:  # the report says what broke; the other checks still run
            passed, detail = False, f"{type(error).__name__}: {error}".splitlines()[0][:300]
        self.checks.append({"check": name, "passed": bool(passed), "detail": detail})
        print(f"{'PASS' if passed else 'FAIL'} {name}: {detail}", flush=True)


def compare(actual, expected) -> tuple[bool, str]:
    """Bitwise where the device reproduces it, else within TOLERANCE of the output's scale."""
    import torch

    if not (torch.isfinite(actual).all() and torch.isfinite(expected).all()):
        return False, "not finite"
    if torch.equal(actual, expected):
        return True, "bitwise equal"
    scale = expected.abs().max().item() or 1.0
    difference = (actual.float() - expected.float()).abs().max().item() / scale
    return difference <= TOLERANCE, f"max difference {difference:.1e} of the output's scale (tolerance {TOLERANCE:g})"


def run_phase(phase: str, cpu: bool, out: Path, deadline: float | None, wan: bool = False) -> int:
    started = time.perf_counter()
    host, note = start_comfyui(phase, cpu)
    import torch

    import comfy.model_management as mm
    from tstitch_dev.host import comfyui_version

    from .report import describe_machine

    device = mm.get_torch_device()
    dynamic = note.startswith("on")
    print(f"dynamic VRAM: {note}" if device.type != "cpu" else NOT_AVAILABLE, flush=True)
    sizes = SMOKE if device.type == "cpu" else GPU
    recorder = Recorder()
    if phase == DYNAMIC and device.type == "cuda" and note != NO_DYNAMIC_VRAM:  # the 0.3.64 floor has none
        recorder.check("dynamic VRAM started as main.py starts it", lambda: (dynamic, note))
    print(f"[{time.perf_counter() - started:.0f} s] ComfyUI started, the pack loaded", flush=True)
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        exactness(recorder, sizes, dynamic)
        print(f"[{time.perf_counter() - started:.0f} s] exactness checked", flush=True)
        speed, memory = speed_and_memory(recorder, sizes, dynamic, device, deadline if device.type == "cuda" else None,
                                         wan)
        print(f"[{time.perf_counter() - started:.0f} s] speed and memory measured", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out.write_text(json.dumps({"phase": phase, "dynamic": dynamic, "dynamic_note": note, "device_type": device.type,
                               "device_name": name, "host": str(host),
                               "machine": describe_machine(device, comfyui_version(host)),
                               "checks": recorder.checks, "memory": memory, "speed": speed}, indent=1))
    return 0


def node(node_id):
    import nodes

    return nodes.NODE_CLASS_MAPPINGS[node_id]


def stitch(small, large, fraction, offload=False):
    return run_node("TStitchModelPair", small_model=small, large_model=large, small_fraction=fraction,
                    switch_by="steps", offload_idle_model=offload)[0]


def is_dynamic(patcher) -> bool:
    return bool(getattr(patcher, "is_dynamic", lambda: False)())


def expect_dynamic(patchers: dict, dynamic: bool) -> tuple[bool, str]:
    import comfy.model_management as mm

    mm.load_models_gpu(list(patchers.values()))
    found = {name: is_dynamic(m) for name, m in patchers.items()}
    detail = ", ".join(f"{name} {type(m).__name__} is_dynamic() {found[name]}" for name, m in patchers.items())
    return all(value == dynamic for value in found.values()), detail


def exactness(recorder: Recorder, sizes: Sizes, dynamic: bool) -> None:
    """The pair against each model alone and a hand-routed reference, with hooks and offload, test-sized models."""
    import folder_paths
    import nodes
    import torch

    from tstitch_dev.testing import reference_model

    folder_paths.add_model_folder_path("diffusion_models", str(models.MODEL_CACHE))
    folder_paths.add_model_folder_path("loras", str(models.MODEL_CACHE))
    load = lambda spec: nodes.UNETLoader().load_unet(models.ensure_diffusion_model(spec).name, "default")[0]
    small, large = load(models.MINI_SD15_SMALL), load(models.MINI_SD15_LARGE)
    generator = torch.Generator().manual_seed(1234)
    conds = tuple([[torch.randn(1, 77, 768, generator=generator), {}]] for _ in range(2))
    latent = nodes.EmptyLatentImage().generate(sizes.exact_size, sizes.exact_size, 1)[0]

    def sample(model, prompts=conds):
        return nodes.KSampler().sample(model, 0, sizes.exact_steps, 5.0, "euler", "normal", *prompts, latent)[0][
            "samples"]

    recorder.check("test-sized models loaded " + ("dynamic" if dynamic else "not dynamic"),
                   lambda: expect_dynamic({"small": small, "large": large, "stitched": stitch(small, large, 0.4)},
                                          dynamic))
    alone = {}
    recorder.check("each model alone samples", lambda: (alone.update(small=sample(small), large=sample(large)) or True,
                                                        f"{sizes.exact_size}x{sizes.exact_size}, {sizes.exact_steps} "
                                                        "steps euler"))
    if not alone:
        return  # the comparisons below need both
    differ = "" if not torch.equal(alone["small"], alone["large"]) else " (but the two models alone are equal)"
    recorder.check("f = 0 equals the large model alone", lambda: with_note(compare(sample(stitch(small, large, 0.0)),
                                                                                   alone["large"]), differ))
    recorder.check("f = 1 equals the small model alone", lambda: with_note(compare(sample(stitch(small, large, 1.0)),
                                                                                   alone["small"]), differ))

    def reference():
        log = []
        expected = sample(reference_model(small, large, "steps", EXACT_FRACTION, log))
        passed, detail = compare(sample(stitch(small, large, EXACT_FRACTION)), expected)
        return passed and "S" in log and "L" in log, f"{detail}; reference calls {''.join(log)}"

    recorder.check(f"f = {EXACT_FRACTION:g} equals the hand-routed reference", reference)
    recorder.check("offload_idle_model on equals off", lambda: compare(
        sample(stitch(small, large, EXACT_FRACTION, offload=True)), sample(stitch(small, large, EXACT_FRACTION))))
    hooked = []
    recorder.check("a scheduled LoRA hook on both prompts (CreateHookLora, ConditioningSetProperties)", lambda: (
        hooked.extend(hook(c, models.MINI_SD15_LARGE) for c in conds) or True, "LoRA for the large model's layout"))
    if not hooked:
        return
    recorder.check("hooked prompts: f = 0 equals the large model alone with them", lambda: compare(
        sample(stitch(small, large, 0.0), hooked), sample(large, hooked)))
    recorder.check("hooked prompts: f = 1 equals the small model alone with them", lambda: compare(
        sample(stitch(small, large, 1.0), hooked), sample(small, hooked)))
    recorder.check(f"hooked prompts: f = {EXACT_FRACTION:g}, offload on equals off", lambda: compare(
        sample(stitch(small, large, EXACT_FRACTION, offload=True), hooked),
        sample(stitch(small, large, EXACT_FRACTION), hooked)))


def with_note(result: tuple[bool, str], note: str) -> tuple[bool, str]:
    return result[0] and not note, result[1] + note


def run_node(node_id, **inputs) -> tuple:
    """Any node, V1 or V3, by its id with keyword inputs; its outputs as a tuple."""
    cls = node(node_id)
    if hasattr(cls, "GET_SCHEMA"):
        return tuple(cls.execute(**inputs).result)
    return tuple(getattr(cls(), cls.FUNCTION)(**inputs))


def hook(conditioning, spec):
    """``conditioning`` with a scheduled LoRA hook (CreateHookLora + ConditioningSetProperties), as users set one."""
    from tstitch_dev.models import ensure_lora

    hooks = run_node("CreateHookLora", lora_name=ensure_lora(spec, seed=8).name, strength_model=1.0,
                     strength_clip=1.0)[0]
    return run_node("ConditioningSetProperties", cond_NEW=conditioning, strength=1.0, set_cond_area="default",
                    hooks=hooks)[0]


def speed_and_memory(recorder: Recorder, sizes: Sizes, dynamic: bool, device, deadline: float | None,
                     wan: bool = False):
    """Each real-size pair: is_dynamic on its models, bench/measure.py's interleaved rounds, then one stitched
    sampling with offload off and on, its free VRAM at each handover and its peak; the Wan pair last (--wan)."""
    import gc

    import comfy.model_management as mm

    from .measure import CHAINED, LARGE, SMALL, STITCHED, Config, measure, warm_up
    from .report import build_table
    from .run import describe_model

    runs = [(name, size, sizes.steps, sizes.fractions, sizes.repeats) for name, size in sizes.speed]
    if wan:
        name, size, steps = sizes.wan
        runs.append((name, size, steps, (EXACT_FRACTION,), 1))
    speed, memory = [], []
    for name, size, steps, fractions, repeats in runs:
        skipped = over_budget(name, deadline, time.time())
        if skipped:
            speed.append({"pair": name, "skipped": skipped})
            continue
        def timed():
            title, workload, setting = set_up_pair(name, size, steps, device)
            recorder.check(f"{title}: models loaded " + ("dynamic" if dynamic else "not dynamic"),
                           lambda: expect_dynamic({"small": workload.small, "large": workload.large}, dynamic))
            warm_up(workload)
            configs = [Config(LARGE), Config(SMALL)] + [Config(k, f) for f in fractions for k in (STITCHED, CHAINED)]
            table = build_table(measure(configs, workload, repeats, device), list(fractions), steps)
            speed.append({"pair": name, "title": title, "setting": f"{setting}, {repeats} rounds",
                          "large": describe_model(workload.large), "small": describe_model(workload.small),
                          "table": _as_dict(table)})
            for offload in (False, True):
                memory.append({"pair": title, **handovers(workload, offload, device)})
            return True, "; ".join(f"f={r.fraction:g} speedup {r.speedup:.3f}x, ideal {r.ideal_speedup:.3f}x"
                                   for r in table.rows)

        recorder.check(f"{name}: timed, its memory measured", timed)
        mm.unload_all_models()
        gc.collect()
        mm.soft_empty_cache()
    return speed, memory


def over_budget(name: str, deadline: float | None, now: float) -> str | None:
    """Why the speed pair ``name`` is skipped at ``now``, or None: the budget keeps SPEED_RESERVE_S for the report;
    --wan's pair is outside it."""
    if deadline is None or name in WAN_PAIRS or now <= deadline - SPEED_RESERVE_S:
        return None
    return f"less than {SPEED_RESERVE_S} s of the {BUDGET_S} s budget was left"


def set_up_pair(name: str, size, steps: int, device):
    """(title, bench Workload, settings in words) of a speed pair: bench.run's pairs through their loaders in fp16
    (fp32 on the CPU); a Wan pair built on the device, loaded from memory, with Wan's shift 8."""
    import torch

    import nodes

    from .measure import Settings, Workload
    from .run import DIT_SAMPLING, load_model, random_conds

    dtype_name = "fp32" if device.type == "cpu" else "fp16"
    dtype = torch.float32 if device.type == "cpu" else torch.float16
    if name in WAN_PAIRS:
        small_spec, large_spec = WAN_PAIRS[name]
        large, small = (wan_model(spec, device, dtype) for spec in (large_spec, small_spec))
        generator = torch.Generator().manual_seed(0)  # UMT5-XXL embeddings' shape
        positive, negative = ([[torch.randn(1, 16, 4096, generator=generator), {}]] for _ in range(2))
        width, height, frames = size
        latent = run_node("EmptyHunyuanLatentVideo", width=width, height=height, length=frames, batch_size=1)[0]
        settings = Settings(steps, width, "euler", "simple", 5.0, 0)
        return ("Wan 2.1 1.3B -> 14B" if name == "wan-1.3b-14b" else "test-sized Wan pair",
                Workload(small, large, settings, positive, negative, latent),
                f"{width}x{height}x{frames} frames, {steps} steps euler/simple, shift 8, cfg 5, {dtype_name}")
    pair = speed_pair(name)
    sampling = DIT_SAMPLING if pair.is_dit else {"sampler": "euler", "scheduler": "normal", "cfg": 7.0}
    settings = Settings(steps, size, sampling["sampler"], sampling["scheduler"], sampling["cfg"], 0)
    large, small = load_model(pair.large, dtype), load_model(pair.small, dtype)
    positive, negative = random_conds("dit" if pair.is_dit else pair.large.family, 0)
    latent = nodes.EmptyLatentImage().generate(size, size, 1)[0]
    return (pair.title, Workload(small, large, settings, positive, negative, latent),
            f"{size}x{size}, {steps} steps {settings.sampler}/{settings.scheduler}, cfg {settings.cfg:g}, {dtype_name}")


# (small, large); tstitch_dev.models imports no torch, so it may come before comfy-aimdo
WAN_PAIRS = {"wan-1.3b-14b": (models.WAN_1_3B, models.WAN_14B),
             "tiny-wan": (models.TINY_WAN_SMALL, models.TINY_WAN_LARGE)}


def wan_model(spec, device, dtype):
    """``spec`` with seeded random weights made on ``device`` (no file: a 14B-sized one is 28 GB), through
    ComfyUI's diffusion-model loader from memory, with ModelSamplingSD3 shift 8 as Wan runs."""
    import comfy.sd
    from tstitch_dev.models import build_wan_state_dict

    model = comfy.sd.load_diffusion_model_state_dict(build_wan_state_dict(spec, device, dtype),
                                                     model_options={"dtype": dtype})
    return run_node("ModelSamplingSD3", model=model, shift=8.0)[0]


def _as_dict(table):
    from dataclasses import asdict

    return asdict(table)


def handovers(w, offload: bool, device) -> dict:
    """One stitched sampling at EXACT_FRACTION from nothing loaded: seconds, peak allocated bytes, the least free
    VRAM and the free VRAM at the first call and at each change of model (None on the CPU)."""
    import torch

    import comfy.model_management as mm

    from .measure import ksample, synchronize

    def free():
        return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None

    log = []

    def tagged(model, name):
        m = model.clone()

        def record(apply_model, args):
            log.append((name, free()))
            return apply_model(args["input"], args["timestep"], **args["c"])

        m.set_model_unet_function_wrapper(record)
        return m

    mm.unload_all_models()
    mm.soft_empty_cache()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    pair = stitch(tagged(w.small, "small"), tagged(w.large, "large"), EXACT_FRACTION, offload)
    synchronize(device)
    started = time.perf_counter()
    ksample(pair, w)
    synchronize(device)
    seconds = time.perf_counter() - started
    changes = [entry for i, entry in enumerate(log) if i == 0 or log[i - 1][0] != entry[0]]
    frees = [f for _, f in log if f is not None]
    return {"offload": offload, "seconds": seconds, "calls": "".join(name[0].upper() for name, _ in log),
            "handovers": changes, "least_free": min(frees) if frees else None,
            "peak_allocated": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None}


if __name__ == "__main__":
    sys.exit(main())
