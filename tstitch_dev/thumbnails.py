"""The example thumbnails: who runs which step of each example, drawn from its committed JSON.

    python -m tstitch_dev.thumbnails [NAME ...]    redraw example_workflows/<title>.jpg from <title>.json

Each thumbnail is the template browser's picture of an example (Templates > Extensions > comfyui-tstitch): a strip of
one bar per step, coloured by the model that runs it, each model's step count written, and a legend naming the models
as the example's loaders are titled. The steps are routed by the pack's own code (tstitch_core's switch rules and
the Schedule Preview's stage_of_each_step) on the sigmas the example's sampler or scheduler node gives, with the model
sampling ComfyUI builds for the example's model family (and any shift node in its graph), and the strip is drawn by
the pack's own drawing code (nodes/_drawing.py). Nothing is sampled: no picture is a result of random weights.

Each picture carries what it shows (a JSON comment in the JPEG): the test draws it again from the committed JSON and
compares both the description and the pixels.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .comfy_env import boot_comfyui
from .examples import EXAMPLES, example_path

JPEG_QUALITY = 95  # with full-resolution colour (subsampling 0): sharp text on coloured bars
UI_ONLY = {"MarkdownNote", "Note", "PrimitiveNode", "Reroute"}

# each model file the examples load: (its family's ComfyUI model config, its model type), which give the model
# sampling ComfyUI builds for it (the sigmas a scheduler lays out, and the timestep of each)
FAMILY_OF_FILE = {
    "sd-v1-4.ckpt": ("SD15", "EPS"), "bk-sdm-small.safetensors": ("SD15", "EPS"),
    "bk-sdm-tiny.safetensors": ("SD15", "EPS"),
    # BK-SDM's published diffusers UNets, through Load BK-SDM UNet (T-Stitch)
    "bk-sdm-tiny/unet/diffusion_pytorch_model.safetensors": ("SD15", "EPS"),
    "bk-sdm-small/unet/diffusion_pytorch_model.safetensors": ("SD15", "EPS"),
    "sd_xl_base_1.0.safetensors": ("SDXL", "EPS"), "SSD-1B-A1111.safetensors": ("SDXL", "EPS"),
    "dit_s_256.pt": ("DiTImageNet", "EPS"), "dit_b_256.pt": ("DiTImageNet", "EPS"),
    "DiT-XL-2-256x256.pt": ("DiTImageNet", "EPS"),
    "flux.1-lite-8B.safetensors": ("Flux", "FLUX"), "flux1-dev.safetensors": ("Flux", "FLUX"),
    "sd3.5_medium.safetensors": ("SD3", "FLOW"), "sd3.5_large_fp8_scaled.safetensors": ("SD3", "FLOW"),
    "ltxv-2b-0.9.8-distilled.safetensors": ("LTXV", "FLUX"), "ltxv-13b-0.9.8-dev.safetensors": ("LTXV", "FLUX"),
    "flux-2-klein-base-4b.safetensors": ("Flux2", "FLUX"), "flux2_dev_fp8mixed.safetensors": ("Flux2", "FLUX"),
}
FAMILY_OF_FILE.update({name: ("WAN21_T2V", "FLOW") for name in (
    "wan2.1_t2v_1.3B_fp16.safetensors", "wan2.1_t2v_14B_fp16.safetensors",
    "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors")})
LOADERS = {"CheckpointLoaderSimple": "ckpt_name", "UNETLoader": "unet_name", "TStitchDiTLoader": "dit_name",
           "TStitchBKSDMLoader": "unet_name"}
PASS_MODEL = {"LoraLoaderModelOnly"}  # model in, model out: the model sampling unchanged
PAIRS = {"TStitchModelPair", "TStitchGuider", "TStitchKSampler", "TStitchFractionSweep", "TStitchAgreementProbe"}


def pack(module: str):
    """One of the pack's own modules (``nodes._drawing``), as ComfyUI loaded it (named by the path it loaded from)."""
    import nodes

    root = nodes.NODE_CLASS_MAPPINGS["TStitchModelPair"].__module__.rsplit(".nodes.", 1)[0]
    return sys.modules[f"{root}.{module}"]


@dataclass
class Stitch:
    """Models in trajectory order (the last the large one), the switch rule of each but the last, and the model
    sampling the pack reads the switches with (the large model's)."""

    models: list[str]
    rules: list
    model_sampling: object


@dataclass
class Picture:
    """What a thumbnail shows: its title, a strip per row (label, stage of each step; -1: not decided before the
    run), one legend line per model."""

    title: str
    rows: list[tuple[str, list[int]]]
    legend: list[str]

    def describe(self) -> str:
        return json.dumps({"title": self.title, "rows": self.rows, "legend": self.legend}, separators=(",", ":"))


class Graph:
    """A UI-format workflow, each node's widget values by name (as the host's node definitions name them)."""

    def __init__(self, workflow: dict, node_classes: dict):
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links = {link[0]: (link[1], link[2]) for link in workflow["links"]}  # link id: (source node, slot)
        self.node_classes = node_classes

    def widgets(self, node: dict) -> dict:
        return widget_values(node, self.node_classes)

    def of_type(self, *types) -> list[dict]:
        return [node for node in self.nodes.values() if node["type"] in types]

    def source(self, node: dict, input_name: str) -> dict | None:
        """The node that feeds ``node``'s input ``input_name``, or None."""
        for slot in node.get("inputs", []):
            if slot["name"] == input_name and slot.get("link") is not None:
                return self.nodes[self.links[slot["link"]][0]]
        return None

    def value(self, node: dict, name: str):
        return self.widgets(node)[name]


def widget_values(node: dict, node_classes: dict) -> dict:
    """{widget name: value} of ``node``, its widgets in the order the frontend saves them (a seed's control after it)."""
    if node["type"] in UI_ONLY:
        return {}
    inputs = node_classes[node["type"]].INPUT_TYPES()
    names = []
    for group in ("required", "optional"):
        for name, spec in inputs.get(group, {}).items():
            if isinstance(spec[0], list) or spec[0] in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                names.append(name)
                if len(spec) > 1 and spec[1].get("control_after_generate"):
                    names.append("control_after_generate")
    values = node.get("widgets_values") or []
    if len(values) != len(names) and not (len(values) < len(names) and all(
            name in inputs.get("optional", {}) for name in names[len(values):])):
        raise ValueError(f"{node['type']} (node {node['id']}) saves {len(values)} widget values, its definition "
                         f"has {names}: the thumbnail can't tell which is which")
    return dict(zip(names, values))


def model_sampling_of(family: tuple[str, str]):
    import comfy.model_base
    import comfy.supported_models

    config_name, model_type = family
    config = pack("nodes._dit").DiTImageNet if config_name == "DiTImageNet" else getattr(comfy.supported_models,
                                                                                         config_name)
    # the model sampling reads only its config's sampling_settings
    return comfy.model_base.model_sampling(config, getattr(comfy.model_base.ModelType, model_type))


def model_name(title: str) -> str:
    """A loader's title as a model's name: "Small: BK-SDM-Tiny" and "Stage 1: DiT-S/2" give "BK-SDM-Tiny" and
    "DiT-S/2"; "(base)" and the like dropped, for width."""
    return re.sub(r"\s*\([^)]*\)", "", re.sub(r"^(Small|Large|Stage \d+):\s*", "", title)).strip()


def stitch_of(graph: Graph, node: dict) -> Stitch:
    """The models a MODEL output stitches, routed as the pack's nodes route them (a nested pair's stages: the
    small side's, then the large side's)."""
    from tstitch_core import SwitchRule
    from tstitch_core.stages import build_stage_rules, parse_until

    kind = node["type"]
    if kind in LOADERS:
        file = graph.value(node, LOADERS[kind])
        if file not in FAMILY_OF_FILE:
            raise ValueError(f"{file}: add its family to FAMILY_OF_FILE")
        return Stitch([model_name(node.get("title") or file)], [], model_sampling_of(FAMILY_OF_FILE[file]))
    if kind in PASS_MODEL:
        return stitch_of(graph, graph.source(node, "model"))
    if kind in ("ModelSamplingSD3", "ModelSamplingDiscrete"):
        inner = stitch_of(graph, graph.source(node, "model"))
        return Stitch(inner.models, inner.rules, patched_model_sampling(kind, graph.widgets(node)))
    if kind in PAIRS:
        small, large = (stitch_of(graph, graph.source(node, name)) for name in ("small_model", "large_model"))
        rule = SwitchRule(graph.value(node, "small_fraction"), graph.value(node, "switch_by"))
        return Stitch(small.models + large.models, small.rules + [rule] + large.rules, large.model_sampling)
    if kind == "TStitchStages":
        models = [stitch_of(graph, source) for index in range(1, 9)
                  if (source := graph.source(node, f"model_{index}")) is not None]
        rules = build_stage_rules(parse_until(graph.value(node, "until"), len(models)), graph.value(node, "switch_by"))
        return Stitch([name for model in models for name in model.models], rules, models[-1].model_sampling)
    if kind == "CFGGuider":
        return stitch_of(graph, graph.source(node, "model"))
    raise ValueError(f"the thumbnail can't follow a model through {kind}")


def patched_model_sampling(kind: str, widgets: dict):
    """The model sampling ModelSamplingSD3 (a shift) or ModelSamplingDiscrete (eps or lcm) gives a model."""
    import comfy.model_sampling

    if kind == "ModelSamplingSD3":
        class Shifted(comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST):
            pass
        sampling = Shifted(None)
        sampling.set_parameters(shift=widgets["shift"], multiplier=1000)
        return sampling
    from comfy_extras.nodes_model_advanced import LCM, ModelSamplingDiscreteDistilled

    bases = {"eps": (comfy.model_sampling.ModelSamplingDiscrete, comfy.model_sampling.EPS),
             "lcm": (ModelSamplingDiscreteDistilled, LCM)}[widgets["sampling"]]
    return type("Patched", bases, {})(None, zsnr=widgets["zsnr"])


def run_node(node_type: str, **inputs):
    """The first output of a ComfyUI node run here (V1 or V3)."""
    import nodes

    node_class = nodes.NODE_CLASS_MAPPINGS[node_type]
    if hasattr(node_class, "FUNCTION"):
        return getattr(node_class(), node_class.FUNCTION)(**inputs)[0]
    return node_class.execute(**inputs).result[0]


def ksampler_sigmas(model_sampling, steps: int, scheduler: str, sampler_name: str | None, denoise: float) -> list:
    """The sigmas KSampler (or BasicScheduler, without a sampler) runs: the last ``steps`` of steps / denoise."""
    from .families import ksampler_sigmas as full_schedule

    total = steps if denoise >= 0.9999 else int(steps / denoise)
    return full_schedule(model_sampling, scheduler, total, sampler_name)[-(steps + 1):].tolist()


def schedule_sigmas(graph: Graph, node: dict, stitch: Stitch) -> tuple[list | None, list[int] | None]:
    """(sigmas, stage of each step where the node fixes it) of a sigmas output: Stage Sigmas gives each model its
    count of steps, a scheduler its sigmas."""
    values = graph.widgets(node)
    kind = node["type"]
    if kind == "TStitchStageSigmas":
        from tstitch_core import parse_step_counts

        counts = parse_step_counts(values["steps_per_model"], len(stitch.models))
        return None, [stage for stage, count in enumerate(counts) for _ in range(count)]
    if kind == "BasicScheduler":
        return ksampler_sigmas(stitch.model_sampling, values["steps"], values["scheduler"], None,
                               values["denoise"]), None
    if kind == "TStitchDiTScheduler":
        return pack("nodes._dit").dit_sigmas(stitch.model_sampling, values["steps"]).tolist(), None
    if kind == "Flux2Scheduler":
        return run_node(kind, **values).tolist(), None
    if kind == "LTXVScheduler":
        latent = graph.source(node, "latent")
        made = run_node(latent["type"], **graph.widgets(latent)) if latent is not None else None
        return run_node(kind, **values, latent=made).tolist(), None
    raise ValueError(f"the thumbnail can't read sigmas from {kind}")


def route(stitch: Stitch, sigmas: list) -> list[int]:
    """The stage of each step, as the Schedule Preview routes it."""
    return pack("nodes._schedule").stage_of_each_step(SimpleNamespace(rules=stitch.rules), stitch.model_sampling,
                                                      sigmas)


def legend_lines(models: list[str], stages: list[int]) -> tuple[list[str], list[int]]:
    """(a line per distinct model, each step's colour index): a model run in two stages (large, small, large) is one
    model in one colour, the large model (the last stage's) last, in the large model's colour."""
    distinct = list(dict.fromkeys(models))
    order = [name for name in distinct if name != models[-1]] + [models[-1]]
    colour = [order.index(models[stage]) for stage in stages]
    lines = []
    for index, name in enumerate(order):
        runs = [count for stage, _, count in pack("nodes._drawing")._runs(stages) if order.index(models[stage]) == index]
        share = 100 * sum(runs) / len(stages)
        counts = " + ".join(str(count) for count in runs) or "0"
        lines.append(f"{name}: {counts} step{'s' if sum(runs) != 1 else ''} ({share:.0f}%)")
    return lines, colour


SWITCH_WORDS = {"steps": "by step count", "timestep": "by timestep"}


def picture_of(workflow: dict, node_classes: dict) -> Picture:
    """What the thumbnail of ``workflow`` (UI format) shows."""
    graph = Graph(workflow, node_classes)
    sweeps, probes = graph.of_type("TStitchFractionSweep"), graph.of_type("TStitchAgreementProbe")
    if sweeps:
        return sweep_picture(graph, sweeps[0])
    if probes:
        return probe_picture(graph, probes[0])
    runners = graph.of_type("TStitchSchedulePreview", "TStitchKSampler", "KSampler", "SamplerCustom",
                            "SamplerCustomAdvanced")
    if len(runners) != 1:
        raise ValueError(f"the thumbnail expects one sampler or preview, found {[n['type'] for n in runners]}")
    (runner,) = runners
    kind, values = runner["type"], graph.widgets(runner)
    if kind == "TStitchKSampler":
        stitch = stitch_of(graph, runner)
    elif kind == "SamplerCustomAdvanced":
        stitch = stitch_of(graph, graph.source(runner, "guider"))
    else:
        stitch = stitch_of(graph, graph.source(runner, "model"))
    if kind in ("SamplerCustom", "SamplerCustomAdvanced"):
        sigmas, stages = schedule_sigmas(graph, graph.source(runner, "sigmas"), stitch)
        denoise = 1.0
    else:
        denoise = values["denoise"]
        sigmas, stages = ksampler_sigmas(stitch.model_sampling, values["steps"], values["scheduler"],
                                         values.get("sampler_name", "euler"), denoise), None
    if stages is None:
        stages = route(stitch, sigmas)
    lines, colours = legend_lines(stitch.models, stages)
    if graph.source(runner, "sigmas") is not None and graph.source(runner, "sigmas")["type"] == "TStitchStageSigmas":
        title = " + ".join(str(count) for _, _, count in pack("nodes._drawing")._runs(stages)) + " steps, fixed"
    elif denoise < 1:
        title = f"{len(stages)} steps (denoise {denoise:g})"
    else:
        switch = {rule.switch_by for rule in stitch.rules}
        title = f"{len(stages)} steps, {SWITCH_WORDS[switch.pop()] if len(switch) == 1 else 'mixed'}"
    return Picture(title, [("", colours)], lines)


def sweep_picture(graph: Graph, sweep: dict) -> Picture:
    """The Fraction Sweep's grid idea: a strip per fraction it samples."""
    from tstitch_core import SwitchRule, parse_fractions

    values = graph.widgets(sweep)
    small, large = (stitch_of(graph, graph.source(sweep, name)) for name in ("small_model", "large_model"))
    sigmas = ksampler_sigmas(large.model_sampling, values["steps"], values["scheduler"], values["sampler_name"],
                             values["denoise"])
    rows = []
    for fraction in parse_fractions(values["fractions"]):
        stitch = Stitch(small.models + large.models, [SwitchRule(fraction, values["switch_by"])], large.model_sampling)
        rows.append((f"{fraction:g}", route(stitch, sigmas)))
    legend = [f"{small.models[0]}: first", f"{large.models[0]}: the rest"]
    return Picture(f"{len(rows)} fractions, {len(sigmas) - 1} steps", rows, legend)


def probe_picture(graph: Graph, probe: dict) -> Picture:
    """The probe's example: every step measured (the split is the probe's answer, not known before it runs)."""
    values = graph.widgets(probe)
    small, large = (stitch_of(graph, graph.source(probe, name)) for name in ("small_model", "large_model"))
    steps = len(ksampler_sigmas(large.model_sampling, values["steps"], values["scheduler"], values["sampler_name"],
                                values["denoise"])) - 1
    legend = [f"{small.models[0]}: where it agrees", f"{large.models[0]}: the rest"]
    return Picture(f"{steps} steps: the probe splits them", [("", [-1] * steps)], legend)


def draw(picture: Picture):
    """The thumbnail, drawn by the pack's own drawing code."""
    return pack("nodes._drawing").draw_step_strips(picture.rows, picture.legend, picture.title)


def save(picture: Picture, path: Path) -> None:
    draw(picture).save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0, comment=picture.describe().encode())


def described(path: Path) -> str:
    """What a committed thumbnail says it shows (its JPEG comment), or "" where it says nothing."""
    from PIL import Image

    with Image.open(path) as image:
        return (image.info.get("comment") or b"").decode()


def write_thumbnails(names: list[str], node_classes: dict) -> list[Path]:
    written = []
    for example in [example for example in EXAMPLES if not names or example.name in names]:
        picture = picture_of(json.loads(example_path(example.name).read_text()), node_classes)
        save(picture, path := example_path(example.name, ".jpg"))
        written.append(path)
    return written


def main(names: list[str]) -> int:
    boot_comfyui(Path(tempfile.mkdtemp(prefix="tstitch-thumbnails-")), cpu=True)
    import nodes

    for path in write_thumbnails(names, nodes.NODE_CLASS_MAPPINGS):
        print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
