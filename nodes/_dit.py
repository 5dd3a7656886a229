"""DiT (Peebles & Xie, "Scalable Diffusion Models with Transformers") as a ComfyUI model.

Written from the paper: patch embedding, fixed 2-D sin-cos positions, transformer blocks whose
LayerNorms are modulated by the timestep and class embedding (adaLN-Zero), a modulated final layer.
Built on ComfyUI's ops and attention, so manual casting, fp16/bf16 and low-VRAM loading work as for
any core model, and on its BaseModel and ModelPatcher, so every sampler and T-Stitch's pair take it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
from collections.abc import Mapping

import comfy.latent_formats
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.model_sampling
import comfy.supported_models_base
import comfy.utils
import torch
from comfy.ldm.common_dit import pad_to_patch_size
from comfy.ldm.modules.attention import optimized_attention
from torch import nn

from ..tstitch_core.dit import (NULL_CLASS, DiTShape, compute_respaced_timesteps, guide_leading_channels,
                                read_dit_shape, sincos_positions, timestep_frequencies, unwrap_training_checkpoint,
                                TIMESTEP_FREQUENCIES)
from ..tstitch_core.messages import quote_input

log = logging.getLogger(__name__)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, width, heads, dtype, device, operations):
        super().__init__()
        self.heads = heads
        self.qkv = operations.Linear(width, 3 * width, dtype=dtype, device=device)
        self.proj = operations.Linear(width, width, dtype=dtype, device=device)

    def forward(self, x, transformer_options):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(optimized_attention(q, k, v, self.heads, transformer_options=transformer_options))


class MLP(nn.Module):
    def __init__(self, width, dtype, device, operations):
        super().__init__()
        self.fc1 = operations.Linear(width, 4 * width, dtype=dtype, device=device)
        self.fc2 = operations.Linear(4 * width, width, dtype=dtype, device=device)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Attention and MLP, each on a LayerNorm shifted and scaled by the conditioning, its output gated by it."""

    def __init__(self, width, heads, dtype, device, operations):
        super().__init__()
        self.norm1 = operations.LayerNorm(width, elementwise_affine=False, eps=1e-6, dtype=dtype, device=device)
        self.attn = Attention(width, heads, dtype, device, operations)
        self.norm2 = operations.LayerNorm(width, elementwise_affine=False, eps=1e-6, dtype=dtype, device=device)
        self.mlp = MLP(width, dtype, device, operations)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), operations.Linear(width, 6 * width, dtype=dtype, device=device))

    def forward(self, x, c, transformer_options):
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=-1)
        x = x + gate_msa[:, None] * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), transformer_options)
        return x + gate_mlp[:, None] * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    def __init__(self, width, patch_size, out_channels, dtype, device, operations):
        super().__init__()
        self.norm_final = operations.LayerNorm(width, elementwise_affine=False, eps=1e-6, dtype=dtype, device=device)
        self.linear = operations.Linear(width, patch_size * patch_size * out_channels, dtype=dtype, device=device)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), operations.Linear(width, 2 * width, dtype=dtype, device=device))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class PatchEmbed(nn.Module):
    def __init__(self, in_channels, width, patch_size, dtype, device, operations):
        super().__init__()
        self.proj = operations.Conv2d(in_channels, width, patch_size, stride=patch_size, dtype=dtype, device=device)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    def __init__(self, width, dtype, device, operations):
        super().__init__()
        self.mlp = nn.Sequential(operations.Linear(TIMESTEP_FREQUENCIES, width, dtype=dtype, device=device), nn.SiLU(),
                                 operations.Linear(width, width, dtype=dtype, device=device))

    def forward(self, t, dtype):
        return self.mlp(timestep_frequencies(t).to(dtype))


class ClassEmbedder(nn.Module):
    """One learned vector per class. The conditioning holds weights over the classes (one-hot from the
    ImageNet Class node), so the embedding is a product with the table, a bias-free linear layer that runs
    through ComfyUI's ops (casting, low-VRAM, dynamic loading) like every other weight; averaged
    conditionings blend classes."""

    def __init__(self, rows, width, dtype, device, operations):
        super().__init__()
        # stored in the checkpoints as (rows, width); DiTImageNet.process_unet_state_dict transposes it
        self.embedding_table = operations.Linear(rows, width, bias=False, dtype=dtype, device=device)

    def forward(self, class_weights):
        rows = self.embedding_table.in_features
        if class_weights.shape[-1] != rows:
            node = ("the ImageNet Class (T-Stitch) node" if rows == NULL_CLASS + 1 else
                    "the Class Index (T-Stitch) node, given this model")
            raise ValueError(
                f"T-Stitch DiT: this model takes a class ({rows - 1} classes and the null class: {rows} class "
                f"weights) as its conditioning, but got a conditioning {class_weights.shape[-1]} wide (a text "
                f"prompt's, or another DiT's classes?). Make its positive and negative with {node}.")
        return self.embedding_table(class_weights)


class DiT(nn.Module):
    def __init__(self, depth, width, heads, patch_size, in_channels, out_channels, grid_size, class_rows,
                 image_model=None, dtype=None, device=None, operations=None, **kwargs):
        super().__init__()
        self.dtype = dtype
        self.patch_size, self.in_channels, self.out_channels = patch_size, in_channels, out_channels
        self.x_embedder = PatchEmbed(in_channels, width, patch_size, dtype, device, operations)
        self.t_embedder = TimestepEmbedder(width, dtype, device, operations)
        self.y_embedder = ClassEmbedder(class_rows, width, dtype, device, operations)
        # fixed, but stored in the checkpoints; loaded with them
        self.pos_embed = nn.Parameter(torch.empty(1, grid_size * grid_size, width, dtype=dtype, device=device),
                                      requires_grad=False)
        self.blocks = nn.ModuleList([Block(width, heads, dtype, device, operations) for _ in range(depth)])
        self.final_layer = FinalLayer(width, patch_size, out_channels, dtype, device, operations)

    def positions(self, grid_height, grid_width, like):
        if grid_height * grid_width == self.pos_embed.shape[1] and grid_height == grid_width:
            return comfy.model_management.cast_to_device(self.pos_embed, like.device, like.dtype)
        # another resolution than the training one: the same formula on this grid
        return sincos_positions(self.pos_embed.shape[2], grid_height, grid_width)[None].to(like.device, like.dtype)

    def forward(self, x, timesteps, context=None, control=None, transformer_options={}, **kwargs):
        if context is None:
            raise ValueError("T-Stitch DiT: no class conditioning. Connect the ImageNet Class (T-Stitch) node's "
                             "positive and negative to the sampler.")
        height, width = x.shape[-2:]
        p = self.patch_size
        x = pad_to_patch_size(x, (p, p))
        grid_height, grid_width = x.shape[-2] // p, x.shape[-1] // p
        tokens = self.x_embedder(x)
        tokens = tokens + self.positions(grid_height, grid_width, tokens)
        # a conditioning has one row per token; batching conditionings of other lengths repeats rows
        class_weights = context.mean(dim=1)
        c = self.t_embedder(timesteps, tokens.dtype) + self.y_embedder(class_weights.to(tokens.dtype))
        for block in self.blocks:
            tokens = block(tokens, c, transformer_options)
        tokens = self.final_layer(tokens, c)
        out = tokens.reshape(tokens.shape[0], grid_height, grid_width, p, p, self.out_channels)
        out = out.permute(0, 5, 1, 3, 2, 4).reshape(tokens.shape[0], self.out_channels, grid_height * p, grid_width * p)
        # learned-sigma checkpoints also predict the variance: sample with the noise half, as the paper does
        return out[:, :self.in_channels, :height, :width]


class DiTImageNet(comfy.supported_models_base.BASE):
    """Class-conditional DiT on SD's VAE latents with DDPM's linear betas (1e-4 to 0.02, 1000 steps)."""

    unet_config = {"image_model": "tstitch_dit"}
    unet_extra_config = {}
    # ComfyUI's "sqrt_linear" is betas spaced linearly (its "linear" spaces their square roots)
    sampling_settings = {"beta_schedule": "sqrt_linear", "linear_start": 1e-4, "linear_end": 0.02}
    latent_format = comfy.latent_formats.SD15
    supported_inference_dtypes = [torch.float16, torch.bfloat16, torch.float32]

    def get_model(self, state_dict, prefix="", device=None):
        return DiTModel(self, device=device)

    def process_unet_state_dict(self, state_dict):
        table = "y_embedder.embedding_table.weight"
        if table in state_dict:
            state_dict[table] = state_dict[table].t().contiguous()
        return state_dict


class DiTModel(comfy.model_base.BaseModel):
    def __init__(self, model_config, model_type=comfy.model_base.ModelType.EPS, device=None):
        super().__init__(model_config, model_type, device=device, unet_model=DiT)


def is_dit(model: comfy.model_patcher.ModelPatcher) -> bool:
    return isinstance(model.model, DiTModel)


def dit_class_rows(model: comfy.model_patcher.ModelPatcher) -> int | None:
    """Rows of the model's class table (its classes and the null class, last), or None if it is no DiT.
    A pair's is its large model's: the pair runs one conditioning through both."""
    if not is_dit(model):
        return None
    return model.model.diffusion_model.y_embedder.embedding_table.in_features


def load_dit(path: str, weight_dtype: torch.dtype | None = None,
             disable_dynamic: bool = False) -> comfy.model_patcher.ModelPatcher:
    """A DiT checkpoint (``.pt`` or ``.safetensors``, original layout) as a ComfyUI MODEL, loaded the way
    ComfyUI loads a diffusion model: its dtype and manual casting chosen by model management. ComfyUI 0.33
    reloads it with ``disable_dynamic=True`` (``cached_patcher_init``) where it needs a plain ModelPatcher."""
    # DiT's training checkpoints keep their argparse options beside the weights; allow that one plain class
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    name = os.path.basename(path)
    try:
        with safe_globals([argparse.Namespace]) if safe_globals else contextlib.nullcontext():
            # safe_load: hosts before 0.33 otherwise unpickle arbitrary objects from a .pt
            checkpoint, metadata = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    except Exception as error:  # a damaged or foreign file: say which, not a bare error from deep in torch
        raise ValueError(f"T-Stitch DiT loader: {name} could not be read as a checkpoint ({type(error).__name__}: "
                         f"{quote_input(error, 300)}). The file may be damaged or not a .pt/.safetensors of "
                         "weights: download it again.") from error
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"T-Stitch DiT loader: {name} holds a {type(checkpoint).__name__}, not a dictionary of "
                         "weights; a DiT checkpoint is a state dict (or a training checkpoint with one under "
                         "\"ema\" or \"model\").")
    state_dict = dict(unwrap_training_checkpoint(checkpoint))
    shape = read_dit_shape({k: tuple(v.shape) for k, v in state_dict.items() if hasattr(v, "shape")},
                           source=name, heads=(metadata or {}).get("dit_heads"))
    model = build_dit(shape, state_dict, weight_dtype, disable_dynamic)
    model.cached_patcher_init = (load_dit, (path, weight_dtype))
    log.info("T-Stitch: loaded %s from %s", shape.name, path)
    return model


def build_dit(shape: DiTShape, state_dict: dict, weight_dtype: torch.dtype | None = None,
              disable_dynamic: bool = False):
    config = DiTImageNet({**DiTImageNet.unet_config, **shape.unet_config()})
    load_device = comfy.model_management.get_torch_device()
    offload_device = comfy.model_management.unet_offload_device()
    dtypes = list(config.supported_inference_dtypes)
    unet_dtype = weight_dtype or comfy.model_management.unet_dtype(
        model_params=comfy.utils.calculate_parameters(state_dict), supported_dtypes=dtypes,
        weight_dtype=comfy.utils.weight_dtype(state_dict))
    config.set_inference_dtype(unet_dtype, comfy.model_management.unet_manual_cast(unet_dtype, load_device, dtypes))
    model = config.get_model(state_dict)
    # ComfyUI 0.33 loads weights in place for its dynamic patcher; older hosts have only ModelPatcher
    patcher_class = comfy.model_patcher.ModelPatcher if disable_dynamic else getattr(
        comfy.model_patcher, "CoreModelPatcher", comfy.model_patcher.ModelPatcher)
    patcher = patcher_class(model, load_device=load_device, offload_device=offload_device)
    if not comfy.model_management.is_device_cpu(offload_device):
        model.to(offload_device)
    if getattr(patcher, "is_dynamic", lambda: False)():
        model.load_model_weights(state_dict, "", assign=True)
    else:
        model.load_model_weights(state_dict, "")
    return patcher


def dit_cfg_function(args: dict) -> torch.Tensor:
    """ComfyUI's ``sampler_cfg_function`` for DiT's own guidance: the first three latent channels guided, the
    fourth the class's prediction. ``cond`` and ``uncond`` are x - denoised (sigma times the predicted noise),
    so guiding them channel by channel guides the noise prediction channel by channel, as DiT's samplers do."""
    if math.isclose(args["cond_scale"], 1.0):
        return args["cond"]  # cfg 1: ComfyUI skips the unconditional pass
    return guide_leading_channels(args["cond"], args["uncond"], args["cond_scale"])


def dit_sigmas(model_sampling, steps: int) -> torch.Tensor:
    """The sigmas of DiT's respaced timesteps (``compute_respaced_timesteps``) on this model's own 1000-step
    table, then 0: the last step goes from t = 0 to the clean image, as DDIM's does."""
    if (not isinstance(model_sampling, comfy.model_sampling.ModelSamplingDiscrete)
            or isinstance(model_sampling, comfy.model_sampling.ModelSamplingDiscreteEDM)):
        raise ValueError(
            f"DiT Scheduler: this model samples with {type(model_sampling).__name__}, not a table of discrete "
            "timesteps (DiT, SD1.x, SDXL), so DiT's timesteps mean nothing for it. Use BasicScheduler.")
    table = model_sampling.sigmas.float().cpu()
    timesteps = compute_respaced_timesteps(steps, len(table))
    return torch.cat([table[timesteps], table.new_zeros(1)])
