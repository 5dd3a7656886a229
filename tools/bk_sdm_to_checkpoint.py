"""Convert a BK-SDM model in diffusers format into one ComfyUI checkpoint: UNet, VAE and CLIP-L text encoder.

BK-SDM (nota-ai/bk-sdm-tiny, -small, -base) is published only as diffusers folders. The UNet is converted by
nodes/_bk_sdm.py, as the pack's Load BK-SDM UNet node converts it as it loads; the VAE and text encoder by
ComfyUI's own tables. Run it with the Python that runs ComfyUI:

    python custom_nodes/comfyui-tstitch/tools/bk_sdm_to_checkpoint.py path/to/bk-sdm-tiny \\
        path/to/ComfyUI/models/checkpoints/bk-sdm-tiny.safetensors

ComfyUI is found from --comfyui, $COMFYUI_PATH, the ComfyUI this pack is installed in, or ~/ComfyUI.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).absolute().parent.parent  # unresolved, so a symlinked install finds its ComfyUI
if str(PACK_ROOT) not in sys.path:  # tstitch_dev, when run as a plain script
    sys.path.insert(0, str(PACK_ROOT))

from tstitch_dev.comfy_env import use_host  # noqa: E402
from tstitch_dev.host import HostNotFound, comfyui_version, find_comfyui, is_comfyui  # noqa: E402


def load_unet_conversion():
    """nodes/_bk_sdm.py, the pack's UNet conversion, by path: the pack's folder is no importable name, and its
    nodes package would need a running ComfyUI."""
    spec = importlib.util.spec_from_file_location("tstitch_bk_sdm", PACK_ROOT / "nodes" / "_bk_sdm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bk_sdm = load_unet_conversion()

DIFFUSERS_MODEL_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                         "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin")
TEXT_ENCODER_FILES = ("model.safetensors", "pytorch_model.bin", "model.fp16.safetensors", "pytorch_model.fp16.bin")
COMPONENT_FILES = {"unet": DIFFUSERS_MODEL_FILES, "vae": DIFFUSERS_MODEL_FILES, "text_encoder": TEXT_ENCODER_FILES}
DTYPES = ("fp16", "fp32")
UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model."
# token positions 0..76, a buffer older transformers saved that ComfyUI's CLIP computes instead
POSITION_IDS = "text_model.embeddings.position_ids"


def locate_comfyui(path: str | None) -> Path:
    """The ComfyUI folder to convert with: ``path`` if given, else as the pack's harness finds it."""
    if path is None:
        return find_comfyui(clone=False)
    host = Path(path).expanduser().resolve()
    if not is_comfyui(host):
        raise HostNotFound(f"--comfyui {path} is not a ComfyUI folder (no comfyui_version.py and comfy/ there).")
    return host


def find_weights(folder: Path) -> dict[str, Path]:
    """The weight file in each of the diffusers folder's unet/, vae/ and text_encoder/."""
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder; give the diffusers model's folder (with unet/, vae/, "
                         "text_encoder/), such as a download of nota-ai/bk-sdm-tiny.")
    files = {}
    for component, names in COMPONENT_FILES.items():
        subfolder = folder / component
        if not subfolder.is_dir():
            raise ValueError(f"{folder} has no {component}/ folder; a diffusers-format BK-SDM model has unet/, vae/ "
                             "and text_encoder/ (download the whole repository, such as nota-ai/bk-sdm-tiny).")
        files[component] = next((subfolder / name for name in names if (subfolder / name).is_file()), None)
        if files[component] is None:
            raise ValueError(f"{subfolder} holds none of {', '.join(names)}.")
    return files


def convert_vae(vae: dict) -> dict:
    """The VAE's weights under LDM names, as ComfyUI's SD VAE loads them."""
    import comfy.diffusers_convert
    import comfy.sd

    ldm = comfy.diffusers_convert.convert_vae_state_dict(vae)
    try:
        model = comfy.sd.VAE(sd=dict(ldm)).first_stage_model
    except RuntimeError as error:  # torch's size mismatch on loading, over several lines
        raise ValueError(f"the vae weights do not fit ComfyUI's SD VAE: {' '.join(str(error).split())}") from error
    bk_sdm.check_fit(ldm, bk_sdm.shapes(model), "vae")
    return ldm


def convert_text_encoder(text_encoder: dict) -> dict:
    """The CLIP-L text encoder's weights under the names of an SD1.x checkpoint, relative to cond_stage_model."""
    import comfy.sd1_clip

    clip = {f"transformer.{key}": tensor for key, tensor in text_encoder.items() if key != POSITION_IDS}
    # SD1.x checkpoints carry the text model only; ComfyUI adds its own logit_scale and text_projection
    expected = {key: shape for key, shape in bk_sdm.shapes(comfy.sd1_clip.SDClipModel(device="meta")).items()
                if key.startswith("transformer.text_model.")}
    bk_sdm.check_fit(clip, expected, "text_encoder (CLIP-L)")
    return clip


def load_weights(path: Path) -> dict:
    import comfy.utils

    return comfy.utils.load_torch_file(str(path))


def save_checkpoint(weights: dict, output: Path, dtype: str) -> None:
    """Write ``weights`` as ``dtype`` ("fp16" or "fp32") safetensors, complete or not at all."""
    import safetensors.torch
    import torch

    torch_dtype = {"fp16": torch.float16, "fp32": torch.float32}[dtype]
    partial = output.with_name(output.name + ".partial")
    safetensors.torch.save_file({key: tensor.to(torch_dtype).contiguous() for key, tensor in weights.items()},
                                str(partial))
    partial.replace(output)


def check_output(output: Path, overwrite: bool) -> None:
    if output.suffix != ".safetensors":
        raise ValueError(f"{output} should end in .safetensors, the format this tool writes.")
    if not output.parent.is_dir():
        raise ValueError(f"{output.parent} is not a folder; create it first.")
    if output.exists() and not overwrite:
        raise ValueError(f"{output} exists; pass --overwrite to replace it.")


def convert(folder: Path, output: Path, dtype: str = "fp16", overwrite: bool = False) -> None:
    """Write the diffusers-format BK-SDM model in ``folder`` as one ComfyUI checkpoint at ``output``."""
    check_output(output, overwrite)
    files = find_weights(folder)
    unet, unet_config = bk_sdm.convert_unet(load_weights(files["unet"]))
    print(bk_sdm.describe_unet(unet_config, unet))
    vae = convert_vae(load_weights(files["vae"]))
    clip = convert_text_encoder(load_weights(files["text_encoder"]))
    print(f"VAE: {bk_sdm.parameters(vae)}; text encoder (CLIP-L): {bk_sdm.parameters(clip)}")
    checkpoint = {f"{UNET_PREFIX}{key}": tensor for key, tensor in unet.items()}
    checkpoint.update({f"{VAE_PREFIX}{key}": tensor for key, tensor in vae.items()})
    checkpoint.update({f"{CLIP_PREFIX}{key}": tensor for key, tensor in clip.items()})
    save_checkpoint(checkpoint, output, dtype)
    print(f"wrote {output} ({dtype}, {output.stat().st_size / 1e9:.2f} GB)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Convert a diffusers-format BK-SDM model (nota-ai/bk-sdm-tiny, "
                                     "-small, -base) into one ComfyUI checkpoint for CheckpointLoaderSimple.")
    parser.add_argument("diffusers_folder", type=Path, help="the model's folder, with unet/, vae/ and text_encoder/")
    parser.add_argument("output", type=Path, help="the checkpoint to write, e.g. ComfyUI/models/checkpoints/"
                        "bk-sdm-tiny.safetensors")
    parser.add_argument("--comfyui", help="the ComfyUI folder (default: $COMFYUI_PATH, the ComfyUI this pack is "
                        "installed in, or ~/ComfyUI)")
    parser.add_argument("--dtype", choices=DTYPES, default="fp16", help="weight precision to write (default fp16)")
    parser.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        host = locate_comfyui(args.comfyui)
        print(f"ComfyUI {comfyui_version(host)} at {host}")
        use_host(cpu=True, host=host)  # conversion needs no GPU
        convert(args.diffusers_folder.resolve(), args.output.resolve(), args.dtype, args.overwrite)
    except (ValueError, HostNotFound) as error:
        sys.exit(f"bk_sdm_to_checkpoint: {error}")


if __name__ == "__main__":
    main()
