"""Seeded random-weight diffusion models in ComfyUI's formats, built on demand and cached on disk.

Nothing here is a trained model: images sampled from them are noise. They have the real
layouts (an SD1.5-shaped UNet is detected by ComfyUI as SD15), so ComfyUI's loaders,
samplers and model management treat them as the real thing, and at full size they cost
what the real models cost per step.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from .host import CACHE_DIR

FACTORY_VERSION = 1
MODEL_CACHE = CACHE_DIR / "models"


@dataclass(frozen=True)
class UNetSpec:
    """An SD-family UNet: ``family`` picks the text/ADM dimensions ComfyUI detects it by."""

    name: str
    family: str  # "sd15" or "sdxl"
    channel_mult: tuple[int, ...]
    num_res_blocks: tuple[int, ...]
    transformer_depth: tuple[int, ...]  # per level
    middle_block: bool
    seed: int = 0

    @property
    def file_name(self) -> str:
        digest = hashlib.sha1(json.dumps([FACTORY_VERSION, asdict(self)]).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}.safetensors"


# Test-sized models: two depths of SD1.5 that ComfyUI detects as SD15, and a narrow SDXL-family
# one (detected as KOALA_700M, whose transformer depths it copies) for the mismatch errors.
TINY_SD15_SMALL = UNetSpec("tiny-sd15-small", "sd15", (1, 2), (1, 1), (1, 1), middle_block=False, seed=1)
TINY_SD15_LARGE = UNetSpec("tiny-sd15-large", "sd15", (1, 2), (2, 2), (1, 1), middle_block=True, seed=2)
TINY_SDXL = UNetSpec("tiny-sdxl", "sdxl", (1, 1, 1), (1, 1, 1), (0, 2, 5), middle_block=False, seed=3)

# Real architectures as ComfyUI detects them (parameter counts in HOST-NOTES).
SD15 = UNetSpec("sd15", "sd15", (1, 2, 4, 4), (2, 2, 2, 2), (1, 1, 1, 0), middle_block=True, seed=10)
BK_SDM_TINY = UNetSpec("bk-sdm-tiny", "sd15", (1, 2, 4), (1, 1, 1), (1, 1, 1), middle_block=False, seed=11)

_FAMILY_CONFIG = {
    "sd15": dict(context_dim=768, use_linear_in_transformer=False, adm_in_channels=None, num_heads=8,
                 num_head_channels=-1),
    "sdxl": dict(context_dim=2048, use_linear_in_transformer=True, adm_in_channels=2816, num_classes="sequential", num_heads=-1,
                 num_head_channels=64),
}


def unet_config(spec: UNetSpec) -> dict:
    """Keyword arguments for ComfyUI's ``UNetModel`` that build ``spec``."""
    depth_in, depth_out = [], []
    for level, blocks in enumerate(spec.num_res_blocks):
        depth_in += [spec.transformer_depth[level]] * blocks
        depth_out += [spec.transformer_depth[level]] * (blocks + 1)
    return dict(
        image_size=32, in_channels=4, out_channels=4, model_channels=320,
        num_res_blocks=list(spec.num_res_blocks), channel_mult=list(spec.channel_mult),
        transformer_depth=depth_in, transformer_depth_output=depth_out,
        transformer_depth_middle=max(spec.transformer_depth) if spec.middle_block else -2,
        use_spatial_transformer=True, legacy=False, use_temporal_attention=False, use_temporal_resblock=False,
        **_FAMILY_CONFIG[spec.family],
    )


def build_unet_state_dict(spec: UNetSpec) -> dict:
    """Seeded random weights for ``spec``, keys in ComfyUI's (LDM) layout."""
    import torch
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**unet_config(spec), dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
    generator = torch.Generator().manual_seed(spec.seed)
    with torch.no_grad():
        for name, tensor in unet.state_dict().items():
            if tensor.ndim >= 2:  # conv / linear: fan-in scaled, so activations keep their size
                tensor.normal_(0.0, tensor[0].numel() ** -0.5, generator=generator)
            elif name.endswith("weight"):  # norms
                tensor.fill_(1.0)
            else:
                tensor.normal_(0.0, 0.02, generator=generator)
    return {k: v.contiguous() for k, v in unet.state_dict().items()}


def ensure_diffusion_model(spec: UNetSpec, folder: Path = MODEL_CACHE) -> Path:
    """Path of ``spec`` saved as a diffusion-model safetensors file (the UNETLoader format), built once."""
    import safetensors.torch
    import torch

    path = folder / spec.file_name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        state_dict = {k: v.to(torch.float16) for k, v in build_unet_state_dict(spec).items()}
        partial = path.with_suffix(".partial")
        safetensors.torch.save_file(state_dict, str(partial), metadata={"tstitch": "random weights, not a trained model"})
        partial.rename(path)
    return path
