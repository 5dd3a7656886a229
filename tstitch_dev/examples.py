"""The example workflows: their graphs, the model files they name, and how they are (re)built.

The JSON in example_workflows/ is what the ComfyUI frontend itself exports: ``python -m
tstitch_dev.examples`` starts a server, builds each graph in the frontend through LiteGraph,
exports it with the frontend's own Export command, and draws its thumbnail, the same-name .jpg the
template browser shows, from the exported file (tstitch_dev/thumbnails.py: who runs which step).
``python -m tstitch_dev.examples NAME ...`` (re)builds only the examples named.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tstitch_core.agreement import DEFAULT_MIN_AGREEMENT

from .host import PACK_ROOT, find_comfyui
from . import families, models
from .diffusers_format import ensure_diffusers_unet

EXAMPLES_DIR = PACK_ROOT / "example_workflows"

# Public file names the workflows load, by model folder, and how to build the random-weight file that
# stands in for each (checkpoints whose CLIP a workflow never uses are built without text encoders).
EXAMPLE_FILES = {
    # CompVis publishes SD v1.4 as a pickled .ckpt: its stand-in is one too
    ("checkpoints", "sd-v1-4.ckpt"): lambda: models.ensure_checkpoint(models.TINY_SD15_LARGE, suffix=".ckpt"),
    # BK-SDM-Tiny converted to a checkpoint (tools/bk_sdm_to_checkpoint.py): no example loads it, the fuzzer's
    # suppliers do (tstitch_dev/fuzz.py)
    ("checkpoints", "bk-sdm-tiny.safetensors"):
        lambda: models.ensure_checkpoint(models.TINY_SD15_SMALL, text_encoder_seed=None),
    # nota-ai's own files, in diffusers format, as the pack's BK-SDM loader reads them
    ("diffusion_models", "bk-sdm-tiny/unet/diffusion_pytorch_model.safetensors"):
        lambda: ensure_diffusers_unet(models.TINY_SD15_SMALL),
    ("diffusion_models", "bk-sdm-small/unet/diffusion_pytorch_model.safetensors"):
        lambda: ensure_diffusers_unet(models.TINY_BK_SDM_SMALL),
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
    ("diffusion_models", "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"):
        lambda: models.ensure_diffusion_model(models.TINY_WAN_I2V_HIGH_NOISE),
    ("diffusion_models", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"):
        lambda: models.ensure_diffusion_model(models.TINY_WAN_I2V_LOW_NOISE),
    # the lightx2v 4-step (Lightning) LoRAs, one per expert, as Comfy-Org repackaged them
    ("loras", "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"):
        lambda: models.ensure_wan_lora(models.TINY_WAN_HIGH_NOISE, 51),
    ("loras", "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"):
        lambda: models.ensure_wan_lora(models.TINY_WAN_LOW_NOISE, 52),
    ("loras", "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors"):
        lambda: models.ensure_wan_lora(models.TINY_WAN_I2V_HIGH_NOISE, 53),
    ("loras", "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"):
        lambda: models.ensure_wan_lora(models.TINY_WAN_I2V_LOW_NOISE, 54),
    ("vae", "wan_2.1_vae.safetensors"): models.ensure_wan_vae,
    # the DiT checkpoints T-Stitch published, DiT's own XL/2, and the SD VAE DiT decodes with
    ("diffusion_models", "dit_s_256.pt"): lambda: models.ensure_dit(models.TINY_DIT_S),
    ("diffusion_models", "dit_b_256.pt"): lambda: models.ensure_dit(models.TINY_DIT_B),
    ("diffusion_models", "DiT-XL-2-256x256.pt"): lambda: models.ensure_dit(models.TINY_DIT_XL),
    ("vae", "vae-ft-mse-840000-ema-pruned.safetensors"): models.ensure_sd_vae,
    # UMT5-XXL (5.7B parameters) is too big to build: the name is listed so the workflows load; the server
    # tests run the Wan workflows with a seeded stand-in of its output (tstitch_dev/stand_in_nodes)
    ("text_encoders", "umt5_xxl_fp8_e4m3fn_scaled.safetensors"): None,
    # the families people pair (issue 25): each its tiny family models (tstitch_dev/families.py), under the names
    # ComfyUI's own templates use, else the publisher's (Freepik's Lite 8B, Stability's Medium, Lightricks' 0.9.8)
    ("diffusion_models", "flux1-dev.safetensors"): lambda: families.ensure_family_model(families.FLUX_LARGE),
    ("diffusion_models", "flux.1-lite-8B.safetensors"): lambda: families.ensure_family_model(families.FLUX_SMALL),
    ("vae", "ae.safetensors"): models.ensure_flux_vae,
    ("checkpoints", "sd3.5_large_fp8_scaled.safetensors"):
        lambda: models.ensure_family_checkpoint(families.SD35_LARGE),
    ("checkpoints", "sd3.5_medium.safetensors"): lambda: models.ensure_family_checkpoint(families.SD35_SMALL),
    ("checkpoints", "ltxv-13b-0.9.8-dev.safetensors"): lambda: models.ensure_family_checkpoint(families.LTXV_LARGE),
    ("checkpoints", "ltxv-2b-0.9.8-distilled.safetensors"):
        lambda: models.ensure_family_checkpoint(families.LTXV_SMALL),
    ("diffusion_models", "flux2_dev_fp8mixed.safetensors"):
        lambda: families.ensure_family_model(families.FLUX2_DEV_LARGE),
    ("diffusion_models", "flux-2-klein-base-4b.safetensors"):
        lambda: families.ensure_family_model(families.FLUX2_SMALL),
    ("vae", "flux2-vae.safetensors"): models.ensure_flux2_vae,
    # their text encoders, too big to build like UMT5-XXL (T5-XXL, CLIP-L/G, Mistral Small 3, Qwen3 4B): listed so
    # the workflows load, stood in for in the server tests (the SD3.5 Large checkpoint's own, by its CLIP output)
    ("text_encoders", "clip_l.safetensors"): None,
    ("text_encoders", "t5xxl_fp16.safetensors"): None,
    ("text_encoders", "mistral_3_small_flux2_bf16.safetensors"): None,
    ("text_encoders", "qwen_3_4b.safetensors"): None,
}


@dataclass(frozen=True)
class Download:
    """Where a file the examples load comes from: its publisher's URL (None where it is not published under that
    name or in that form) and what else to do, which the example's note says."""

    url: str | None
    how: str = ""


_COMFY_WAN21 = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
_COMFY_WAN22 = "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files"
_FLUX_TEXT_ENCODERS = "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main"
_RENAME = "published as pytorch_lora_weights.safetensors: save it under this name"
_DRIVE = "T-Stitch's own DiT, on Google Drive (open the link, download, save it under this name)"
# Every file EXAMPLE_FILES names, by (model folder, file name): the URLs are those ComfyUI's own templates give for
# the file (comfyui_workflow_templates), else the publisher's
DOWNLOADS = {
    ("checkpoints", "sd-v1-4.ckpt"):
        Download("https://huggingface.co/CompVis/stable-diffusion-v-1-4-original/resolve/main/sd-v1-4.ckpt"),
    **{("diffusion_models", f"bk-sdm-{size}/unet/diffusion_pytorch_model.safetensors"): Download(
        f"https://huggingface.co/nota-ai/bk-sdm-{size}/resolve/main/unet/diffusion_pytorch_model.safetensors")
       for size in ("tiny", "small")},
    ("checkpoints", "sd_xl_base_1.0.safetensors"): Download(
        "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/sd_xl_base_1.0.safetensors"),
    ("checkpoints", "SSD-1B-A1111.safetensors"):
        Download("https://huggingface.co/segmind/SSD-1B/resolve/main/SSD-1B-A1111.safetensors"),
    ("loras", "lcm-lora-sdxl.safetensors"): Download(
        "https://huggingface.co/latent-consistency/lcm-lora-sdxl/resolve/main/pytorch_lora_weights.safetensors",
        _RENAME),
    ("loras", "lcm-lora-ssd-1b.safetensors"): Download(
        "https://huggingface.co/latent-consistency/lcm-lora-ssd-1b/resolve/main/pytorch_lora_weights.safetensors",
        _RENAME),
    **{("diffusion_models", f"wan2.2_{kind}_{noise}_14B_fp8_scaled.safetensors"): Download(
        f"{_COMFY_WAN22}/diffusion_models/wan2.2_{kind}_{noise}_14B_fp8_scaled.safetensors")
       for kind in ("t2v", "i2v") for noise in ("high_noise", "low_noise")},
    **{("loras", f"wan2.2_{kind}_lightx2v_4steps_lora_{version}_{noise}.safetensors"): Download(
        f"{_COMFY_WAN22}/loras/wan2.2_{kind}_lightx2v_4steps_lora_{version}_{noise}.safetensors")
       for kind, version in (("t2v", "v1.1"), ("i2v", "v1")) for noise in ("high_noise", "low_noise")},
    **{("diffusion_models", f"wan2.1_t2v_{size}_fp16.safetensors"): Download(
        f"{_COMFY_WAN21}/diffusion_models/wan2.1_t2v_{size}_fp16.safetensors") for size in ("1.3B", "14B")},
    ("vae", "wan_2.1_vae.safetensors"): Download(f"{_COMFY_WAN22}/vae/wan_2.1_vae.safetensors"),
    ("text_encoders", "umt5_xxl_fp8_e4m3fn_scaled.safetensors"):
        Download(f"{_COMFY_WAN21}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors"),
    ("diffusion_models", "dit_s_256.pt"):
        Download("https://drive.google.com/file/d/1YOSNrFbP36vHlPQPBosqZKbPLokymRuO/view?usp=sharing", _DRIVE),
    ("diffusion_models", "dit_b_256.pt"):
        Download("https://drive.google.com/file/d/1HTqZSYXh6LJGLooko4LPFsCuwL2Wjg6r/view?usp=sharing", _DRIVE),
    ("diffusion_models", "DiT-XL-2-256x256.pt"):
        Download("https://dl.fbaipublicfiles.com/DiT/models/DiT-XL-2-256x256.pt", "from Meta's server"),
    ("vae", "vae-ft-mse-840000-ema-pruned.safetensors"): Download(
        "https://huggingface.co/stabilityai/sd-vae-ft-mse-original/resolve/main/"
        "vae-ft-mse-840000-ema-pruned.safetensors"),
    ("diffusion_models", "flux1-dev.safetensors"):
        Download("https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors"),
    ("diffusion_models", "flux.1-lite-8B.safetensors"):
        Download("https://huggingface.co/Freepik/flux.1-lite-8B/resolve/main/flux.1-lite-8B.safetensors"),
    # the Flux.1 VAE as ComfyUI's Flux.1 dev templates fetch it (black-forest-labs' own copy is gated)
    ("vae", "ae.safetensors"):
        Download("https://huggingface.co/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/"
                 "ae.safetensors"),
    ("checkpoints", "sd3.5_large_fp8_scaled.safetensors"):
        Download("https://huggingface.co/Comfy-Org/stable-diffusion-3.5-fp8/resolve/main/"
                 "sd3.5_large_fp8_scaled.safetensors"),
    ("checkpoints", "sd3.5_medium.safetensors"): Download(
        "https://huggingface.co/stabilityai/stable-diffusion-3.5-medium/resolve/main/sd3.5_medium.safetensors"),
    **{("checkpoints", f"ltxv-{name}.safetensors"): Download(
        f"https://huggingface.co/Lightricks/LTX-Video/resolve/main/ltxv-{name}.safetensors")
       for name in ("13b-0.9.8-dev", "2b-0.9.8-distilled")},
    ("diffusion_models", "flux2_dev_fp8mixed.safetensors"): Download(
        "https://huggingface.co/Comfy-Org/flux2-dev/resolve/main/split_files/diffusion_models/"
        "flux2_dev_fp8mixed.safetensors"),
    ("diffusion_models", "flux-2-klein-base-4b.safetensors"): Download(
        "https://huggingface.co/Comfy-Org/flux2-klein/resolve/main/split_files/diffusion_models/"
        "flux-2-klein-base-4b.safetensors"),
    ("vae", "flux2-vae.safetensors"):
        Download("https://huggingface.co/Comfy-Org/flux2-dev/resolve/main/split_files/vae/flux2-vae.safetensors"),
    ("text_encoders", "clip_l.safetensors"): Download(f"{_FLUX_TEXT_ENCODERS}/clip_l.safetensors"),
    ("text_encoders", "t5xxl_fp16.safetensors"): Download(f"{_FLUX_TEXT_ENCODERS}/t5xxl_fp16.safetensors"),
    ("text_encoders", "mistral_3_small_flux2_bf16.safetensors"): Download(
        "https://huggingface.co/Comfy-Org/flux2-dev/resolve/main/split_files/text_encoders/"
        "mistral_3_small_flux2_bf16.safetensors"),
    ("text_encoders", "qwen_3_4b.safetensors"): Download(
        "https://huggingface.co/Comfy-Org/flux2-klein/resolve/main/split_files/text_encoders/qwen_3_4b.safetensors"),
}
# the model folder each loader of the examples reads its files from (ComfyUI's nodes.py; the DiT loader's is
# diffusion_models), for the loaders' properties.models
LOADER_FOLDERS = {"CheckpointLoaderSimple": "checkpoints", "UNETLoader": "diffusion_models",
                  "LoraLoaderModelOnly": "loras", "LoraLoader": "loras", "VAELoader": "vae",
                  "CLIPLoader": "text_encoders", "DualCLIPLoader": "text_encoders", "TripleCLIPLoader": "text_encoders",
                  "TStitchDiTLoader": "diffusion_models", "TStitchBKSDMLoader": "diffusion_models"}
MODEL_EXTENSIONS = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf")  # as the frontend tells


# examples whose text encoder cannot be built (see above): the frontend shows them without running them, and
# the server tests run them with the stand-in text encoder
NEEDS_STAND_IN_TEXT_ENCODER = {"wan22_a14b_t2v_experts", "wan21_1.3b_to_14b", "wan22_a14b_t2v_lightning_4_4",
                               "wan22_a14b_i2v_lightning_4_4", "wan21_14b_1.3b_14b_stages", "flux1_dev_lite_8b_pair",
                               "sd35_large_medium_pair", "ltxv_13b_2b_distilled_pair", "flux2_dev_klein_4b_guider"}


# a run in the frontend (the browser tests) takes at most 2 steps per sampler; three stages until 0.2, 0.7 need 4
# for each to run one (1, 2 and 1), and with fewer the last stage would get none, which T-Stitch Stages refuses
MOST_STEPS = {"sd15_stages_large_small_large": 4}


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
    # its Markdown note, as ComfyUI's templates have one: what it does and what to change first (the models it
    # loads, where they go and where to get them are added from DOWNLOADS)
    about: str = ""
    first: str = ""
    # its file's name, which is all the template browser shows of it (ComfyUI 0.33 lists a pack's
    # example_workflows/ by file name, and frontend 1.49 titles a pack's template with it); ``name`` is the key
    # the code and the tests use
    title: str = ""


def model_files(node: Node) -> list[tuple[str, str]]:
    """The (model folder, file name) of each model file ``node``'s widgets name: a loader's files."""
    named = [value for value in node.widgets.values() if isinstance(value, str) and value.endswith(MODEL_EXTENSIONS)]
    if named and node.type not in LOADER_FOLDERS:
        raise ValueError(f"{node.type} names {named}: add its model folder to LOADER_FOLDERS")
    return [(LOADER_FOLDERS[node.type], name) for name in named]


def model_entries(node: Node) -> list[dict]:
    """``node``'s properties.models, as ComfyUI's templates give a loader's files: each published file's name, URL
    and folder, which the frontend's missing-models panel offers to download."""
    return [{"name": name, "url": DOWNLOADS[folder, name].url, "directory": folder}
            for folder, name in model_files(node) if DOWNLOADS[folder, name].url]


def note_text(example: Example) -> str:
    """The Markdown of ``example``'s note: what it does, what to change first, and each model file it loads."""
    files = list(dict.fromkeys(file for node in example.nodes for file in model_files(node)))
    lines = []
    for folder, name in files:
        download = DOWNLOADS[folder, name]
        shown = f"[{name}]({download.url})" if download.url else name
        lines.append(f"- {shown} in `models/{folder}/`" + (f": {download.how}" if download.how else ""))
    return "\n\n".join([
        example.about, f"**Change first:** {example.first}",
        "**Models**, each in its folder under ComfyUI (a missing one is listed under Errors, with a Download "
        "button where its link allows one; some publishers ask you to log in to Hugging Face and accept their "
        "licence first):\n" + "\n".join(lines)])


PROMPT = "a photograph of an astronaut riding a horse on the moon, detailed, sharp focus"
NEGATIVE = "blurry, low quality, watermark"
BK_SDM_TINY_UNET = "bk-sdm-tiny/unet/diffusion_pytorch_model.safetensors"  # as nota-ai/bk-sdm-tiny downloads
BK_SDM_SMALL_UNET = "bk-sdm-small/unet/diffusion_pytorch_model.safetensors"


LOADERS, MIDDLE, SAMPLER, DECODE = range(4)  # layout columns
SAVE = DECODE  # a save under its decode (the layout moves it right of it where that fits better)
# widths narrower than the frontend's defaults (a prompt's box wraps its text), so that a graph opens on a laptop
# (1366x768) at a zoom where the frontend still draws text; a node is never narrower than its title
WIDTHS = {"CLIPTextEncode": 280, "SaveImage": 260, "SaveAnimatedWEBP": 260}


def _loader(key, file_name, title):
    return Node(key, "CheckpointLoaderSimple", LOADERS, {"ckpt_name": file_name}, title)


def _bk_sdm(key, unet_name=BK_SDM_TINY_UNET, title="Small: BK-SDM-Tiny"):
    """A BK-SDM UNet as nota-ai publishes it (diffusers format), through Load BK-SDM UNet: no conversion step."""
    return Node(key, "TStitchBKSDMLoader", LOADERS, {"unet_name": unet_name, "weight_dtype": "default"}, title)


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


# the sampling settings of the SD1.5 examples
SAMPLING = {"seed": 0, "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras"}


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

def _stages(key, until, title):
    return Node(key, "TStitchStages", MIDDLE, {"until": until, "switch_by": "steps", "offload_idle_model": False}, title)


# one loaded large model for stages 1 and 3
_STAGES_LINKS = [("large", 0, "stages", "model_1"), ("small", 0, "stages", "model_2"), ("large", 0, "stages", "model_3"),
                 ("stages", 0, "sampler", "model")]


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

# Wan 2.2 A14B with the Lightning LoRA on each expert, 4 + 4 steps through T-Stitch Stage Sigmas, as ComfyUI's
# own Wan 2.2 14B templates set the Lightning LoRAs up (strength 1, shift 5 on both experts, cfg 1, euler, simple)
W_LOADERS, W_EXPERTS, W_MIDDLE, W_SIGMAS, W_SAMPLER = range(5)  # layout columns
W_SAVE = W_SAMPLER
WAN_PROMPT = "a red fox running through fresh snow, slow motion"
WAN_NEGATIVE = "blurry, static, low quality"


def _lightning_experts(kind, lora_version):
    """Both experts of Wan 2.2 A14B ``kind`` (t2v, i2v), each with its Lightning LoRA and ModelSamplingSD3 shift 5."""
    nodes = []
    for key, noise in (("high", "high_noise"), ("low", "low_noise")):
        expert = "High-noise expert" if key == "high" else "Low-noise expert"
        nodes += [
            Node(key, "UNETLoader", W_LOADERS, {"unet_name": f"wan2.2_{kind}_{noise}_14B_fp8_scaled.safetensors",
                                                "weight_dtype": "default"}, expert),
            Node(f"{key}_lora", "LoraLoaderModelOnly", W_EXPERTS, {
                "lora_name": f"wan2.2_{kind}_lightx2v_4steps_lora_{lora_version}_{noise}.safetensors",
                "strength_model": 1.0}, f"Lightning LoRA: {expert.lower()}"),
            Node(f"{key}_shift", "ModelSamplingSD3", W_EXPERTS, {"shift": 5.0})]
    return nodes


_LIGHTNING_LINKS = [("high", 0, "high_lora", "model"), ("high_lora", 0, "high_shift", "model"),
                    ("low", 0, "low_lora", "model"), ("low_lora", 0, "low_shift", "model")]


def _lightning_sampling(filename_prefix, prompt=WAN_PROMPT):
    """4 + 4 stage sigmas, SamplerCustomAdvanced, the text encoder and VAE, prompts, decode and save; the
    example adds what stitches the experts (a pair, or the T-Stitch Guider) and what the sigmas read it from."""
    return [
        Node("stages", "TStitchStageSigmas", W_SIGMAS, {"scheduler": "simple", "steps_per_model": "4, 4",
                                                        "denoise": 1.0}, "4 steps per expert"),
        Node("noise", "RandomNoise", W_SIGMAS, {"noise_seed": 0, "control_after_generate": "fixed"}),
        Node("select", "KSamplerSelect", W_SIGMAS, {"sampler_name": "euler"}),
        Node("sampler", "SamplerCustomAdvanced", W_SAMPLER),
        Node("text_encoder", "CLIPLoader", W_LOADERS, {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
                                                       "type": "wan"}),
        Node("vae", "VAELoader", W_LOADERS, {"vae_name": "wan_2.1_vae.safetensors"}),
        Node("positive", "CLIPTextEncode", W_MIDDLE, {"text": prompt}, "Positive prompt"),
        Node("negative", "CLIPTextEncode", W_MIDDLE, {"text": WAN_NEGATIVE}, "Negative prompt"),
        Node("decode", "VAEDecode", W_SAMPLER),
        Node("save", "SaveAnimatedWEBP", W_SAVE, {"filename_prefix": filename_prefix, "fps": 16.0, "lossless": False,
                                                  "quality": 85, "method": "default"}),
    ]


_LIGHTNING_SAMPLER_LINKS = [("text_encoder", 0, "positive", "clip"), ("text_encoder", 0, "negative", "clip"),
                            ("noise", 0, "sampler", "noise"), ("guider", 0, "sampler", "guider"),
                            ("select", 0, "sampler", "sampler"), ("stages", 0, "sampler", "sigmas"),
                            ("sampler", 0, "decode", "samples"), ("vae", 0, "decode", "vae"),
                            ("decode", 0, "save", "images")]


def _dit_loader(key, file_name, title):
    return Node(key, "TStitchDiTLoader", LOADERS, {"dit_name": file_name, "weight_dtype": "default",
                                                   "cfg_channels": "first 3 (DiT)"}, title)


def _dit_class_and_output(filename_prefix):
    """ImageNet class, 256x256 latent, the SD VAE, DiT's own DDIM (100 of its timesteps, cfg 4 on three
    channels, set by the loader), decode and save: what every DiT example shares."""
    return [
        Node("class", "TStitchImageNetClass", MIDDLE, {"class_name": "207 golden retriever"}),
        _empty_latent(256),
        Node("vae", "VAELoader", LOADERS, {"vae_name": "vae-ft-mse-840000-ema-pruned.safetensors"}),
        Node("select", "KSamplerSelect", MIDDLE, {"sampler_name": "ddim"}),
        Node("schedule", "TStitchDiTScheduler", MIDDLE, {"steps": 100}),
        Node("sampler", "SamplerCustom", SAMPLER, {
            "add_noise": True, "noise_seed": 0, "control_after_generate": "fixed", "cfg": 4.0}),
        Node("decode", "VAEDecode", DECODE),
        Node("save", "SaveImage", SAVE, {"filename_prefix": filename_prefix}),
    ]


_DIT_LINKS = [("class", 0, "sampler", "positive"), ("class", 1, "sampler", "negative"),
              ("select", 0, "sampler", "sampler"), ("schedule", 0, "sampler", "sigmas"),
              ("latent", 0, "sampler", "latent_image"), ("sampler", 0, "decode", "samples"),
              ("vae", 0, "decode", "vae"), ("decode", 0, "save", "images")]


def _timestep_pair(key, fraction, title):
    return Node(key, "TStitchModelPair", MIDDLE, {"small_fraction": fraction, "switch_by": "timestep"}, title)


def _unet(key, file_name, title):
    return Node(key, "UNETLoader", LOADERS, {"unet_name": file_name, "weight_dtype": "default"}, title)


_OUTPUT_LINKS = [("sampler", 0, "decode", "samples"), ("decode", 0, "save", "images")]
# the family examples switch by timestep at a small_fraction where both models take steps on the family's shifted
# schedule, at the example's settings and at the server tests' 4 steps (tests/test_family_examples.py): at 4 steps
# Flux.1 and SD3.5 allow up to ~0.49, LTX-Video (LTXVScheduler) up to 0.9, Flux.2 (Flux2Scheduler) only up to 0.3


EXAMPLES = [
    Example(
        "sd15_bk-sdm-tiny_pair",
        [_bk_sdm("small"),
         _loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         _pair("pair", 0.4, "T-Stitch Model Pair"), *_prompts_and_output("tstitch_sd15"), _empty_latent(512),
         _ksampler()],
        [*_PAIR_LINKS, ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
        about=("**T-Stitch, the paper's SD setup.** BK-SDM-Tiny (SD v1.4 with blocks removed and distilled, "
               "323M parameters against 860M; Load BK-SDM UNet reads nota-ai's file as published) draws the first 40% of the steps, where the layout forms, and "
               "SD v1.4 the rest, in one KSampler pass through T-Stitch Model Pair."),
        first=("the prompts, then `small_fraction` on the pair: 0 is SD v1.4 alone, higher is faster and further "
               "from SD v1.4's own image (0.4 is the paper's setting). Any SD1.x checkpoint can be the large model."),
        title="Basic pair - SD1.5 + BK-SDM-Tiny",
    ),
    Example(
        "sd15_tstitch_ksampler",
        [_bk_sdm("small"),
         _loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         *_prompts_and_output("tstitch_ksampler"), _empty_latent(512),
         Node("sampler", "TStitchKSampler", SAMPLER, {
             "small_fraction": 0.4, "switch_by": "steps", "seed": 0, "control_after_generate": "fixed", "steps": 25,
             "cfg": 7.5, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1.0})],
        [("small", 0, "sampler", "small_model"), ("large", 0, "sampler", "large_model"),
         ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
        about=("**T-Stitch KSampler**: the pair and KSampler in one node, the same result as T-Stitch Model "
               "Pair into KSampler: BK-SDM-Tiny the first 40% of the steps, SD v1.4 the rest."),
        first="the prompts, then `small_fraction` (0 is SD v1.4 alone, higher is faster).",
        title="SD1.5 - T-Stitch KSampler",
    ),
    Example(
        "sdxl_ssd-1b_pair",
        [_loader("small", "SSD-1B-A1111.safetensors", "Small: SSD-1B"),
         _loader("large", "sd_xl_base_1.0.safetensors", "Large: SDXL base 1.0"),
         _pair("pair", 0.4, "T-Stitch Model Pair"), *_prompts_and_output("tstitch_sdxl"), _empty_latent(1024),
         _ksampler(cfg=7.0)],
        [*_PAIR_LINKS, ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
        about=("**SDXL with SSD-1B.** Segmind's SSD-1B, a distilled SDXL of 1.3B parameters, draws the first "
               "40% of the steps and SDXL base 1.0 the rest, in one KSampler pass through T-Stitch Model "
               "Pair."),
        first="the prompts, then `small_fraction` on the pair. Segmind Vega can take SSD-1B's place.",
        title="SDXL + SSD-1B pair",
    ),
    Example(
        "sd15_three_stage_bk-sdm",
        [_bk_sdm("tiny", title="Stage 1: BK-SDM-Tiny"),
         _bk_sdm("base", BK_SDM_SMALL_UNET, "Stage 2: BK-SDM-Small"),
         _loader("large", "sd-v1-4.ckpt", "Stage 3: SD v1.4"),
         _pair("inner", 0.5, "Pair: stages 2-3 (50%)"), _pair("outer", 0.2, "Pair: stage 1 (20%)"),
         *_prompts_and_output("tstitch_three_stage"), _empty_latent(512), _ksampler()],
        [("base", 0, "inner", "small_model"), ("large", 0, "inner", "large_model"),
         ("tiny", 0, "outer", "small_model"), ("inner", 0, "outer", "large_model"), ("outer", 0, "sampler", "model"),
         ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
        about=("**Three models in one pass.** BK-SDM-Tiny to 20% of the trajectory, BK-SDM-Small to 50%, SD "
               "v1.4 to the end: a pair (Small and v1.4 at 0.5) is the large model of another (Tiny at 0.2). "
               "Both fractions are shares of the whole trajectory."),
        first=("the two `small_fraction` values; the outer pair's (0.2) must not exceed the inner pair's "
               "(0.5)."),
        title="SD1.5 - three models nested",
    ),
    Example(
        "sd15_img2img_pair",
        [_bk_sdm("small"),
         _loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         Node("image", "LoadImage", LOADERS, {"image": "example.png"}),
         _pair("pair", 0.4, "T-Stitch Model Pair"), *_prompts_and_output("tstitch_img2img"),
         Node("scale", "ImageScale", MIDDLE, {"upscale_method": "lanczos", "width": 512, "height": 512,
                                               "crop": "center"}),
         Node("encode", "VAEEncode", MIDDLE), _ksampler(denoise=0.6)],
        [*_PAIR_LINKS, ("image", 0, "scale", "image"), ("scale", 0, "encode", "pixels"),
         ("large", 2, "encode", "vae"), ("encode", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
        about=("**Image to image** with a stitched model: the start image scaled to 512 and encoded, KSampler "
               "at denoise 0.6; the pair's 40% counts the steps KSampler runs."),
        first="the image in Load Image, the prompts and `denoise`.",
        title="SD1.5 - image to image",
    ),
    Example(
        "sd15_guider_per_model_cfg",
        [_bk_sdm("small"),
         _loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         *_prompts_and_output("tstitch_guider")[:2], _empty_latent(512),
         Node("guider", "TStitchGuider", SAMPLER, {"small_fraction": 0.4, "switch_by": "steps", "small_cfg": 4.0,
                                                  "large_cfg": 7.5}, "T-Stitch Guider: small model cfg 4"),
         Node("noise", "RandomNoise", SAMPLER, {"noise_seed": 0, "control_after_generate": "fixed"}),
         Node("select", "KSamplerSelect", SAMPLER, {"sampler_name": "dpmpp_2m"}),
         Node("schedule", "BasicScheduler", SAMPLER, {"scheduler": "karras", "steps": 25, "denoise": 1.0}),
         Node("sampler", "SamplerCustomAdvanced", DECODE),
         Node("decode", "VAEDecode", DECODE), Node("save", "SaveImage", SAVE, {"filename_prefix": "tstitch_guider"})],
        [("small", 0, "guider", "small_model"), ("large", 0, "guider", "large_model"),
         ("positive", 0, "guider", "small_positive"), ("negative", 0, "guider", "small_negative"),
         ("positive", 0, "guider", "large_positive"), ("negative", 0, "guider", "large_negative"),
         ("large", 1, "positive", "clip"), ("large", 1, "negative", "clip"), ("large", 0, "schedule", "model"),
         ("noise", 0, "sampler", "noise"), ("guider", 0, "sampler", "guider"), ("select", 0, "sampler", "sampler"),
         ("schedule", 0, "sampler", "sigmas"), ("latent", 0, "sampler", "latent_image"),
         ("sampler", 0, "decode", "samples"), ("large", 2, "decode", "vae"), ("decode", 0, "save", "images")],
        about=("**T-Stitch Guider**: each model its own prompts and CFG in one SamplerCustomAdvanced pass, "
               "here cfg 4 on BK-SDM-Tiny's steps (the first 40%) and 7.5 on SD v1.4's."),
        first=("`small_cfg` and `large_cfg` on the guider; its small_* prompt inputs can take prompts of "
               "their own."),
        title="SD1.5 - Guider, cfg per model",
    ),
    Example(
        "sd15_schedule_preview",
        [_bk_sdm("small"),
         _loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         _pair("pair", 0.4, "T-Stitch Model Pair"),
         Node("preview", "TStitchSchedulePreview", SAMPLER, {"steps": 25, "scheduler": "karras", "denoise": 1.0})],
        [("small", 0, "pair", "small_model"), ("large", 0, "pair", "large_model"), ("pair", 0, "preview", "model")],
        about=("**T-Stitch Schedule Preview** plots the schedule KSampler would run, each step coloured by "
               "the model that runs it, with each model's share, without sampling anything."),
        first=("`small_fraction` and `switch_by` on the pair, `steps` and `scheduler` on the preview; run it "
               "to see the switch."),
        title="SD1.5 - Schedule Preview",
    ),
    Example(
        "sd15_probe_then_pair",
        [_bk_sdm("small"),
         _loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         Node("positive", "CLIPTextEncode", MIDDLE, {"text": PROMPT}, "Positive prompt"),
         Node("negative", "CLIPTextEncode", MIDDLE, {"text": NEGATIVE}, "Negative prompt"), _empty_latent(512),
         Node("probe", "TStitchAgreementProbe", SAMPLER + 1, {**SAMPLING, "denoise": 1.0, "min_agreement": DEFAULT_MIN_AGREEMENT},
              "Where do the two models agree?"),
         # above KSampler, out of the way of the probe's plot (the probe grows when it shows it)
         Node("pair", "TStitchModelPair", DECODE + 1, {"small_fraction": 0.4, "switch_by": "steps"},
              "T-Stitch Model Pair: the suggested fraction"),
         Node("sampler", "KSampler", DECODE + 1, {**SAMPLING, "control_after_generate": "fixed", "denoise": 1.0}),
         Node("decode", "VAEDecode", DECODE + 2),
         Node("save", "SaveImage", DECODE + 2, {"filename_prefix": "tstitch_probe"}),
         # the probe must follow the trajectory the sampler runs: one Primitive gives both each setting (it takes
         # its widget from the probe, the seed's fixed after a run)
         # (three under the loaders, two under the probe)
         *(Node(name, "PrimitiveNode", LOADERS if index < 3 else SAMPLER + 1, {name: value}, name)
           for index, (name, value) in enumerate(SAMPLING.items()))],
        [("small", 0, "probe", "small_model"), ("large", 0, "probe", "large_model"),
         ("positive", 0, "probe", "positive"), ("negative", 0, "probe", "negative"),
         ("latent", 0, "probe", "latent_image"), ("probe", 2, "pair", "small_fraction"), *_PAIR_LINKS,
         ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS,
         *((name, 0, node, name) for name in SAMPLING for node in ("probe", "sampler"))],
        about=("**T-Stitch Agreement Probe** runs SD v1.4's trajectory once and asks BK-SDM-Tiny at every "
               "step how close its prediction is; its `suggested_fraction` feeds the pair, which KSampler "
               "then samples. One Primitive each gives the probe and KSampler their seed, steps, cfg, sampler "
               "and scheduler, so the probe measures the trajectory KSampler runs."),
        first=("`min_agreement` on the probe (higher: fewer small steps), then the prompts; change the "
               "sampling settings on the Primitives."),
        title="SD1.5 - Agreement Probe",
    ),
    Example(
        "sd15_fraction_sweep",
        [_bk_sdm("small"),
         _loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         *_prompts_and_output("tstitch_sweep")[:2], _empty_latent(512),
         Node("sweep", "TStitchFractionSweep", SAMPLER, {
             "fractions": "0, 0.2, 0.4, 0.6, 0.8, 1", "switch_by": "steps", "seed": 0,
             "control_after_generate": "fixed", "steps": 25, "cfg": 7.5, "sampler_name": "dpmpp_2m",
             "scheduler": "karras", "denoise": 1.0}),
         Node("save", "SaveImage", DECODE, {"filename_prefix": "tstitch_sweep"}, "Save the grid"),
         Node("save_tradeoff", "SaveImage", DECODE, {"filename_prefix": "tstitch_sweep_tradeoff"},
              "Save the speed/quality plot")],
        [("small", 0, "sweep", "small_model"), ("large", 0, "sweep", "large_model"), ("large", 2, "sweep", "vae"),
         ("large", 1, "positive", "clip"), ("large", 1, "negative", "clip"), ("positive", 0, "sweep", "positive"),
         ("negative", 0, "sweep", "negative"), ("latent", 0, "sweep", "latent_image"), ("sweep", 1, "save", "images"),
         ("sweep", 3, "save_tradeoff", "images")],
        about=("**T-Stitch Fraction Sweep** samples one seed at small_fraction 0, 0.2, ..., 1 and saves a "
               "grid of the images, labelled with each one's speedup and SSIM to SD v1.4 alone, and a speed "
               "against quality plot."),
        first="`fractions` and the prompts; `repeats` above 1 for steadier timings.",
        title="SD1.5 - Fraction Sweep",
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
        about=("**SDXL + SSD-1B with LCM LoRAs**: each model loads its own LCM LoRA and LCM model sampling "
               "before the pair, then 6 `lcm` steps at cfg 1.5; each LoRA acts on its own model's steps only."),
        first="the prompts, `steps` (4 to 8 suit LCM) and `small_fraction`.",
        title="SDXL + SSD-1B with LCM LoRAs",
    ),
    Example(
        "dit_s_to_xl_40",
        [_dit_loader("small", "dit_s_256.pt", "Small: DiT-S/2"), _dit_loader("large", "DiT-XL-2-256x256.pt", "Large: DiT-XL/2"),
         _timestep_pair("pair", 0.4, "T-Stitch: DiT-S takes t/T >= 0.6"), *_dit_class_and_output("tstitch_dit")],
        [*_PAIR_LINKS, ("pair", 0, "schedule", "model"), *_DIT_LINKS],
        about=("**The paper's headline**: DiT-S/2 draws the first 40% of DiT-XL/2's trajectory (t/T >= 0.6), "
               "for class 207, golden retriever, on DiT's own 100 DDIM timesteps with cfg 4 on 3 of the 4 "
               "channels, as DiT's and T-Stitch's samplers do."),
        first="the class in ImageNet Class (T-Stitch), then `small_fraction` on the pair.",
        title="DiT-S to DiT-XL at 40 percent",
    ),
    Example(
        "dit_s_b_xl_40_40_20",
        [_dit_loader("small", "dit_s_256.pt", "Stage 1: DiT-S/2"), _dit_loader("base", "dit_b_256.pt", "Stage 2: DiT-B/2"),
         _dit_loader("large", "DiT-XL-2-256x256.pt", "Stage 3: DiT-XL/2"),
         _timestep_pair("inner", 0.4, "Pair: DiT-S 40%, DiT-B 40%"),
         _timestep_pair("outer", 0.8, "Pair: DiT-XL takes the last 20%"), *_dit_class_and_output("tstitch_dit_sbxl")],
        [("small", 0, "inner", "small_model"), ("base", 0, "inner", "large_model"), ("inner", 0, "outer", "small_model"),
         ("large", 0, "outer", "large_model"), ("outer", 0, "sampler", "model"), ("outer", 0, "schedule", "model"),
         *_DIT_LINKS],
        about=("**Three DiTs**, S : B : XL = 40 : 40 : 20 of the trajectory, as in T-Stitch's three-model "
               "experiment: a pair of DiT-S and DiT-B (S to 0.4) is the small model of a pair with DiT-XL (to "
               "0.8)."),
        first="the class, then the two `small_fraction` values (0.4 inside, 0.8 outside).",
        title="DiT-S, B and XL - 40, 40, 20",
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
        about=("**Wan 2.2 A14B's two experts in one pass**: the high-noise expert runs every step at t/T >= "
               "0.875, the published boundary, and the low-noise expert the rest, through T-Stitch Model Pair "
               "with `switch_by: timestep` and one KSampler (20 euler steps, cfg 3.5)."),
        first=("the prompts and the latent's size and length; keep `small_fraction` at 0.125 (t = 0.875) for "
               "these experts."),
        title="Wan 2.2 A14B - both experts",
    ),
    Example(
        # the T-Stitch Guider stitches the experts and gives each its own prompts and CFG (1 and 1, as Lightning
        # wants); Stage Sigmas reads the switch from the guider, so small_fraction and switch_by are set once.
        # offload_idle_model: two 14B experts rarely fit together, so only the running one stays loaded
        "wan22_a14b_t2v_lightning_4_4",
        [*_lightning_experts("t2v", "v1.1"), *_lightning_sampling("tstitch_wan22_lightning"),
         Node("latent", "EmptyHunyuanLatentVideo", W_SIGMAS, {"width": 832, "height": 480, "length": 33,
                                                              "batch_size": 1}),
         Node("guider", "TStitchGuider", W_MIDDLE, {"small_fraction": 0.125, "switch_by": "timestep", "small_cfg": 1.0,
                                                   "large_cfg": 1.0, "offload_idle_model": True},
              "T-Stitch Guider: experts switch at t = 0.875")],
        [*_LIGHTNING_LINKS, ("high_shift", 0, "guider", "small_model"), ("low_shift", 0, "guider", "large_model"),
         ("positive", 0, "guider", "small_positive"), ("negative", 0, "guider", "small_negative"),
         ("positive", 0, "guider", "large_positive"), ("negative", 0, "guider", "large_negative"),
         ("guider", 0, "stages", "guider"), ("latent", 0, "sampler", "latent_image"), *_LIGHTNING_SAMPLER_LINKS],
        about=("**Wan 2.2 A14B with the Lightning LoRA on each expert, 4 + 4 steps.** T-Stitch Guider "
               "stitches the experts (switch at t = 0.875, cfg 1 each, one expert loaded at a time); T-Stitch "
               "Stage Sigmas reads that switch from the guider and gives each expert exactly 4 euler steps; "
               "SamplerCustomAdvanced samples."),
        first="the prompts and the latent's size and length. The switch is set on the guider alone.",
        title="Wan 2.2 A14B - Lightning 4+4",
    ),
    Example(
        # image-to-video: WanImageToVideo encodes the start image into both prompts (Wan 2.2 needs no CLIP
        # vision); the published boundary is t = 0.9; both experts at cfg 1, so ComfyUI's CFGGuider on the pair,
        # which keeps only the running expert loaded
        "wan22_a14b_i2v_lightning_4_4",
        [*_lightning_experts("i2v", "v1"),
         Node("pair", "TStitchModelPair", W_MIDDLE, {"small_fraction": 0.1, "switch_by": "timestep",
                                                     "offload_idle_model": True}, "Experts: switch at t = 0.9"),
         *_lightning_sampling("tstitch_wan22_i2v_lightning", "the girl waves, her hair blowing in the wind"),
         Node("image", "LoadImage", W_LOADERS, {"image": "example.png"}, "Start image"),
         Node("i2v", "WanImageToVideo", W_SIGMAS, {"width": 832, "height": 480, "length": 33, "batch_size": 1}),
         Node("guider", "CFGGuider", W_SIGMAS, {"cfg": 1.0})],
        [*_LIGHTNING_LINKS, ("high_shift", 0, "pair", "small_model"), ("low_shift", 0, "pair", "large_model"),
         ("pair", 0, "stages", "model"), ("pair", 0, "guider", "model"), ("positive", 0, "i2v", "positive"),
         ("negative", 0, "i2v", "negative"), ("vae", 0, "i2v", "vae"), ("image", 0, "i2v", "start_image"),
         ("i2v", 0, "guider", "positive"), ("i2v", 1, "guider", "negative"), ("i2v", 2, "sampler", "latent_image"),
         *_LIGHTNING_SAMPLER_LINKS],
        about=("**Wan 2.2 A14B image to video, Lightning 4 + 4.** WanImageToVideo puts the start image into "
               "both prompts; the pair switches at t = 0.9 (the published image-to-video boundary) with one "
               "expert loaded at a time; Stage Sigmas gives each expert 4 euler steps; CFGGuider at cfg 1 on "
               "the pair."),
        first="the start image, the prompts, and size and length on WanImageToVideo.",
        title="Wan 2.2 A14B i2v - Lightning 4+4",
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
        about=("**T-Stitch for video**: Wan 2.1 1.3B draws the first 40% of the steps of Wan 2.1 14B (30 "
               "uni_pc steps, cfg 6); the two share the text encoder and VAE."),
        first="the prompts and the latent's size and length, then `small_fraction`.",
        title="Wan 2.1 1.3B to 14B",
    ),
    Example(
        # FlowBlending's order: the large model draws the layout and finishes the details, the small one the middle
        "sd15_stages_large_small_large",
        [_loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         _bk_sdm("small"),
         _stages("stages", "0.2, 0.7", "T-Stitch Stages: large to 0.2, small to 0.7, large"),
         *_prompts_and_output("tstitch_stages"), _empty_latent(512), _ksampler()],
        [*_STAGES_LINKS, ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
        about=("**T-Stitch Stages in FlowBlending's order**: SD v1.4 lays out the first 20% of the "
               "trajectory, BK-SDM-Tiny runs to 70%, SD v1.4 finishes the details; one loaded SD v1.4 serves "
               "both of its stages."),
        first='`until` on the Stages node ("0.2, 0.7"), then the prompts.',
        title="SD1.5 - Stages large-small-large",
    ),
    Example(
        "wan21_14b_1.3b_14b_stages",
        [*_wan_model("large", "wan2.1_t2v_14B_fp16.safetensors", "Large: Wan 2.1 14B"),
         *_wan_model("small", "wan2.1_t2v_1.3B_fp16.safetensors", "Small: Wan 2.1 1.3B"),
         _stages("stages", "0.2, 0.7", "T-Stitch Stages: 14B to 0.2, 1.3B to 0.7, 14B"),
         *_wan_prompts_and_output("tstitch_wan21_stages"),
         Node("sampler", "KSampler", SAMPLER, {"seed": 0, "control_after_generate": "fixed", "steps": 30, "cfg": 6.0,
                                                "sampler_name": "uni_pc", "scheduler": "simple", "denoise": 1.0})],
        [*_shift_links("small", "large"), ("large_shift", 0, "stages", "model_1"),
         ("small_shift", 0, "stages", "model_2"), ("large_shift", 0, "stages", "model_3"),
         ("stages", 0, "sampler", "model"), *_WAN_LINKS],
        about=("**T-Stitch Stages for video, FlowBlending's order**: Wan 2.1 14B to 0.2 of the trajectory, "
               "1.3B to 0.7, 14B again; one loaded 14B serves both of its stages."),
        first="`until` on the Stages node, then the prompts and the latent's size and length.",
        title="Wan 2.1 - Stages 14B-1.3B-14B",
    ),
    Example(
        # each model its own count: 4 BK-SDM-Tiny steps, then 16 of SD v1.4, each stage spaced by karras in its own
        # model's time; with switch_by steps the pair's fraction is the counts' split, 4 / 20
        "sd15_stage_sigmas_4_16",
        [_bk_sdm("small"),
         _loader("large", "sd-v1-4.ckpt", "Large: SD v1.4"),
         _pair("pair", 0.2, "T-Stitch Model Pair: 4 of 20 steps"),
         *_prompts_and_output("tstitch_stage_sigmas"), _empty_latent(512),
         Node("schedule", "TStitchStageSigmas", MIDDLE, {"scheduler": "karras", "steps_per_model": "4, 16",
                                                         "denoise": 1.0}, "Stage Sigmas: 4 small + 16 large steps"),
         Node("select", "KSamplerSelect", MIDDLE, {"sampler_name": "dpmpp_2m"}),
         Node("sampler", "SamplerCustom", SAMPLER, {"add_noise": True, "noise_seed": 0,
                                                    "control_after_generate": "fixed", "cfg": 7.5})],
        [*_PAIR_LINKS, ("pair", 0, "schedule", "model"), ("select", 0, "sampler", "sampler"),
         ("schedule", 0, "sampler", "sigmas"), ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
        about=("**T-Stitch Stage Sigmas**: exactly 4 BK-SDM-Tiny steps, then 16 of SD v1.4, each stage spaced "
               "by karras with its own model's sampling, through SamplerCustom with dpmpp_2m. With "
               "`switch_by: steps` the pair's small_fraction is the counts' split, 4 / 20."),
        first="`steps_per_model`, and the pair's `small_fraction` to match (or `switch_by: timestep`).",
        title="SD1.5 - Stage Sigmas 4+16",
    ),
    Example(
        # Flux.1 dev is guidance-distilled: FluxGuidance sets its guidance, KSampler runs at cfg 1 (the negative unused);
        # Flux.1 Lite 8B is Freepik's distillation of dev, the same latents and text encoders
        "flux1_dev_lite_8b_pair",
        [_unet("small", "flux.1-lite-8B.safetensors", "Small: Flux.1 Lite 8B"),
         _unet("large", "flux1-dev.safetensors", "Large: Flux.1 dev"),
         Node("text_encoder", "DualCLIPLoader", LOADERS, {"clip_name1": "clip_l.safetensors",
                                                          "clip_name2": "t5xxl_fp16.safetensors", "type": "flux"}),
         Node("vae", "VAELoader", LOADERS, {"vae_name": "ae.safetensors"}),
         _timestep_pair("pair", 0.4, "T-Stitch: Flux.1 Lite takes t/T >= 0.6"),
         Node("positive", "CLIPTextEncode", MIDDLE, {"text": PROMPT}, "Positive prompt"),
         Node("guidance", "FluxGuidance", MIDDLE, {"guidance": 3.5}),
         Node("negative", "ConditioningZeroOut", MIDDLE, {}, "Negative (unused at cfg 1)"),
         Node("latent", "EmptySD3LatentImage", MIDDLE, {"width": 1024, "height": 1024, "batch_size": 1}),
         Node("sampler", "KSampler", SAMPLER, {"seed": 0, "control_after_generate": "fixed", "steps": 20, "cfg": 1.0,
                                                "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0}),
         Node("decode", "VAEDecode", DECODE), Node("save", "SaveImage", SAVE, {"filename_prefix": "tstitch_flux1"})],
        [*_PAIR_LINKS, ("text_encoder", 0, "positive", "clip"), ("positive", 0, "guidance", "conditioning"),
         ("guidance", 0, "sampler", "positive"), ("positive", 0, "negative", "conditioning"),
         ("negative", 0, "sampler", "negative"), ("latent", 0, "sampler", "latent_image"), ("vae", 0, "decode", "vae"),
         *_OUTPUT_LINKS],
        about=("**Flux.1 dev with Flux.1 Lite 8B**, Freepik's distillation of dev: Lite runs every step at "
               "t/T >= 0.6, dev the rest (`switch_by: timestep`, 0.4); FluxGuidance 3.5, cfg 1, 20 euler "
               "steps."),
        first=("the prompt and `guidance`, then `small_fraction` (too large and dev gets no step, which the "
               "pair refuses with the range that works)."),
        title="Flux.1 dev + Lite 8B pair",
    ),
    Example(
        # the Large checkpoint's own text encoders (CLIP-L, CLIP-G, T5-XXL) and VAE serve both; ComfyUI's SD3.5
        # template's settings (euler, sgm_uniform, cfg 4)
        "sd35_large_medium_pair",
        [_loader("small", "sd3.5_medium.safetensors", "Small: SD3.5 Medium"),
         _loader("large", "sd3.5_large_fp8_scaled.safetensors", "Large: SD3.5 Large"),
         _timestep_pair("pair", 0.4, "T-Stitch: SD3.5 Medium takes t/T >= 0.6"),
         *_prompts_and_output("tstitch_sd35"),
         Node("latent", "EmptySD3LatentImage", MIDDLE, {"width": 1024, "height": 1024, "batch_size": 1}),
         Node("sampler", "KSampler", SAMPLER, {"seed": 0, "control_after_generate": "fixed", "steps": 20, "cfg": 4.0,
                                                "sampler_name": "euler", "scheduler": "sgm_uniform", "denoise": 1.0})],
        [*_PAIR_LINKS, ("latent", 0, "sampler", "latent_image"), *_PROMPT_LINKS],
        about=("**SD3.5 Large with SD3.5 Medium**: Medium runs every step at t/T >= 0.6, Large the rest "
               "(`switch_by: timestep`, 0.4); the Large checkpoint's text encoders and VAE serve both; euler, "
               "sgm_uniform, cfg 4."),
        first="the prompts, then `small_fraction`.",
        title="SD3.5 Large + Medium pair",
    ),
    Example(
        # ComfyUI's LTX-Video template's graph (LTXVConditioning, LTXVScheduler, SamplerCustom) on the pair; the
        # 13B's VAE decodes (the 2B's is the same)
        "ltxv_13b_2b_distilled_pair",
        [_loader("small", "ltxv-2b-0.9.8-distilled.safetensors", "Small: LTX-Video 2B distilled"),
         _loader("large", "ltxv-13b-0.9.8-dev.safetensors", "Large: LTX-Video 13B"),
         Node("text_encoder", "CLIPLoader", LOADERS, {"clip_name": "t5xxl_fp16.safetensors", "type": "ltxv"}),
         _timestep_pair("pair", 0.1, "T-Stitch: 2B distilled takes t/T >= 0.9"),
         Node("positive", "CLIPTextEncode", MIDDLE, {"text": WAN_PROMPT}, "Positive prompt"),
         Node("negative", "CLIPTextEncode", MIDDLE, {"text": WAN_NEGATIVE}, "Negative prompt"),
         Node("conditioning", "LTXVConditioning", MIDDLE, {"frame_rate": 25.0}),
         Node("latent", "EmptyLTXVLatentVideo", MIDDLE, {"width": 768, "height": 512, "length": 97, "batch_size": 1}),
         Node("schedule", "LTXVScheduler", MIDDLE, {"steps": 30, "max_shift": 2.05, "base_shift": 0.95,
                                                    "stretch": True, "terminal": 0.1}),
         Node("select", "KSamplerSelect", MIDDLE, {"sampler_name": "euler"}),
         Node("sampler", "SamplerCustom", SAMPLER, {"add_noise": True, "noise_seed": 0,
                                                    "control_after_generate": "fixed", "cfg": 3.0}),
         Node("decode", "VAEDecode", DECODE),
         Node("save", "SaveAnimatedWEBP", SAVE, {"filename_prefix": "tstitch_ltxv", "fps": 25.0, "lossless": False,
                                                 "quality": 85, "method": "default"})],
        [*_PAIR_LINKS, ("text_encoder", 0, "positive", "clip"), ("text_encoder", 0, "negative", "clip"),
         ("positive", 0, "conditioning", "positive"), ("negative", 0, "conditioning", "negative"),
         ("conditioning", 0, "sampler", "positive"), ("conditioning", 1, "sampler", "negative"),
         ("latent", 0, "schedule", "latent"), ("select", 0, "sampler", "sampler"), ("schedule", 0, "sampler", "sigmas"),
         ("latent", 0, "sampler", "latent_image"), ("large", 2, "decode", "vae"), *_OUTPUT_LINKS],
        about=("**LTX-Video 13B with 2B distilled** in ComfyUI's LTX-Video graph (LTXVConditioning, "
               "LTXVScheduler, SamplerCustom): the 2B runs every step at t/T >= 0.9, the 13B the rest."),
        first="the prompts and the latent's size and length, then `small_fraction` (0.1 here).",
        title="LTX-Video 13B + 2B distilled",
    ),
    Example(
        # dev reads Mistral Small 3's 15360-wide tokens, klein 4B Qwen3 4B's 7680: one conditioning can't serve both,
        # so the T-Stitch Guider gives each its own prompt from its own text encoder, and its own cfg (klein base 5,
        # as ComfyUI's klein template; dev 1 with FluxGuidance 4, as ComfyUI's Flux.2 template)
        "flux2_dev_klein_4b_guider",
        [_unet("small", "flux-2-klein-base-4b.safetensors", "Small: Flux.2 klein 4B (base)"),
         _unet("large", "flux2_dev_fp8mixed.safetensors", "Large: Flux.2 dev"),
         Node("small_text_encoder", "CLIPLoader", LOADERS, {"clip_name": "qwen_3_4b.safetensors", "type": "flux2"},
              "Text encoder for klein: Qwen3 4B"),
         Node("large_text_encoder", "CLIPLoader", LOADERS,
              {"clip_name": "mistral_3_small_flux2_bf16.safetensors", "type": "flux2"},
              "Text encoder for dev: Mistral Small 3"),
         Node("vae", "VAELoader", LOADERS, {"vae_name": "flux2-vae.safetensors"}),
         Node("small_positive", "CLIPTextEncode", MIDDLE, {"text": PROMPT}, "klein's positive prompt"),
         Node("small_negative", "CLIPTextEncode", MIDDLE, {"text": NEGATIVE}, "klein's negative prompt"),
         Node("large_positive", "CLIPTextEncode", MIDDLE, {"text": PROMPT}, "dev's positive prompt"),
         Node("guidance", "FluxGuidance", MIDDLE, {"guidance": 4.0}),
         Node("large_negative", "ConditioningZeroOut", MIDDLE, {}, "dev's negative (unused at cfg 1)"),
         Node("guider", "TStitchGuider", SAMPLER, {"small_fraction": 0.1, "switch_by": "timestep", "small_cfg": 5.0,
                                                  "large_cfg": 1.0},
              "T-Stitch Guider: klein takes t/T >= 0.9"),
         Node("noise", "RandomNoise", SAMPLER, {"noise_seed": 0, "control_after_generate": "fixed"}),
         Node("select", "KSamplerSelect", SAMPLER, {"sampler_name": "euler"}),
         Node("schedule", "Flux2Scheduler", SAMPLER, {"steps": 20, "width": 1024, "height": 1024}),
         Node("latent", "EmptyFlux2LatentImage", SAMPLER, {"width": 1024, "height": 1024, "batch_size": 1}),
         Node("sampler", "SamplerCustomAdvanced", DECODE),
         Node("decode", "VAEDecode", DECODE), Node("save", "SaveImage", SAVE, {"filename_prefix": "tstitch_flux2"})],
        [("small", 0, "guider", "small_model"), ("large", 0, "guider", "large_model"),
         ("small_text_encoder", 0, "small_positive", "clip"), ("small_text_encoder", 0, "small_negative", "clip"),
         ("large_text_encoder", 0, "large_positive", "clip"), ("large_positive", 0, "guidance", "conditioning"),
         ("guidance", 0, "large_negative", "conditioning"),
         ("small_positive", 0, "guider", "small_positive"), ("small_negative", 0, "guider", "small_negative"),
         ("guidance", 0, "guider", "large_positive"), ("large_negative", 0, "guider", "large_negative"),
         ("noise", 0, "sampler", "noise"), ("guider", 0, "sampler", "guider"), ("select", 0, "sampler", "sampler"),
         ("schedule", 0, "sampler", "sigmas"), ("latent", 0, "sampler", "latent_image"), ("vae", 0, "decode", "vae"),
         *_OUTPUT_LINKS],
        about=("**Flux.2 dev with klein 4B (base)** through T-Stitch Guider: klein runs every step at t/T >= "
               "0.9, dev the rest; each model its own prompt from its own text encoder (Qwen3 4B for klein, "
               "Mistral Small 3 for dev: one conditioning can't serve both), cfg 5 on klein's steps, 1 on "
               "dev's with FluxGuidance 4."),
        first="both positive prompts (give them the same text), then `small_fraction` on the guider.",
        title="Flux.2 dev + klein 4B - Guider",
    ),
]

# The curve LiteGraph draws for a link (spline mode), sampled: from the output to the input with control points a
# quarter of its length out of each end, horizontally; through reroutes, one piece per reroute, whose control
# points follow each reroute's angle (Reroute.calculateAngle: halfway between the way in and the way out, at most
# Reroute.maxSplineOffset out: the setting LiteGraph.Reroute.SplineOffset, 20 by default) as
# LGraphCanvas._renderAllLinkSegments draws them. ``via``: [{pos, cos, sin, control}], from the output.
_CURVE_JS = """
  const bezier = (p0, c1, c2, p1) => Array.from({length: 63}, (_, i) => {
    const t = (i + 1) / 64, u = 1 - t;
    return [u ** 3 * p0[0] + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t ** 3 * p1[0],
            u ** 3 * p0[1] + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t ** 3 * p1[1]];
  });
  const distance = (a, b) => Math.hypot(b[0] - a[0], b[1] - a[1]), most = LiteGraph.Reroute.maxSplineOffset;
  const drawnCurve = (a, b, via) => {
    const points = [];
    let start = a, out = [distance(a, via[0]?.pos ?? b) * 0.25, 0];
    for (const [i, reroute] of via.entries()) {
      const r = reroute.pos, next = via[i + 1]?.pos ?? b;
      points.push(...bezier(start, [start[0] + out[0], start[1] + out[1]],
                            [r[0] + reroute.control[0], r[1] + reroute.control[1]], r), [...r]);
      const reach = Math.min(most, distance(r, next) * 0.25);
      start = r; out = [reach * reroute.cos, reach * reroute.sin];
    }
    const back = distance(start, b) * 0.25;
    return [...points, ...bezier(start, [start[0] + out[0], start[1] + out[1]], [b[0] - back, b[1]], b)];
  };
  // a reroute's angle as Reroute.calculateAngle works it out, for a reroute with one link
  const rerouteAt = (parent, pos, next) => {
    const way = Math.atan2(next[1] - pos[1], next[0] - pos[0]), into = Math.atan2(pos[1] - parent[1], pos[0] - parent[0]);
    let half = (into - way) * 0.5;
    if (Math.abs(half) > Math.PI * 0.5) half += Math.PI;
    const reach = Math.min(most, distance(parent, pos) * 0.25), angle = into - half;
    return {pos, cos: Math.cos(angle), sin: Math.sin(angle), control: [-reach * Math.cos(angle), -reach * Math.sin(angle)]};
  };
  const rerouted = (a, b, positions) => positions.map((pos, i) => rerouteAt(positions[i - 1] ?? a, pos, positions[i + 1] ?? b));
"""

# Builds one example in the page's graph through LiteGraph, as a user dragging nodes would.
_BUILD_JS = """async (example) => {
""" + _CURVE_JS + """
  const graph = window.app.graph;
  graph.clear();
  const nodes = {};
  // a widget's value; false where the node has no such widget yet (a Primitive gets its widgets when linked)
  const set = (node, name, value) => {
    const widget = (node.widgets ?? []).find((w) => w.name === name);
    if (widget) widget.value = value;
    return !!widget;
  };
  for (const spec of example.nodes) {
    const node = LiteGraph.createNode(spec.type);
    if (!node) throw new Error(`unknown node type ${spec.type}`);
    if (spec.title) node.title = spec.title;
    // the files a loader names, with where to download them (ComfyUI's templates carry the same)
    if (spec.models.length) node.properties.models = spec.models;
    graph.add(node);
    for (const [name, value] of Object.entries(spec.widgets)) set(node, name, value);
    nodes[spec.key] = node;
  }
  for (const [from, output, to, input] of example.links) {
    const slot = nodes[to].findInputSlot(input);
    if (slot < 0) throw new Error(`${nodes[to].type} has no input ${input}`);
    if (!nodes[from].connect(output, nodes[to], slot)) throw new Error(`cannot link ${from} to ${to}.${input}`);
  }
  for (const spec of example.nodes) {
    for (const [name, value] of Object.entries(spec.widgets)) {
      if (!set(nodes[spec.key], name, value)) throw new Error(`${spec.type} has no widget ${name}`);
    }
  }
  // every node at least as wide as its title (the frontend cuts a title longer than size[0] less two title heights)
  const ctx = window.app.canvas.canvas.getContext('2d');
  const titleHeight = LiteGraph.NODE_TITLE_HEIGHT;
  for (const node of graph.nodes) {
    ctx.font = node.titleFontStyle ?? window.app.canvas.title_text_font;
    const needed = Math.ceil(ctx.measureText(node.title).width) + 2 * titleHeight + 8;
    const width = Math.max(node.type in example.widths ? example.widths[node.type] : node.size[0], needed);
    node.setSize([width, node.size[1]]);
  }
  // about the height the note's text takes at a width (the frontend's font: about 4 pixels a character, 14 a line)
  const noteHeight = (lines, width) => 60 + 14 * lines.reduce(
    (sum, length) => sum + (Math.ceil(length / Math.floor((width - 40) / 4)) || 1), 0);
  // a node fed by another of its column may go one column further right (tried both ways): a chain (loader, LoRA,
  // shift) then reads left to right, and its links never run back across the column
  const columnsOf = (chains) => {
    const level = new Map(example.nodes.map((spec) => [nodes[spec.key], spec.column * 100]));
    for (let changed = chains; changed;) {
      changed = false;
      for (const [from, , to] of example.links) {
        const a = level.get(nodes[from]), b = level.get(nodes[to]);
        if (Math.floor(a / 100) === Math.floor(b / 100) && b <= a) { level.set(nodes[to], a + 1); changed = true; }
      }
    }
    return [...new Set(level.values())].sort((a, b) => a - b)
      .map((at) => example.nodes.map((spec) => nodes[spec.key]).filter((node) => level.get(node) === at));
  };
  // columns left to right, GAP_X apart, each node under the one before, GAP_Y apart and as wide as its column; a
  // column taller than a height limit goes on in a column beside it, and the note sits at the foot of one column or
  // left of the graph. A link that would cross a node it does not join (sampled along the curve the frontend draws:
  // control points a quarter of its length out of each end, horizontally) moves that node, and those under it, down
  // below the link. Of every limit and note place, the layout kept is the one with the fewest such links that a
  // laptop's view (1366x768) fits at the largest zoom: the frontend draws no text below a zoom of 0.57
  // (tests/test_browser.py checks each example opens above it, with no link through a node).
  const GAP_X = 40, GAP_Y = 30, VIEW = [1366, 768], MOST_BELOW = 400;
  const own = new Map(graph.nodes.map((node) => [node, node.size[0]]));
  const height = (node) => node.size[1] + titleHeight;
  const stackWidth = (stack) => Math.max(...stack.map((n) => own.get(n) ?? 0));
  const split = (columns, limit) => {
    const stacks = [];
    for (const column of columns) {
      let stack = [], used = 0;
      for (const node of column) {
        if (stack.length && used + height(node) > limit) { stacks.push(stack); stack = []; used = 0; }
        stack.push(node);
        used += height(node) + GAP_Y;
      }
      stacks.push(stack);
    }
    return stacks;
  };
  let note = null;
  if (example.note !== null) {
    note = LiteGraph.createNode('MarkdownNote');
    note.title = 'About this workflow';
    graph.add(note);
    note.widgets[0].value = example.note.text;
  }
  const place = (stacks, below) => {
    let x = 0;
    for (const stack of stacks) {
      const width = stack.length === 1 && stack[0] === note ? 360 : Math.max(stackWidth(stack), note && stack.includes(note) ? 300 : 0);
      let y = 0;
      for (const node of stack) {
        y += below.get(node) ?? 0;
        node.setSize([width, node === note ? noteHeight(example.note.lines, width) : node.size[1]]);
        node.pos = [x, y];
        y += height(node) + GAP_Y;
      }
      x += width + GAP_X;
    }
  };
  // a node's area with its title (boundingRect is brought up to date only as the canvas draws)
  const rect = (node) => [node.pos[0], node.pos[1] - titleHeight, node.size[0], node.size[1] + titleHeight];
  const curve = (a, b) => drawnCurve(a, b, []);
  // each (link's end nodes, node crossed, lowest point of the link over that node)
  const crossings = () => {
    const found = [];
    for (const link of Object.values(graph.links ?? {})) {
      if (!link) continue;
      const from = graph.getNodeById(link.origin_id), to = graph.getNodeById(link.target_id);
      const points = curve(from.getOutputPos(link.origin_slot), to.getInputPos(link.target_slot));
      for (const node of graph.nodes) {
        if (node === from || node === to) continue;
        const [rx, ry, rw, rh] = rect(node);
        const over = points.filter(([x, y]) => x > rx && x < rx + rw);
        if (over.some(([, y]) => y > ry && y < ry + rh)) found.push({from, to, node, lowest: Math.max(...over.map(([, y]) => y))});
      }
    }
    return found;
  };
  const stackOf = (stacks, node) => stacks.find((stack) => stack.includes(node));
  const zoomNow = () => {
    const rects = graph.nodes.map(rect);
    const width = Math.max(...rects.map(([x, , w]) => x + w)) - Math.min(...rects.map(([x]) => x));
    const tall = Math.max(...rects.map(([, y, , h]) => y + h)) - Math.min(...rects.map(([, y]) => y));
    return Math.min(VIEW[0] / (width + 20), VIEW[1] / (tall + 20));
  };
  // the layout as placed, then after each node moved down out of a link's way: every step is a candidate
  const arrange = (stacks, consider) => {
    const below = new Map(), kept = new Set();
    for (let round = 0; round < 40; round++) {
      place(stacks, below);
      const left = crossings();
      consider({stacks, below: new Map(below), crossed: left.length, zoom: zoomNow()});
      // moving a node down helps only where neither end of the link moves with it
      // (the smallest such move first)
      const push = ({node, lowest}) => Math.max(lowest - node.pos[1] + titleHeight + 12, 12);
      const movable = left.filter(({from, to, node}) => {
        const stack = stackOf(stacks, node), at = stack.indexOf(node);
        return !kept.has(`${from.id}>${to.id}@${node.id}`) && ![from, to].some((end) => stack.indexOf(end) >= at);
      }).sort((a, b) => push(a) - push(b))[0];
      if (!movable) break;
      const {from, to, node} = movable, now = (below.get(node) ?? 0) + push(movable);
      if (now > MOST_BELOW) kept.add(`${from.id}>${to.id}@${node.id}`); else below.set(node, now);
    }
  };
  // fitted, the frontend's view is 3/4 of the width or the height it fits: 0.81 of it is a zoom of 0.61
  const ENOUGH = 0.81;
  const better = (a, b) => !b || ((a.zoom >= ENOUGH) !== (b.zoom >= ENOUGH) ? a.zoom >= ENOUGH
    : a.zoom < ENOUGH ? a.zoom > b.zoom + 1e-9 || (a.zoom > b.zoom - 1e-9 && a.crossed < b.crossed)
    : a.crossed !== b.crossed ? a.crossed < b.crossed : a.zoom > b.zoom + 1e-9);
  let best = null;
  const tried = new Set();
  for (const chains of [true, false]) {
    const columns = columnsOf(chains);
    for (let limit = 400; limit <= 1600; limit += 20) {
      const columnsSplit = split(columns, limit), shape = columnsSplit.map((stack) => stack.map((n) => n.id)).join('|');
      if (tried.has(shape)) continue;
      tried.add(shape);
      for (let at = -1; at < (note ? columnsSplit.length : 0); at++) {
        const stacks = columnsSplit.map((stack) => [...stack]);
        if (note) { if (at < 0) stacks.unshift([note]); else stacks[at].push(note); }
        arrange(stacks, (layout) => { if (better(layout, best)) best = layout; });
      }
    }
  }
  place(best.stacks, best.below);
  // a link still through a node goes by reroutes (as a user adds them: Alt+click on the link) in the gaps between
  // columns, clear of every node and inside the graph's bounds (the view it fits stays the same): one; two at one
  // height; two in one gap (up or down it); or down a gap, along a height and up another. Of those through the
  // fewest nodes (with a margin), the fewest reroutes and then the shortest way, if fewer than with none
  const MARGIN = 12;
  const clear = (point) => graph.nodes.every((node) => {
    const [rx, ry, rw, rh] = rect(node);
    return point[0] < rx - MARGIN || point[0] > rx + rw + MARGIN || point[1] < ry - MARGIN || point[1] > ry + rh + MARGIN;
  });
  const through = (from, to, points, margin) => graph.nodes.filter((node) => node !== from && node !== to
    && points.some(([x, y]) => {
      const [rx, ry, rw, rh] = rect(node);
      return x > rx - margin && x < rx + rw + margin && y > ry - margin && y < ry + rh + margin;
    })).length;
  const rects = graph.nodes.map(rect);
  const top = Math.min(...rects.map(([, y]) => y)), bottom = Math.max(...rects.map(([, y, , h]) => y + h));
  let right = 0;
  const gaps = best.stacks.map((stack) => { right += stack[0].size[0] + GAP_X; return right - GAP_X / 2; });
  const heights = [...new Set(rects.flatMap(([, y, , h]) => [y - GAP_Y / 2, y + h + GAP_Y / 2, y + h + 40]))]
    .filter((y) => y > top && y < bottom);
  for (const link of Object.values(graph.links ?? {})) {
    if (!link) continue;
    const from = graph.getNodeById(link.origin_id), to = graph.getNodeById(link.target_id);
    const a = from.getOutputPos(link.origin_slot), b = to.getInputPos(link.target_slot);
    const now = through(from, to, drawnCurve(a, b, []), 0);
    if (!now) continue;
    const ways = [];
    for (const y of [...heights, a[1], b[1]]) {
      for (const g1 of gaps.filter((gx) => gx > a[0])) {
        // out right and along a height into a gap left of the input, whichever way that is (a link to a node of
        // its own column goes back)
        for (const g2 of gaps.filter((gx) => gx < b[0] && gx !== g1)) ways.push([[g1, a[1]], [g1, y], [g2, y], [g2, b[1]]]);
        if (g1 > b[0]) continue;
        ways.push([[g1, y]], [[g1, a[1]], [g1, y]], [[g1, y], [g1, b[1]]]);
        for (const g2 of gaps.filter((gx) => gx > g1 && gx < b[0])) ways.push([[g1, y], [g2, y]]);
      }
    }
    let chosen = null;
    for (const way of ways) {
      if (!way.every(clear)) continue;
      const length = [a, ...way, b].reduce((sum, p, i, all) => sum + (i ? distance(all[i - 1], p) : 0), 0);
      const score = [through(from, to, drawnCurve(a, b, rerouted(a, b, way)), 4), way.length, length];
      const first = chosen && score.findIndex((v, i) => v !== chosen.score[i]);
      if (score[0] < now && (!chosen || (first > -1 && score[first] < chosen.score[first]))) chosen = {way, score};
    }
    for (const pos of chosen?.way ?? []) graph.createReroute(pos, link);
  }
  graph.setDirtyCanvas(true, true);
}"""


def build_in_frontend(page, example: Example) -> None:
    nodes = [dict(vars(node), models=model_entries(node)) for node in example.nodes]
    text = note_text(example) if example.about else None
    # the length of each line the note shows (a link shows its text), for its height at its column's width
    lines = [len(line) for line in re.sub(r"\[([^]]*)\]\([^)]*\)", r"\1", text).split("\n")] if text else []
    note = {"text": text, "lines": lines} if text else None
    page.evaluate(_BUILD_JS, {"nodes": nodes, "links": example.links, "note": note, "widths": WIDTHS})


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


def fit_graph(page) -> None:
    """The graph alone, fitted to the view (nodes off screen are not drawn, nor their images loaded)."""
    page.evaluate("""async () => {
      const settings = window.app.extensionManager.setting;
      await settings.set('Comfy.Minimap.Visible', false);
      await settings.set('LiteGraph.Canvas.MinFontSizeForLOD', 0);  // text and widgets even on a wide graph
      window.app.canvas.show_info = false;
      window.app.extensionManager.command.execute('Comfy.Canvas.FitView');
    }""")
    page.wait_for_timeout(500)


# What a graph shows as it opens: the zoom the frontend's fit-view gives it, the zoom below which nodes are drawn
# without text (LiteGraph's low-quality threshold: MinFontSizeForLOD / (NODE_TEXT_SIZE x sqrt(devicePixelRatio)),
# 8 / 14 = 0.571 at the frontend's defaults), each title wider than the room its node gives it (the frontend cuts
# it with "..."), and each link whose curve crosses a node it does not join (sampled along the spline LiteGraph
# draws: control points a quarter of the link's length out of each end, horizontally).
_LAYOUT_FACTS_JS = """() => {
""" + _CURVE_JS + """
  const canvas = window.app.canvas, graph = window.app.graph;
  canvas.draw(true, true);
  const ctx = canvas.canvas.getContext('2d');
  const titleHeight = LiteGraph.NODE_TITLE_HEIGHT;
  const titles = [];
  for (const node of graph.nodes) {
    if (!node.title || node.collapsed) continue;
    ctx.font = node.titleFontStyle ?? canvas.title_text_font;
    const width = ctx.measureText(node.getTitle?.() ?? node.title).width, room = node.size[0] - 2 * titleHeight;
    if (width > room) titles.push({id: node.id, title: node.title, width: Math.round(width), room});
  }
  const rects = graph.nodes.map((node) => [node, node.boundingRect]);
  const crossings = [];
  for (const link of Object.values(graph.links ?? {})) {
    if (!link) continue;
    const from = graph.getNodeById(link.origin_id), to = graph.getNodeById(link.target_id);
    const a = from.getOutputPos(link.origin_slot), b = to.getInputPos(link.target_slot);
    // each reroute's angle as the frontend worked it out drawing the canvas
    const via = link.constructor.getReroutes(graph, link).map((r) => ({pos: r.pos, cos: r.cos, sin: r.sin, control: r.controlPoint}));
    const crossed = new Set();
    for (const [x, y] of drawnCurve(a, b, via)) {
      for (const [node, [rx, ry, rw, rh]] of rects) {
        if (node !== from && node !== to && x > rx && x < rx + rw && y > ry && y < ry + rh) crossed.add(node);
      }
    }
    for (const node of crossed) {
      crossings.push({link: `${from.title}.${from.outputs[link.origin_slot].name} -> ${to.title}.${to.inputs[link.target_slot].name}`,
                      through: node.title});
    }
  }
  const bounds = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [, [x, y, w, h]] of rects) {
    bounds[0] = Math.min(bounds[0], x); bounds[1] = Math.min(bounds[1], y);
    bounds[2] = Math.max(bounds[2], x + w); bounds[3] = Math.max(bounds[3], y + h);
  }
  return {scale: canvas.ds.scale, threshold: canvas._lowQualityZoomThreshold, low_quality: canvas.low_quality,
          canvas: [canvas.canvas.width, canvas.canvas.height], dpr: window.devicePixelRatio,
          size: [Math.round(bounds[2] - bounds[0]), Math.round(bounds[3] - bounds[1])], titles, crossings};
}"""


def open_as_template(page, workflow: dict, name: str) -> None:
    """Load ``workflow`` as the template browser opens one (fitted to the view)."""
    page.evaluate("async ([wf, name]) => { await window.app.loadGraphData(wf, true, true, name, "
                  "{openSource: 'template'}); }", [workflow, name])
    page.wait_for_timeout(300)


def layout_facts(page) -> dict:
    """The open graph's zoom and text-drawing threshold, cut titles and links through nodes (_LAYOUT_FACTS_JS)."""
    return page.evaluate(_LAYOUT_FACTS_JS)


# every sampler's "steps" widget at most 2 while the graph runs, put back before the graph is shown: stand-in
# weights make noise at any step count, and 20 steps of a 512x512 sweep take a quarter of an hour on a CPU
# (the schedule preview samples nothing: it keeps its steps, so its plot is the committed one)
_FEW_STEPS_JS = """(most) => window.app.graph.nodes.filter((node) => node.type !== 'TStitchSchedulePreview')
  .flatMap((node) => (node.widgets ?? [])
  .filter((w) => w.name === 'steps' && w.value > most).map((w) => { const was = w.value; w.value = most;
    return () => { w.value = was; }; }))"""


def run_in_frontend(page, server, timeout: float = 600, most_steps: int | None = 2) -> dict:
    """Queue the page's graph as a user does (Run), with at most ``most_steps`` steps per sampler, and wait
    for it; the widgets are put back after. Returns {node id: that node's outputs}."""
    import time

    before = set(server.get("/history"))
    page.evaluate("""(most) => { window.__tstitchRestore = most === null ? [] : (""" + _FEW_STEPS_JS + """)(most); }""",
                  most_steps)
    try:
        assert page.evaluate("async () => await window.app.queuePrompt(0, 1)") is not False
    finally:
        page.evaluate("() => { window.__tstitchRestore.forEach((restore) => restore()); window.app.graph.setDirtyCanvas(true, true); }")
    deadline = time.monotonic() + timeout
    while not (finished := set(server.get("/history")) - before):
        if time.monotonic() > deadline:
            raise TimeoutError("the example did not finish")
        time.sleep(0.5)
    entry = server.wait(finished.pop())
    if entry["status"]["status_str"] != "success":
        raise RuntimeError(f"the example failed: {entry['status']}")
    # at least one of its outputs on show (a node with an image and a value output may not show its image)
    page.wait_for_function("""(ids) => ids.some((id) => {
      const node = window.app.graph.nodes.find((n) => String(n.id) === id);
      return node?.imgs?.length && node.imgs.every((img) => img.complete && img.naturalWidth > 0);
    })""", arg=[i for i, out in entry["outputs"].items() if out.get("images")], timeout=60_000)
    # the progress line a sampler shows ("step 2 of 2") tells of the shortened run, not of the graph
    page.evaluate("""() => { for (const node of window.app.graph.nodes) {
      const index = (node.widgets ?? []).findIndex((w) => w.type === 'progressText');
      if (index > -1) { node.widgets[index].onRemove?.(); node.widgets.splice(index, 1); }
    } window.app.graph.setDirtyCanvas(true, true); }""")
    return entry["outputs"]


def build_and_export(browser, server, example: Example) -> dict:
    """Build ``example`` on a page of its own and return what the frontend's Export command writes for it."""
    from .browser import open_page

    page = open_page(browser, server, width=1400, height=900)
    try:
        page.evaluate("() => window.app.extensionManager.command.execute('Workspace.ToggleFocusMode')")
        build_in_frontend(page, example)
        return export_from_frontend(page)
    finally:
        page.close()


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


def example_path(name: str, suffix: str = ".json") -> Path:
    """The file of example ``name``: its title and ``suffix`` (".jpg": the thumbnail)."""
    (example,) = [example for example in EXAMPLES if example.name == name]
    return EXAMPLES_DIR / f"{example.title}{suffix}"


def main(names: list[str]) -> int:
    """(Re)build the examples named in ``names`` (all of them when empty) in the frontend, then their thumbnails
    (with --json-only, the .json alone)."""
    json_only = "--json-only" in names
    names = [name for name in names if name != "--json-only"]
    from .browser import launch_browser
    from .comfy_env import use_host
    from .server import ComfyServer
    from .thumbnails import main as draw_thumbnails

    use_host(cpu=True)  # the stand-in models are built with the host's model classes
    EXAMPLES_DIR.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="tstitch-examples-"))
    link_example_models(base)
    with ComfyServer(base) as server, launch_browser() as browser:
        for example in [example for example in EXAMPLES if not names or example.name in names]:
            workflow = build_and_export(browser, server, example)
            example_path(example.name).write_text(json.dumps(workflow, indent=2) + "\n")
            print(f"wrote {example.title}.json")
    return 0 if json_only else draw_thumbnails(names)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
