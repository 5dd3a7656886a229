"""The example workflows: their graphs, the model files they name, and how they are (re)built.

The JSON in example_workflows/ is what the ComfyUI frontend itself exports: ``python -m
tstitch_dev.examples`` starts a server, builds each graph in the frontend through LiteGraph,
exports it with the frontend's own Export command and screenshots it as the same-name .jpg
thumbnail the template browser shows.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .host import PACK_ROOT, find_comfyui
from . import models

EXAMPLES_DIR = PACK_ROOT / "example_workflows"

# Public file names the workflows load, by model folder, and how to build the random-weight file that
# stands in for each (checkpoints whose CLIP a workflow never uses are built without text encoders).
EXAMPLE_FILES = {
    ("checkpoints", "sd-v1-4.safetensors"): lambda: models.ensure_checkpoint(models.TINY_SD15_LARGE),
    ("checkpoints", "bk-sdm-small.safetensors"):
        lambda: models.ensure_checkpoint(models.TINY_SD15_MEDIUM, text_encoder_seed=None),
    ("checkpoints", "bk-sdm-tiny.safetensors"):
        lambda: models.ensure_checkpoint(models.TINY_SD15_SMALL, text_encoder_seed=None),
    ("checkpoints", "sd_xl_base_1.0.safetensors"): lambda: models.ensure_checkpoint(models.TINY_SDXL),
    ("checkpoints", "SSD-1B-A1111.safetensors"):
        lambda: models.ensure_checkpoint(models.TINY_SDXL_SMALL, text_encoder_seed=None),
    ("loras", "lcm-lora-sdxl.safetensors"): lambda: models.ensure_lora(models.TINY_SDXL, 2),
    ("loras", "lcm-lora-ssd-1b.safetensors"): lambda: models.ensure_lora(models.TINY_SDXL_SMALL, 1),
    ("diffusion_models", "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"):
        lambda: models.ensure_diffusion_model(models.TINY_WAN_HIGH_NOISE),
    ("diffusion_models", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"):
        lambda: models.ensure_diffusion_model(models.TINY_WAN_LOW_NOISE),
    ("diffusion_models", "wan2.1_t2v_1.3B_fp16.safetensors"):
        lambda: models.ensure_diffusion_model(models.TINY_WAN_SMALL),
    ("diffusion_models", "wan2.1_t2v_14B_fp16.safetensors"):
        lambda: models.ensure_diffusion_model(models.TINY_WAN_LARGE),
    ("vae", "wan_2.1_vae.safetensors"): models.ensure_wan_vae,
    # UMT5-XXL (5.7B parameters) is too big to build: the name is listed so the workflows load, and
    # the Wan workflows are not run by the tests (their models are, in tests/test_recipes.py)
    ("text_encoders", "umt5_xxl_fp8_e4m3fn_scaled.safetensors"): None,
}
# examples that need a file the tests cannot build (see above)
NOT_RUN_BY_TESTS = {"wan22_a14b_t2v_experts", "wan21_1.3b_to_14b"}


@dataclass
class Node:
    key: str
    type: str
    column: int  # nodes are laid out left to right by column, stacked in list order within one
    widgets: dict = field(default_factory=dict)
    title: str | None = None


@dataclass
class Example:
    name: str
    nodes: list[Node]
    links: list[tuple[str, int, str, str]]  # (from node, output index, to node, input name)


PROMPT = "a photograph of an astronaut riding a horse on the moon, detailed, sharp focus"
NEGATIVE = "blurry, low quality, watermark"


LOADERS, MIDDLE, SAMPLER, DECODE, SAVE = range(5)  # layout columns


def _loader(key, file_name, title):
    return Node(key, "CheckpointLoaderSimple", LOADERS, {"ckpt_name": file_name}, title)


def _prompts_and_output(filename_prefix):
    """Prompt, decode and save nodes every example shares."""
    return [
        Node("positive", "CLIPTextEncode", MIDDLE, {"text": PROMPT}, "Positive prompt"),
        Node("negative", "CLIPTextEncode", MIDDLE, {"text": NEGATIVE}, "Negative prompt"),
        Node("decode", "VAEDecode", DECODE),
        Node("save", "SaveImage", SAVE, {"filename_prefix": filename_prefix}),
    ]


def _empty_latent(size):
    return Node("latent", "EmptyLatentImage", MIDDLE, {"width": size, "height": size, "batch_size": 1})


def _ksampler(cfg=7.5, denoise=1.0):
    return Node("sampler", "KSampler", SAMPLER, {
        "seed": 0, "control_after_generate": "fixed", "steps": 25, "cfg": cfg, "sampler_name": "dpmpp_2m",
        "scheduler": "karras", "denoise": denoise})


def _pair(key, fraction, title):
    return Node(key, "TStitchModelPair", MIDDLE, {"small_fraction": fraction, "switch_by": "steps"}, title)


_PROMPT_LINKS = [("large", 1, "positive", "clip"), ("large", 1, "negative", "clip"),
                 ("positive", 0, "sampler", "positive"), ("negative", 0, "sampler", "negative"),
                 ("sampler", 0, "decode", "samples"), ("large", 2, "decode", "vae"), ("decode", 0, "save", "images")]
_PAIR_LINKS = [("small", 0, "pair", "small_model"), ("large", 0, "pair", "large_model"),
               ("pair", 0, "sampler", "model")]

def _wan_model(key, file_name, title):
    """A Wan diffusion model with its sigma shift, as ComfyUI's Wan workflows load one."""
    return [Node(key, "UNETLoader", LOADERS, {"unet_name": file_name, "weight_dtype": "default"}, title),
            Node(f"{key}_shift", "ModelSamplingSD3", LOADERS, {"shift": 8.0})]


def _shift_links(*keys):
    return [(key, 0, f"{key}_shift", "model") for key in keys]


def _wan_prompts_and_output(filename_prefix):
    return [
        Node("text_encoder", "CLIPLoader", LOADERS, {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                      "type": "wan"}),
        Node("vae", "VAELoader", LOADERS, {"vae_name": "wan_2.1_vae.safetensors"}),
        Node("positive", "CLIPTextEncode", MIDDLE, {"text": "a red fox running through fresh snow, slow motion"},
             "Positive prompt"),
        Node("negative", "CLIPTextEncode", MIDDLE, {"text": "blurry, static, low quality"}, "Negative prompt"),
        Node("latent", "EmptyHunyuanLatentVideo", MIDDLE, {"width": 832, "height": 480, "length": 33,
                                                           "batch_size": 1}),
        Node("decode", "VAEDecode", DECODE),
        Node("save", "SaveAnimatedWEBP", SAVE, {"filename_prefix": filename_prefix, "fps": 16.0, "lossless": False,
                                                "quality": 85, "method": "default"}),
    ]


_WAN_LINKS = [("text_encoder", 0, "positive", "clip"), ("text_encoder", 0, "negative", "clip"),
              ("positive", 0, "sampler", "positive"), ("negative", 0, "sampler", "negative"),
              ("latent", 0, "sampler", "latent_image"), ("sampler", 0, "decode", "samples"),
              ("vae", 0, "decode", "vae"), ("decode", 0, "save", "images")]

EXAMPLES = [
    Example(
        "sd15_bk-sdm-tiny_pair",
        [_loader("small", "bk-sdm-tiny.safetensors", "Small: BK-SDM-Tiny"),
         _loader("large", "sd-v1-4.safetensors", "Large: SD v1.4"),
         _pair("pair", 0.4, "T-Stitch Model Pair"), *_prompts_and_output("tstitch_sd15"), _empty_latent(512),
         _ksampler()],
        [*_PAIR_LINKS, ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
    ),
    Example(
        "sd15_tstitch_ksampler",
        [_loader("small", "bk-sdm-tiny.safetensors", "Small: BK-SDM-Tiny"),
         _loader("large", "sd-v1-4.safetensors", "Large: SD v1.4"),
         *_prompts_and_output("tstitch_ksampler"), _empty_latent(512),
         Node("sampler", "TStitchKSampler", SAMPLER, {
             "small_fraction": 0.4, "switch_by": "steps", "seed": 0, "control_after_generate": "fixed", "steps": 25,
             "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0})],
        [("small", 0, "sampler", "small_model"), ("large", 0, "sampler", "large_model"),
         ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
    ),
    Example(
        "sdxl_ssd-1b_pair",
        [_loader("small", "SSD-1B-A1111.safetensors", "Small: SSD-1B"),
         _loader("large", "sd_xl_base_1.0.safetensors", "Large: SDXL base 1.0"),
         _pair("pair", 0.4, "T-Stitch Model Pair"), *_prompts_and_output("tstitch_sdxl"), _empty_latent(1024),
         _ksampler(cfg=7.0)],
        [*_PAIR_LINKS, ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
    ),
    Example(
        "sd15_three_stage_bk-sdm",
        [_loader("tiny", "bk-sdm-tiny.safetensors", "Stage 1: BK-SDM-Tiny"),
         _loader("base", "bk-sdm-small.safetensors", "Stage 2: BK-SDM-Small"),
         _loader("large", "sd-v1-4.safetensors", "Stage 3: SD v1.4"),
         _pair("inner", 0.5, "Pair: stages 2-3 (50%)"), _pair("outer", 0.2, "Pair: stage 1 (20%)"),
         *_prompts_and_output("tstitch_three_stage"), _empty_latent(512), _ksampler()],
        [("base", 0, "inner", "small_model"), ("large", 0, "inner", "large_model"),
         ("tiny", 0, "outer", "small_model"), ("inner", 0, "outer", "large_model"), ("outer", 0, "sampler", "model"),
         ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
    ),
    Example(
        "sd15_img2img_pair",
        [_loader("small", "bk-sdm-tiny.safetensors", "Small: BK-SDM-Tiny"),
         _loader("large", "sd-v1-4.safetensors", "Large: SD v1.4"),
         Node("image", "LoadImage", LOADERS, {"image": "example.png"}),
         _pair("pair", 0.4, "T-Stitch Model Pair"), *_prompts_and_output("tstitch_img2img"),
         Node("scale", "ImageScale", MIDDLE, {"upscale_method": "lanczos", "width": 512, "height": 512,
                                               "crop": "center"}),
         Node("encode", "VAEEncode", MIDDLE), _ksampler(denoise=0.6)],
        [*_PAIR_LINKS, ("image", 0, "scale", "image"), ("scale", 0, "encode", "pixels"),
         ("large", 2, "encode", "vae"), ("encode", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
    ),
    Example(
        "sd15_guider_per_model_cfg",
        [_loader("small", "bk-sdm-tiny.safetensors", "Small: BK-SDM-Tiny"),
         _loader("large", "sd-v1-4.safetensors", "Large: SD v1.4"),
         *_prompts_and_output("tstitch_guider")[:2], _empty_latent(512),
         Node("guider", "TStitchGuider", SAMPLER, {"small_fraction": 0.4, "switch_by": "steps", "small_cfg": 4.0,
                                                  "large_cfg": 7.5}, "T-Stitch Guider: small model cfg 4"),
         Node("noise", "RandomNoise", MIDDLE, {"noise_seed": 0, "control_after_generate": "fixed"}),
         Node("select", "KSamplerSelect", MIDDLE, {"sampler_name": "dpmpp_2m"}),
         Node("schedule", "BasicScheduler", MIDDLE, {"scheduler": "karras", "steps": 25, "denoise": 1.0}),
         Node("sampler", "SamplerCustomAdvanced", DECODE),
         Node("decode", "VAEDecode", DECODE), Node("save", "SaveImage", SAVE, {"filename_prefix": "tstitch_guider"})],
        [("small", 0, "guider", "small_model"), ("large", 0, "guider", "large_model"),
         ("positive", 0, "guider", "small_positive"), ("negative", 0, "guider", "small_negative"),
         ("positive", 0, "guider", "large_positive"), ("negative", 0, "guider", "large_negative"),
         ("large", 1, "positive", "clip"), ("large", 1, "negative", "clip"), ("large", 0, "schedule", "model"),
         ("noise", 0, "sampler", "noise"), ("guider", 0, "sampler", "guider"), ("select", 0, "sampler", "sampler"),
         ("schedule", 0, "sampler", "sigmas"), ("latent", 0, "sampler", "latent_image"),
         ("sampler", 0, "decode", "samples"), ("large", 2, "decode", "vae"), ("decode", 0, "save", "images")],
    ),
    Example(
        "sd15_schedule_preview",
        [_loader("small", "bk-sdm-tiny.safetensors", "Small: BK-SDM-Tiny"),
         _loader("large", "sd-v1-4.safetensors", "Large: SD v1.4"),
         _pair("pair", 0.4, "T-Stitch Model Pair"),
         Node("preview", "TStitchSchedulePreview", SAMPLER, {"steps": 25, "scheduler": "karras", "denoise": 1.0})],
        [("small", 0, "pair", "small_model"), ("large", 0, "pair", "large_model"), ("pair", 0, "preview", "model")],
    ),
    Example(
        "sd15_fraction_sweep",
        [_loader("small", "bk-sdm-tiny.safetensors", "Small: BK-SDM-Tiny"),
         _loader("large", "sd-v1-4.safetensors", "Large: SD v1.4"),
         *_prompts_and_output("tstitch_sweep")[:2], _empty_latent(512),
         Node("sweep", "TStitchFractionSweep", SAMPLER, {
             "fractions": "0, 0.2, 0.4, 0.6, 0.8, 1", "switch_by": "steps", "seed": 0,
             "control_after_generate": "fixed", "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m",
             "scheduler": "karras", "denoise": 1.0}),
         Node("save", "SaveImage", DECODE, {"filename_prefix": "tstitch_sweep"}, "Save the grid")],
        [("small", 0, "sweep", "small_model"), ("large", 0, "sweep", "large_model"), ("large", 2, "sweep", "vae"),
         ("large", 1, "positive", "clip"), ("large", 1, "negative", "clip"), ("positive", 0, "sweep", "positive"),
         ("negative", 0, "sweep", "negative"), ("latent", 0, "sweep", "latent_image"), ("sweep", 1, "save", "images")],
    ),
    Example(
        "sdxl_ssd-1b_lcm_lora",
        [_loader("small_ckpt", "SSD-1B-A1111.safetensors", "Small: SSD-1B"),
         Node("small_lora", "LoraLoaderModelOnly", LOADERS, {"lora_name": "lcm-lora-ssd-1b.safetensors",
                                                             "strength_model": 1.0}, "LCM LoRA for SSD-1B"),
         Node("small_lcm", "ModelSamplingDiscrete", LOADERS, {"sampling": "lcm", "zsnr": False}),
         _loader("large", "sd_xl_base_1.0.safetensors", "Large: SDXL base 1.0"),
         Node("large_lora", "LoraLoaderModelOnly", LOADERS, {"lora_name": "lcm-lora-sdxl.safetensors",
                                                             "strength_model": 1.0}, "LCM LoRA for SDXL"),
         Node("large_lcm", "ModelSamplingDiscrete", LOADERS, {"sampling": "lcm", "zsnr": False}),
         _pair("pair", 0.5, "T-Stitch Model Pair"), *_prompts_and_output("tstitch_lcm"), _empty_latent(1024),
         Node("sampler", "KSampler", SAMPLER, {"seed": 0, "control_after_generate": "fixed", "steps": 6,
                                                "cfg": 1.5, "sampler_name": "lcm", "scheduler": "sgm_uniform",
                                                "denoise": 1.0})],
        [("small_ckpt", 0, "small_lora", "model"), ("small_lora", 0, "small_lcm", "model"),
         ("large", 0, "large_lora", "model"), ("large_lora", 0, "large_lcm", "model"),
         ("small_lcm", 0, "pair", "small_model"), ("large_lcm", 0, "pair", "large_model"),
         ("pair", 0, "sampler", "model"), ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
    ),
    Example(
        "wan22_a14b_t2v_experts",
        [*_wan_model("high", "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "High-noise expert"),
         *_wan_model("low", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "Low-noise expert"),
         Node("pair", "TStitchModelPair", MIDDLE, {"small_fraction": 0.125, "switch_by": "timestep"},
              "Experts: switch at t = 0.875"),
         *_wan_prompts_and_output("tstitch_wan22"),
         Node("sampler", "KSampler", SAMPLER, {"seed": 0, "control_after_generate": "fixed", "steps": 20, "cfg": 3.5,
                                                "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0})],
        [*_shift_links("high", "low"), ("high_shift", 0, "pair", "small_model"),
         ("low_shift", 0, "pair", "large_model"), ("pair", 0, "sampler", "model"), *_WAN_LINKS],
    ),
    Example(
        "wan21_1.3b_to_14b",
        [*_wan_model("small", "wan2.1_t2v_1.3B_fp16.safetensors", "Small: Wan 2.1 1.3B"),
         *_wan_model("large", "wan2.1_t2v_14B_fp16.safetensors", "Large: Wan 2.1 14B"),
         _pair("pair", 0.4, "T-Stitch Model Pair"), *_wan_prompts_and_output("tstitch_wan21"),
         Node("sampler", "KSampler", SAMPLER, {"seed": 0, "control_after_generate": "fixed", "steps": 30, "cfg": 6.0,
                                                "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0})],
        [*_shift_links("small", "large"), ("small_shift", 0, "pair", "small_model"),
         ("large_shift", 0, "pair", "large_model"), ("pair", 0, "sampler", "model"), *_WAN_LINKS],
    ),
]

# Builds one example in the page's graph through LiteGraph, as a user dragging nodes would.
_BUILD_JS = """async (example) => {
  const graph = window.app.graph;
  graph.clear();
  const nodes = {};
  const columns = [];
  for (const spec of example.nodes) {
    const node = LiteGraph.createNode(spec.type);
    if (!node) throw new Error(`unknown node type ${spec.type}`);
    if (spec.title) node.title = spec.title;
    graph.add(node);
    (columns[spec.column] ??= []).push(node);
    for (const [name, value] of Object.entries(spec.widgets)) {
      const widget = node.widgets.find((w) => w.name === name);
      if (!widget) throw new Error(`${spec.type} has no widget ${name}`);
      widget.value = value;
    }
    nodes[spec.key] = node;
  }
  for (const [from, output, to, input] of example.links) {
    const slot = nodes[to].findInputSlot(input);
    if (slot < 0) throw new Error(`${nodes[to].type} has no input ${input}`);
    if (!nodes[from].connect(output, nodes[to], slot)) throw new Error(`cannot link ${from} to ${to}.${input}`);
  }
  // columns left to right, 80 px apart; nodes stacked within a column, 60 px apart
  let x = 0;
  for (const column of columns) {
    let y = 0;
    for (const node of column ?? []) {
      node.pos = [x, y];
      y += node.size[1] + LiteGraph.NODE_TITLE_HEIGHT + 60;
    }
    x += Math.max(...(column ?? []).map((n) => n.size[0])) + 80;
  }
  graph.setDirtyCanvas(true, true);
}"""


def build_in_frontend(page, example: Example) -> None:
    page.evaluate(_BUILD_JS, {"nodes": [vars(n) for n in example.nodes], "links": example.links})


# Runs the frontend's Export command and returns the text of the file it hands the browser. The file
# is taken as the Blob Export passes to URL.createObjectURL and not downloaded: Chromium stops
# honouring a page's scripted downloads after ten, and the tests export every example from one page.
_EXPORT_JS = """async () => {
  await window.app.extensionManager.setting.set('Comfy.PromptFilename', false);
  const createObjectURL = URL.createObjectURL, click = HTMLAnchorElement.prototype.click;
  let exported = null;
  URL.createObjectURL = (blob) => { exported = blob; return createObjectURL.call(URL, blob); };
  HTMLAnchorElement.prototype.click = function () { if (!this.download) click.call(this); };
  try {
    await window.app.extensionManager.command.execute('Comfy.ExportWorkflow');
  } finally {
    URL.createObjectURL = createObjectURL;
    HTMLAnchorElement.prototype.click = click;
  }
  if (!exported) throw new Error('Comfy.ExportWorkflow wrote no file');
  return await exported.text();
}"""


def export_from_frontend(page) -> dict:
    """The current graph as the frontend's Export command writes it."""
    return json.loads(page.evaluate(_EXPORT_JS))


def screenshot_graph(page, path: Path) -> None:
    """The graph alone, fitted to the view: the thumbnail the template browser shows."""
    page.evaluate("""async () => {
      const settings = window.app.extensionManager.setting;
      await settings.set('Comfy.Minimap.Visible', false);
      window.app.canvas.show_info = false;
      window.app.extensionManager.command.execute('Comfy.Canvas.FitView');
    }""")
    page.wait_for_timeout(500)
    page.screenshot(path=str(path), type="jpeg", quality=85)


def link_example_models(base: Path) -> None:
    """The random-weight stand-ins under the public file names, and ComfyUI's example.png as input."""
    import shutil

    from .server import link_model

    for (folder, name), build in EXAMPLE_FILES.items():
        if build is None:
            (base / "models" / folder).mkdir(parents=True, exist_ok=True)
            (base / "models" / folder / name).touch()
        else:
            link_model(base, folder, name, build())
    (base / "input").mkdir(parents=True, exist_ok=True)
    shutil.copy(find_comfyui() / "input" / "example.png", base / "input" / "example.png")


def main() -> int:
    from .browser import open_frontend
    from .comfy_env import use_host
    from .server import ComfyServer

    use_host(cpu=True)  # the stand-in models are built with the host's model classes
    EXAMPLES_DIR.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="tstitch-examples-"))
    link_example_models(base)
    with ComfyServer(base) as server, open_frontend(server, width=1400, height=900) as page:
        page.evaluate("() => window.app.extensionManager.command.execute('Workspace.ToggleFocusMode')")
        for example in EXAMPLES:
            build_in_frontend(page, example)
            workflow = export_from_frontend(page)
            (EXAMPLES_DIR / f"{example.name}.json").write_text(json.dumps(workflow, indent=2) + "\n")
            screenshot_graph(page, EXAMPLES_DIR / f"{example.name}.jpg")
            print(f"wrote {example.name}.json and .jpg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
