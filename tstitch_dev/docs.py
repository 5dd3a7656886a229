"""What the frontend shows about the nodes besides the nodes themselves: locales, help-page pictures, registry art.

    python -m tstitch_dev.docs      rewrite locales/en/main.json, web/docs/assets/ and registry/ from the nodes

English strings come from the node schemas, so they cannot drift (a test compares); other languages are
written by hand in locales/<lang>/main.json with the same keys (a test checks the keys). The pictures are
drawn by the pack's own T-Stitch Schedule Preview on a real (test-sized) pair, so they show what it draws.
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


def schedule_picture(nodes, size: int = 768):
    """PIL image of T-Stitch Schedule Preview's plot for HELP_PICTURE, on the test-sized SD1.5 pair."""
    import comfy.sd
    import torch
    from PIL import Image

    from .models import TINY_SD15_LARGE, TINY_SD15_SMALL, ensure_checkpoint

    small, large = (comfy.sd.load_checkpoint_guess_config(str(ensure_checkpoint(spec)), output_vae=False,
                                                          output_clip=False)[0]
                    for spec in (TINY_SD15_SMALL, TINY_SD15_LARGE))
    pair_node, preview_node = (nodes.NODE_CLASS_MAPPINGS[n] for n in ("TStitchModelPair", "TStitchSchedulePreview"))
    settings = dict(HELP_PICTURE)
    with torch.inference_mode():
        pair = pair_node.execute(small, large, settings.pop("small_fraction"), "steps").result[0]
        plot = preview_node.execute(model=pair, **settings).result[0]
    image = Image.fromarray((plot[0].numpy() * 255).round().astype("uint8"))
    return image.resize((size, round(size * image.height / image.width)), Image.LANCZOS)


def probe_picture(nodes, diverge_after: int = 8, steps: int = 20):
    """PIL image of T-Stitch Agreement Probe's plot for a pair whose answer is known: the test-sized large model
    and a copy of it made to diverge (noise added to its output) from step ``diverge_after + 1`` on."""
    import comfy.samplers
    import comfy.sd
    import torch
    from PIL import Image

    from tstitch_core.agreement import DEFAULT_MIN_AGREEMENT

    from .models import TINY_SD15_LARGE, ensure_checkpoint

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
    with torch.inference_mode():
        positive, negative = (nodes.CLIPTextEncode().encode(clip, text)[0] for text in ("a lighthouse", ""))
        latent = nodes.EmptyLatentImage().generate(64, 64, 1)[0]
        plot = nodes.NODE_CLASS_MAPPINGS["TStitchAgreementProbe"].execute(
            copy, large, 0, steps, 7.0, "dpmpp_2m", "karras", positive, negative, latent, 1.0,
            DEFAULT_MIN_AGREEMENT).result[0]
    return Image.fromarray((plot[0].numpy() * 255).round().astype("uint8"))


def stages_picture(nodes, size: int = 768):
    """PIL image of T-Stitch Schedule Preview's plot for T-Stitch Stages large -> small -> large until "0.2, 0.7",
    20 normal steps, on the test-sized SD1.5 pair (the large model one loaded model for stages 1 and 3)."""
    import comfy.sd
    import torch
    from PIL import Image

    from .models import TINY_SD15_LARGE, TINY_SD15_SMALL, ensure_checkpoint

    small, large = (comfy.sd.load_checkpoint_guess_config(str(ensure_checkpoint(spec)), output_vae=False,
                                                          output_clip=False)[0]
                    for spec in (TINY_SD15_SMALL, TINY_SD15_LARGE))
    run = lambda node_id, **inputs: nodes.NODE_CLASS_MAPPINGS[node_id].execute(**inputs).result[0]
    with torch.inference_mode():
        stages = run("TStitchStages", model_1=large, model_2=small, model_3=large, until="0.2, 0.7",
                     switch_by="steps")
        plot = run("TStitchSchedulePreview", model=stages, steps=20, scheduler="normal", denoise=1.0)
    image = Image.fromarray((plot[0].numpy() * 255).round().astype("uint8"))
    return image.resize((size, round(size * image.height / image.width)), Image.LANCZOS)


def dit_picture(nodes, size: int = 768):
    """PIL image of the schedule DiT-S -> DiT-B -> DiT-XL at 40 : 40 : 20 runs (timestep rule, 50 DDIM steps),
    drawn by T-Stitch Schedule Preview on test-sized DiTs loaded by the pack's DiT loader."""
    import folder_paths
    import torch
    from PIL import Image

    from .models import MODEL_CACHE, TINY_DIT_B, TINY_DIT_S, TINY_DIT_XL, ensure_dit

    folder_paths.add_model_folder_path("diffusion_models", str(MODEL_CACHE))
    run = lambda node_id, **inputs: nodes.NODE_CLASS_MAPPINGS[node_id].execute(**inputs).result[0]
    with torch.inference_mode():
        s, b, xl = (run("TStitchDiTLoader", dit_name=ensure_dit(spec).name, weight_dtype="default")
                    for spec in (TINY_DIT_S, TINY_DIT_B, TINY_DIT_XL))
        inner = run("TStitchModelPair", small_model=s, large_model=b, small_fraction=0.4, switch_by="timestep")
        outer = run("TStitchModelPair", small_model=inner, large_model=xl, small_fraction=0.8, switch_by="timestep")
        plot = run("TStitchSchedulePreview", model=outer, steps=50, scheduler="ddim_uniform", denoise=1.0)
    image = Image.fromarray((plot[0].numpy() * 255).round().astype("uint8"))
    return image.resize((size, round(size * image.height / image.width)), Image.LANCZOS)


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
    picture = schedule_picture(nodes)
    written = [locale, HELP_ASSETS / "switch_steps.png", REGISTRY_ART / "icon.png", REGISTRY_ART / "banner.png"]
    picture.save(written[1], optimize=True)
    written.append(HELP_ASSETS / "agreement_probe.png")
    probe_picture(nodes).save(written[-1], optimize=True)
    written.append(HELP_ASSETS / "dit_three_stage.png")
    dit_picture(nodes).save(written[-1], optimize=True)
    written.append(HELP_ASSETS / "stages_large_small_large.png")
    stages_picture(nodes).save(written[-1], optimize=True)
    for image, path in zip(registry_art(picture), written[2:4]):
        image.save(path, optimize=True)
    return written


if __name__ == "__main__":
    for path in write_all(Path(tempfile.mkdtemp(prefix="tstitch-docs-"))):
        print(f"wrote {path.relative_to(PACK_ROOT)}")
