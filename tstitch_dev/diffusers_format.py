"""Seeded random-weight models in diffusers' layout, as nota-ai publishes BK-SDM: the LDM builders' weights renamed
by ComfyUI's own tables read backwards (comfy.utils.unet_to_diffusers for the UNet, comfy.diffusers_convert's VAE
table, and for CLIP-L the transformers names ComfyUI's CLIP shares)."""

from __future__ import annotations

from pathlib import Path

from .models import (MODEL_CACHE, UNetSpec, _built_once, _save, build_sd15_text_encoder, build_vae,
                     ensure_diffusion_model, unet_config)

# BK-SDM's pruning at test size: one resnet per level and no middle block, the layout whose LDM numbering
# the diffusers project's conversion script leaves gaps in
BK_SDM_SHAPED = UNetSpec("bk-sdm-shaped", "sd15", (1, 2), (1, 1), (1, 1), middle_block=False, seed=41)
# BK-SDM-Base keeps the middle block; two transformer blocks per attention exercise transformer_blocks.1
BK_SDM_BASE_SHAPED = UNetSpec("bk-sdm-base-shaped", "sd15", (1, 2), (1, 1), (2, 2), middle_block=True, seed=42)
# the files of a diffusers model folder, as in nota-ai/bk-sdm-tiny (its text encoder a .bin from older transformers)
WEIGHT_FILES = {"unet": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
                "text_encoder": "pytorch_model.bin"}


def ldm_unet(spec: UNetSpec) -> dict:
    """``spec``'s fp16 weights under LDM names, as its cached diffusion-model file holds them."""
    import comfy.utils

    return comfy.utils.load_torch_file(str(ensure_diffusion_model(spec)))


def diffusers_unet(spec: UNetSpec, ldm: dict) -> dict:
    """``ldm`` under diffusers names, by ComfyUI's diffusers -> LDM table read backwards."""
    import comfy.utils

    from_ldm = {ldm_key: key for key, ldm_key in comfy.utils.unet_to_diffusers(unet_config(spec)).items()}
    return {from_ldm[key]: tensor for key, tensor in ldm.items()}


def ensure_diffusers_unet(spec: UNetSpec, folder: Path = MODEL_CACHE) -> Path:
    """Path of ``spec``'s fp16 UNet under diffusers names, a stand-in for a published unet/diffusion_pytorch_model
    .safetensors (BK-SDM's, for a BK-SDM-shaped spec), built once."""
    path = folder / spec.file_name.replace(".safetensors", "-diffusers.safetensors")
    return _built_once(path, lambda partial: _save(diffusers_unet(spec, ldm_unet(spec)), partial))


def diffusers_vae(ldm: dict) -> dict:
    """An LDM VAE under diffusers names, by comfy.diffusers_convert's tables read backwards."""
    from comfy.diffusers_convert import vae_conversion_map, vae_conversion_map_attn

    # the current diffusers attention names (to_q, to_out.0), not the older query/proj_attn ones
    attention_names = [(sd, hf) for sd, hf in vae_conversion_map_attn if hf.startswith(("group_norm", "to_"))]
    diffusers = {}
    for key, tensor in ldm.items():
        for sd_part, hf_part in vae_conversion_map:
            key = key.replace(sd_part, hf_part)
        if ".attentions.0." in key:
            block, name = key.split(".attentions.0.")
            sd_part, hf_part = next((sd, hf) for sd, hf in attention_names if name.startswith(sd))
            key = f"{block}.attentions.0.{hf_part}{name[len(sd_part):]}"
            tensor = tensor.flatten(1) if tensor.ndim == 4 else tensor  # diffusers' linear for LDM's 1x1 conv
        diffusers[key] = tensor
    return diffusers


def build_ldm_parts(spec: UNetSpec, vae_seed: int = 43, text_encoder_seed: int = 44) -> dict:
    """Seeded random fp16 weights in checkpoint layout, without the prefixes: unet, vae and clip (text model)."""
    vae = {key.removeprefix("first_stage_model."): tensor.half() for key, tensor in build_vae(vae_seed).items()}
    text_encoder = build_sd15_text_encoder(text_encoder_seed)
    clip = {key.removeprefix("cond_stage_model."): tensor.half() for key, tensor in text_encoder.items()
            if key.startswith("cond_stage_model.transformer.text_model.")}
    return {"unet": ldm_unet(spec), "vae": vae, "clip": clip}


def diffusers_components(spec: UNetSpec, ldm_parts: dict) -> dict:
    """``ldm_parts`` (from build_ldm_parts) as a diffusers folder's unet, vae and text_encoder weights."""
    import torch

    text_encoder = {key.removeprefix("transformer."): tensor for key, tensor in ldm_parts["clip"].items()}
    # older transformers saved this buffer, as in BK-SDM's text_encoder/pytorch_model.bin
    text_encoder["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    return {"unet": diffusers_unet(spec, ldm_parts["unet"]), "vae": diffusers_vae(ldm_parts["vae"]),
            "text_encoder": text_encoder}


def write_component(folder: Path, component: str, weights: dict) -> Path:
    """``weights`` as ``folder``/<component>/ holds them in a diffusers model folder."""
    import safetensors.torch
    import torch

    path = folder / component / WEIGHT_FILES[component]
    path.parent.mkdir(parents=True)
    if path.suffix == ".bin":
        torch.save(weights, path)
    else:
        safetensors.torch.save_file(weights, str(path))
    return path
