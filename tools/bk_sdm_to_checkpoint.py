"""Convert a BK-SDM model in diffusers format into one ComfyUI checkpoint: UNet, VAE and CLIP-L text encoder.

BK-SDM (nota-ai/bk-sdm-tiny, -small, -base) is published only as diffusers folders. ComfyUI reads a
pruned UNet in the LDM layout when its blocks are numbered contiguously, so this reads the layout
from the weights themselves and renames them with ComfyUI's own diffusers tables. Run it with the
Python that runs ComfyUI:

    python custom_nodes/comfyui-tstitch/tools/bk_sdm_to_checkpoint.py path/to/bk-sdm-tiny \\
        path/to/ComfyUI/models/checkpoints/bk-sdm-tiny.safetensors

ComfyUI is found from --comfyui, $COMFYUI_PATH, the ComfyUI this pack is installed in, or ~/ComfyUI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PACK_ROOT = Path(__file__).absolute().parent.parent  # unresolved, so a symlinked install finds its ComfyUI
if str(PACK_ROOT) not in sys.path:  # tstitch_dev, when run as a plain script
    sys.path.insert(0, str(PACK_ROOT))

from tstitch_dev.comfy_env import use_host  # noqa: E402
from tstitch_dev.host import HostNotFound, comfyui_version, find_comfyui, is_comfyui  # noqa: E402

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
SHOWN_KEYS = 5


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


def list_keys(keys, original_names: dict | None = None) -> str:
    """The first few ``keys`` for a message, each with its diffusers name where it has one."""
    original_names = {} if original_names is None else original_names
    shown = [f"{key} ({original_names[key]})" if key in original_names else key for key in sorted(keys)[:SHOWN_KEYS]]
    more = len(keys) - SHOWN_KEYS
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def check_fit(weights: dict, expected: dict, what: str, original_names: dict | None = None) -> None:
    """Refuse ``weights`` unless their names and shapes are exactly ``expected``'s (name -> shape)."""
    missing = expected.keys() - weights.keys()
    extra = weights.keys() - expected.keys()
    misshapen = [key for key in sorted(expected.keys() & weights.keys()) if weights[key].shape != expected[key]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {list_keys(missing, original_names)}")
    if extra:
        problems.append(f"{len(extra)} left over: {list_keys(extra, original_names)}")
    if misshapen:
        problems.append(", ".join(f"{key} is {tuple(weights[key].shape)}, expected {tuple(expected[key])}"
                                  for key in misshapen[:SHOWN_KEYS]))
    if problems:
        raise ValueError(f"the {what} weights do not fit the model ComfyUI builds for them: {'; '.join(problems)}.")


def shapes(module) -> dict:
    return {key: tensor.shape for key, tensor in module.state_dict().items()}


def transformer_depth(keys: list, attention_prefix: str) -> int:
    from comfy.model_detection import count_blocks

    return count_blocks(keys, attention_prefix + "transformer_blocks.{}.")


def read_unet_layout(unet: dict) -> dict:
    """The UNet's block layout as ComfyUI's unet_config fields, read from its diffusers weight names and shapes."""
    from comfy.model_detection import count_blocks

    keys = list(unet)
    if "conv_in.weight" not in unet:
        raise ValueError("the unet weights have no conv_in.weight: this is not a diffusers UNet.")
    levels = count_blocks(keys, "down_blocks.{}.")
    resnets = [count_blocks(keys, f"down_blocks.{level}.resnets.{{}}.") for level in range(levels)]
    if levels == 0 or 0 in resnets:
        raise ValueError(f"the unet's down_blocks hold {resnets} resnets per level: expected at least one per level.")
    up_resnets = [count_blocks(keys, f"up_blocks.{level}.resnets.{{}}.") for level in range(levels)]
    # an LDM UNet's up level has one resnet more than its down level, innermost level first
    mirrored = [blocks + 1 for blocks in reversed(resnets)]
    if count_blocks(keys, "up_blocks.{}.") != levels or up_resnets != mirrored:
        raise ValueError(f"the unet's up_blocks hold {up_resnets} resnets per level; for down_blocks with {resnets} "
                         f"an LDM UNet needs {mirrored}.")
    model_channels = unet["conv_in.weight"].shape[0]
    if any(key.startswith("mid_block.attentions.") for key in keys):
        middle = transformer_depth(keys, "mid_block.attentions.0.")
    else:
        middle = -1 if any(key.startswith("mid_block.") for key in keys) else -2  # ComfyUI: -2 is no middle block
    return dict(
        num_res_blocks=resnets,
        channel_mult=[unet[f"down_blocks.{level}.resnets.0.conv2.weight"].shape[0] // model_channels
                      for level in range(levels)],
        transformer_depth=[transformer_depth(keys, f"down_blocks.{level}.attentions.{block}.")
                           for level in range(levels) for block in range(resnets[level])],
        # ComfyUI lists output depths from the outermost level, up_blocks start at the innermost
        transformer_depth_output=[transformer_depth(keys, f"up_blocks.{level}.attentions.{block}.")
                                  for level in range(levels) for block in range(up_resnets[level])][::-1],
        transformer_depth_middle=middle,
    )


def expected_unet_shapes(model_config) -> dict:
    """Weight shapes of the UNet ComfyUI builds for ``model_config``, built on the meta device (no memory)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    return shapes(UNetModel(**model_config.unet_config, device="meta", operations=comfy.ops.disable_weight_init))


def convert_unet(unet: dict) -> tuple[dict, dict]:
    """The UNet's weights under LDM names, contiguously numbered, and the unet_config ComfyUI detects for them."""
    import comfy.model_detection
    import comfy.supported_models
    import comfy.utils

    layout = read_unet_layout(unet)
    to_ldm = comfy.utils.unet_to_diffusers(layout)  # keyed by diffusers name despite its name
    unmapped = unet.keys() - to_ldm.keys()
    if unmapped:
        raise ValueError(f"{len(unmapped)} unet weights have no place in the layout read from the others "
                         f"({layout}): {list_keys(unmapped)}.")
    ldm = {}
    for key, tensor in unet.items():
        if to_ldm[key] in ldm:
            raise ValueError(f"two unet weights, {key} and another, both map to {to_ldm[key]}.")
        ldm[to_ldm[key]] = tensor
    model_config = comfy.model_detection.model_config_from_unet(ldm, "")
    if type(model_config) is not comfy.supported_models.SD15:
        detected = "no model it supports" if model_config is None else type(model_config).__name__
        raise ValueError(f"ComfyUI detects this UNet as {detected}, not SD15: this tool converts the SD1.x-based "
                         "BK-SDM models (bk-sdm-tiny, bk-sdm-small, bk-sdm-base).")
    check_fit(ldm, expected_unet_shapes(model_config), "unet", {ldm_key: key for key, ldm_key in to_ldm.items()})
    return ldm, model_config.unet_config


def convert_vae(vae: dict) -> dict:
    """The VAE's weights under LDM names, as ComfyUI's SD VAE loads them."""
    import comfy.diffusers_convert
    import comfy.sd

    ldm = comfy.diffusers_convert.convert_vae_state_dict(vae)
    try:
        model = comfy.sd.VAE(sd=dict(ldm)).first_stage_model
    except RuntimeError as error:  # torch's size mismatch on loading, over several lines
        raise ValueError(f"the vae weights do not fit ComfyUI's SD VAE: {' '.join(str(error).split())}") from error
    check_fit(ldm, shapes(model), "vae")
    return ldm


def convert_text_encoder(text_encoder: dict) -> dict:
    """The CLIP-L text encoder's weights under the names of an SD1.x checkpoint, relative to cond_stage_model."""
    import comfy.sd1_clip

    clip = {f"transformer.{key}": tensor for key, tensor in text_encoder.items() if key != POSITION_IDS}
    # SD1.x checkpoints carry the text model only; ComfyUI adds its own logit_scale and text_projection
    expected = {key: shape for key, shape in shapes(comfy.sd1_clip.SDClipModel(device="meta")).items()
                if key.startswith("transformer.text_model.")}
    check_fit(clip, expected, "text_encoder (CLIP-L)")
    return clip


def parameters(weights: dict) -> str:
    return f"{sum(tensor.numel() for tensor in weights.values()) / 1e6:.1f}M parameters"


def describe_unet(config: dict, unet: dict) -> str:
    middle = config["transformer_depth_middle"]
    middle_block = "no middle block" if middle == -2 else f"middle block with {max(middle, 0)} transformer blocks"
    return (f"UNet: {len(config['channel_mult'])} levels, channel_mult {config['channel_mult']}, "
            f"resnets per level {config['num_res_blocks']} down and {[n + 1 for n in config['num_res_blocks']]} up, "
            f"transformer blocks {config['transformer_depth']} down and {config['transformer_depth_output']} up, "
            f"{middle_block}; ComfyUI detects SD15; {parameters(unet)}")


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
    unet, unet_config = convert_unet(load_weights(files["unet"]))
    print(describe_unet(unet_config, unet))
    vae = convert_vae(load_weights(files["vae"]))
    clip = convert_text_encoder(load_weights(files["text_encoder"]))
    print(f"VAE: {parameters(vae)}; text encoder (CLIP-L): {parameters(clip)}")
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
