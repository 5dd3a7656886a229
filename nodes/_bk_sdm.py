"""A BK-SDM UNet (nota-ai/bk-sdm-tiny, -small, -base) from its diffusers weights to ComfyUI's LDM layout.

ComfyUI reads a pruned UNet in the LDM layout when its blocks are numbered contiguously, so this reads the layout
from the weights themselves and renames them with ComfyUI's own diffusers tables. Shared by the BK-SDM loader node
and tools/bk_sdm_to_checkpoint.py, which loads this file by path before it has found ComfyUI: so it imports comfy
inside the functions and nothing of the pack.
"""

from __future__ import annotations

SHOWN_KEYS = 5


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


def plan_unet_conversion(unet: dict) -> tuple[dict, dict]:
    """The LDM name, contiguously numbered, of each of the UNet's diffusers weights, and the unet_config ComfyUI
    detects for the renamed weights; refuses, by name, weights that do not fit ComfyUI's SD1.5 UNet."""
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
        raise ValueError(f"ComfyUI detects this UNet as {detected}, not SD15: the BK-SDM models (bk-sdm-tiny, "
                         "bk-sdm-small, bk-sdm-base) are SD1.x-based.")
    check_fit(ldm, expected_unet_shapes(model_config), "unet", {ldm_key: key for key, ldm_key in to_ldm.items()})
    return {key: to_ldm[key] for key in unet}, model_config.unet_config


def rename_unet(unet: dict, to_ldm: dict) -> dict:
    """``unet``'s tensors under the names ``to_ldm`` gives them (from plan_unet_conversion); no tensor is copied."""
    return {to_ldm[key]: tensor for key, tensor in unet.items()}


def convert_unet(unet: dict) -> tuple[dict, dict]:
    """The UNet's weights under LDM names, contiguously numbered, and the unet_config ComfyUI detects for them."""
    to_ldm, unet_config = plan_unet_conversion(unet)
    return rename_unet(unet, to_ldm), unet_config


def parameters(weights: dict) -> str:
    return f"{sum(tensor.numel() for tensor in weights.values()) / 1e6:.1f}M parameters"


def describe_unet(config: dict, unet: dict) -> str:
    middle = config["transformer_depth_middle"]
    middle_block = "no middle block" if middle == -2 else f"middle block with {max(middle, 0)} transformer blocks"
    return (f"UNet: {len(config['channel_mult'])} levels, channel_mult {config['channel_mult']}, "
            f"resnets per level {config['num_res_blocks']} down and {[n + 1 for n in config['num_res_blocks']]} up, "
            f"transformer blocks {config['transformer_depth']} down and {config['transformer_depth_output']} up, "
            f"{middle_block}; ComfyUI detects SD15; {parameters(unet)}")
