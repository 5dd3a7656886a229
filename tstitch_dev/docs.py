"""What the frontend shows about the nodes besides the nodes themselves: locales, help-page pictures, registry art.

    python -m tstitch_dev.docs      rewrite locales/en/main.json, web/docs/assets/ and registry/ from the nodes

English strings come from the node schemas, so they cannot drift (a test compares); other languages are
written by hand in locales/<lang>/main.json with the same keys (a test checks the keys). The help pictures are
what the pack's Schedule Preview and Agreement Probe compute on real (test-sized) models, drawn by their own drawing
code at the node-help side panel's width (HELP_SIZE, text scaled by HELP_SCALE, legends shortened).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .comfy_env import PACK_NODE_IDS, boot_comfyui
from .host import PACK_ROOT

LOCALES = PACK_ROOT / "locales"
HELP_ASSETS = PACK_ROOT / "web" / "docs" / "assets"
REGISTRY_ART = PACK_ROOT / "registry"
HELP_LOCALES = ("en", "zh")  # each node's help page, web/docs/<node>/<locale>.md
# the help pages' picture: BK-SDM-Tiny-like then SD1.5-like, 40% of a 20-step normal schedule
HELP_PICTURE = dict(steps=20, scheduler="normal", denoise=1.0, small_fraction=0.4)


def node_strings(node_class) -> dict:
    """The frontend's ``nodeDefs`` entry for one V3 node: display name, description, inputs, outputs."""
    schema = node_class.define_schema()
    entry = {"display_name": schema.display_name, "description": schema.description, "inputs": {}, "outputs": {}}
    for item in schema.inputs:
        entry["inputs"][item.id] = {"name": item.display_name or item.id, "tooltip": item.tooltip or ""}
    for index, item in enumerate(schema.outputs):
        entry["outputs"][str(index)] = {"name": item.display_name or item.id or item.get_io_type(),
                                        "tooltip": item.tooltip or ""}
    return entry


def english_locale(node_classes: dict) -> dict:
    return {"nodeDefs": {node_id: node_strings(node_classes[node_id]) for node_id in PACK_NODE_IDS}}


# the help pages' pictures are shown about 280 pixels wide in the node-help side panel (frontend 1.49.6, measured):
# drawn 560 wide with text and margins 1.75 times the nodes' own plot, the smallest text (13 * 1.75 = 23 pixels)
# is about 11.5 pixels there
HELP_SIZE = (560, 480)
HELP_SCALE = 1.75
HELP_SHOWN_WIDTH = 280


def legible_schedule(stitched, names: list[str], steps: int = 20, scheduler: str = "normal", sigmas=None):
    """PIL image of the Schedule Preview's plot of ``stitched`` (what its nodes route, on its schedule or on
    ``sigmas``), drawn at HELP_SIZE for the help panel, with a short legend line per stage named by ``names``."""
    from tstitch_core import describe_stage_steps

    from .thumbnails import pack

    plan = pack("nodes._patching").get_plan(stitched)
    schedule = pack("nodes._schedule")
    if sigmas is None:
        sigmas, stages = schedule.stages_on_schedule(stitched, plan, steps, "euler", scheduler, 1.0)
        title = f"{len(stages)} steps, {scheduler}"
    else:
        sigmas = sigmas.tolist()
        stages = schedule.stage_of_each_step(plan, stitched.get_model_object("model_sampling"), sigmas)
        title = f"{len(stages)} steps, given sigmas"
    counts = [stages.count(index) for index in range(len(names))]
    legend = [f"{name}: {words}" for name, words in zip(names, describe_stage_steps(counts))]
    return pack("nodes._drawing").draw_schedule(sigmas, stages, legend, title, *HELP_SIZE, scale=HELP_SCALE)


def tiny_sd15_pair():
    import comfy.sd

    from .models import TINY_SD15_LARGE, TINY_SD15_SMALL, ensure_checkpoint

    return [comfy.sd.load_checkpoint_guess_config(str(ensure_checkpoint(spec)), output_vae=False,
                                                  output_clip=False)[0] for spec in (TINY_SD15_SMALL, TINY_SD15_LARGE)]


def schedule_picture(nodes):
    """T-Stitch Schedule Preview's plot for HELP_PICTURE, on the test-sized SD1.5 pair."""
    import torch

    small, large = tiny_sd15_pair()
    settings = dict(HELP_PICTURE)
    with torch.inference_mode():
        pair = nodes.NODE_CLASS_MAPPINGS["TStitchModelPair"].execute(small, large, settings.pop("small_fraction"),
                                                                     "steps").result[0]
        return legible_schedule(pair, ["small", "large"], settings["steps"], settings["scheduler"])


def probe_picture(nodes, diverge_after: int = 8, steps: int = 20):
    """PIL image of T-Stitch Agreement Probe's plot for a pair whose answer is known: the test-sized large model
    and a copy of it made to diverge (noise added to its output) from step ``diverge_after + 1`` on; drawn by the
    probe at HELP_SIZE (its drawing function given the help panel's size while it runs)."""
    import comfy.samplers
    import comfy.sd
    import torch
    from PIL import Image

    from tstitch_core.agreement import DEFAULT_MIN_AGREEMENT

    from .models import TINY_SD15_LARGE, ensure_checkpoint
    from .thumbnails import pack

    path = str(ensure_checkpoint(TINY_SD15_LARGE))
    large, clip = comfy.sd.load_checkpoint_guess_config(path, output_vae=False, output_clip=True)[:2]
    copy = comfy.sd.load_checkpoint_guess_config(path, output_vae=False, output_clip=False)[0]
    sigmas = comfy.samplers.KSampler(large, steps, "cpu", scheduler="karras").sigmas.tolist()
    below = (sigmas[diverge_after - 1] + sigmas[diverge_after]) / 2
    generator = torch.Generator().manual_seed(0)

    def diverging(apply_model, args):
        out = apply_model(args["input"], args["timestep"], **args["c"])
        sigma = float(args["timestep"].reshape(-1)[0])
        # noise on the predicted noise, scaled so that the denoised prediction moves about as much at every sigma
        return out + torch.randn(out.shape, generator=generator).to(out) / sigma if sigma < below else out

    copy.set_model_unet_function_wrapper(diverging)
    probe = pack("nodes.probe")
    drawn_by_node = probe.draw_agreement
    def legible(cosines, handovers, legend, min_agreement, title, **options):  # the node's own words, shortened
        return drawn_by_node(cosines, handovers, [line.split(" (")[0] for line in legend], min_agreement,
                             title.split(": ")[-1], width=HELP_SIZE[0], height=HELP_SIZE[1], scale=HELP_SCALE,
                             **{**options, "window_label": options.get("window_label", "").split(":")[0]})

    probe.draw_agreement = legible
    try:
        with torch.inference_mode():
            positive, negative = (nodes.CLIPTextEncode().encode(clip, text)[0] for text in ("a lighthouse", ""))
            latent = nodes.EmptyLatentImage().generate(64, 64, 1)[0]
            plot = nodes.NODE_CLASS_MAPPINGS["TStitchAgreementProbe"].execute(
                copy, large, 0, steps, 7.0, "dpmpp_2m", "karras", positive, negative, latent, 1.0,
                DEFAULT_MIN_AGREEMENT).result[0]
    finally:
        probe.draw_agreement = drawn_by_node
    return Image.fromarray((plot[0].numpy() * 255).round().astype("uint8"))


def stages_picture(nodes):
    """The Schedule Preview's plot for T-Stitch Stages large -> small -> large until "0.2, 0.7", 20 normal steps, on
    the test-sized SD1.5 pair (the large model one loaded model for stages 1 and 3)."""
    import torch

    small, large = tiny_sd15_pair()
    with torch.inference_mode():
        stages = nodes.NODE_CLASS_MAPPINGS["TStitchStages"].execute(model_1=large, model_2=small, model_3=large,
                                                                    until="0.2, 0.7", switch_by="steps").result[0]
        return legible_schedule(stages, ["large", "small", "large"])


def dit_picture(nodes):
    """The schedule DiT-S -> DiT-B -> DiT-XL at 40 : 40 : 20 runs (timestep rule, 50 DDIM steps), as the Schedule
    Preview routes it on test-sized DiTs loaded by the pack's DiT loader."""
    import folder_paths
    import torch

    from .models import MODEL_CACHE, TINY_DIT_B, TINY_DIT_S, TINY_DIT_XL, ensure_dit

    folder_paths.add_model_folder_path("diffusion_models", str(MODEL_CACHE))
    run = lambda node_id, **inputs: nodes.NODE_CLASS_MAPPINGS[node_id].execute(**inputs).result[0]
    with torch.inference_mode():
        s, b, xl = (run("TStitchDiTLoader", dit_name=ensure_dit(spec).name, weight_dtype="default")
                    for spec in (TINY_DIT_S, TINY_DIT_B, TINY_DIT_XL))
        inner = run("TStitchModelPair", small_model=s, large_model=b, small_fraction=0.4, switch_by="timestep")
        outer = run("TStitchModelPair", small_model=inner, large_model=xl, small_fraction=0.8, switch_by="timestep")
        return legible_schedule(outer, ["DiT-S", "DiT-B", "DiT-XL"], 50, "ddim_uniform")


def wan_picture(nodes):
    """Wan 2.2 A14B's experts 4 + 4: test-sized experts with shift 5, switched at t = 0.875, the 8 sigmas T-Stitch
    Stage Sigmas lays out for them (simple), as the Schedule Preview routes them."""
    import folder_paths
    import torch

    from .models import MODEL_CACHE, TINY_WAN_HIGH_NOISE, TINY_WAN_LOW_NOISE, ensure_diffusion_model

    folder_paths.add_model_folder_path("diffusion_models", str(MODEL_CACHE))
    run = lambda node_id, **inputs: nodes.NODE_CLASS_MAPPINGS[node_id].execute(**inputs).result[0]
    with torch.inference_mode():
        high, low = (nodes.UNETLoader().load_unet(ensure_diffusion_model(spec).name, "default")[0]
                     for spec in (TINY_WAN_HIGH_NOISE, TINY_WAN_LOW_NOISE))
        high, low = (nodes.NODE_CLASS_MAPPINGS["ModelSamplingSD3"]().patch(model, 5.0)[0] for model in (high, low))
        pair = run("TStitchModelPair", small_model=high, large_model=low, small_fraction=0.125, switch_by="timestep")
        sigmas = run("TStitchStageSigmas", scheduler="simple", steps_per_model="4, 4", denoise=1.0, model=pair)
        return legible_schedule(pair, ["high-noise", "low-noise"], sigmas=sigmas)


HELP_PICTURES = {"switch_steps.png": schedule_picture, "agreement_probe.png": probe_picture,
                 "dit_three_stage.png": dit_picture, "stages_large_small_large.png": stages_picture,
                 "wan22_experts_4_4.png": wan_picture}


def registry_art(picture):
    """(icon, banner) for the Comfy Registry, cut from the schedule picture: no stock art."""
    from PIL import Image

    width, height = picture.size
    bars = picture.crop((int(width * 0.08), int(height * 0.1), int(width * 0.97), int(height * 0.62)))
    icon = Image.new("RGB", (400, 400), picture.getpixel((2, 2)))
    icon.paste(bars.resize((360, 360), Image.LANCZOS), (20, 20))
    banner = Image.new("RGB", (1280, 320), picture.getpixel((2, 2)))
    banner.paste(bars.resize((1240, 280), Image.LANCZOS), (20, 20))
    return icon, banner


def write_all(workdir: Path) -> list[Path]:
    boot_comfyui(workdir, cpu=True)
    import nodes

    LOCALES.joinpath("en").mkdir(parents=True, exist_ok=True)
    locale = LOCALES / "en" / "main.json"
    locale.write_text(json.dumps(english_locale(nodes.NODE_CLASS_MAPPINGS), indent=2, ensure_ascii=False) + "\n")
    HELP_ASSETS.mkdir(parents=True, exist_ok=True)
    REGISTRY_ART.mkdir(parents=True, exist_ok=True)
    written = [locale]
    pictures = {name: draw(nodes) for name, draw in HELP_PICTURES.items()}
    for name, picture in pictures.items():
        written.append(HELP_ASSETS / name)
        picture.save(written[-1], optimize=True)
    # the registry's art is cut from the switch picture as the nodes draw it (768 x 432)
    small, large = tiny_sd15_pair()
    import torch

    with torch.inference_mode():
        settings = dict(HELP_PICTURE)
        pair = nodes.NODE_CLASS_MAPPINGS["TStitchModelPair"].execute(small, large, settings.pop("small_fraction"),
                                                                     "steps").result[0]
        plot = nodes.NODE_CLASS_MAPPINGS["TStitchSchedulePreview"].execute(model=pair, **settings).result[0]
    from PIL import Image

    picture = Image.fromarray((plot[0].numpy() * 255).round().astype("uint8"))
    for image, path in zip(registry_art(picture), (REGISTRY_ART / "icon.png", REGISTRY_ART / "banner.png")):
        image.save(path, optimize=True)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_all(Path(tempfile.mkdtemp(prefix="tstitch-docs-"))):
        print(f"wrote {path.relative_to(PACK_ROOT)}")
