"""Tiny seeded random-weight small/large pairs for the families people stitch in 2026 (issue 25): Flux.1, SD3.5,
LTX-Video, Cosmos Predict2, Flux.2, Kandinsky 5, Wan 2.2 expert + Wan 2.1 1.3B, Qwen-Image.

Each model is built from ComfyUI's own classes through the model config that ComfyUI's detection gives for its
``unet_config`` (so the saved file is detected as that family by UNETLoader), saved and cached like the models in
``models.py``. Each family also has a conditioning maker (the tensor shapes that family's text encoders give) and a
latent shape. Nothing here is trained: what they sample is noise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .host import comfyui_version, find_comfyui
from .models import (FACTORY_VERSION, MODEL_CACHE, TINY_WAN_LARGE, TINY_WAN_SMALL, _built_once, _save,
                     ensure_diffusion_model, randomize_)


_SCALE_NORMS = ("flux", "flux2")  # families whose published files name their q/k norm weights ``scale``


def _frozen(value):
    """Lists as tuples (and dicts as sorted item tuples), so a spec is hashable."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class DetectedSpec:
    """A diffusion model given by the ``unet_config`` ComfyUI's detection reads off its weights.

    ``detected`` is the ComfyUI model config class (comfy.supported_models) the file must be detected as."""

    name: str
    detected: str
    config: tuple  # _frozen(unet_config)
    seed: int = 0

    @property
    def unet_config(self) -> dict:
        return _thawed(dict(self.config))

    @property
    def file_name(self) -> str:
        layout = ["scale-norms"] if dict(self.config).get("image_model") in _SCALE_NORMS else []
        digest = hashlib.sha1(json.dumps([FACTORY_VERSION, "detected", self.detected, self.config, self.seed, *layout],
                                         default=str).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}.safetensors"


def _thawed(value):
    if isinstance(value, dict):
        return {k: _thawed(v) for k, v in value.items()}
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str)
                                                  for v in value):
        return {k: _thawed(v) for k, v in value}  # a nested config dict (SD3's context_embedder_config)
    if isinstance(value, tuple):
        return [_thawed(v) for v in value]
    return value


def _spec(name: str, detected: str, seed: int, **unet_config) -> DetectedSpec:
    return DetectedSpec(name, detected, _frozen(unet_config), seed)


# --- the unet_configs ComfyUI 0.33's detect_unet_config gives for these weights (model_detection.py) ---

def _flux(hidden: int, depth: int, single: int, guidance: bool = True) -> dict:
    # hidden / 128 heads (sum of axes_dim), Flux.1's text and pooled widths
    return dict(image_model="flux", axes_dim=[16, 56, 56], num_heads=hidden // 128, mlp_ratio=4.0, theta=10000,
                out_channels=16, qkv_bias=True, txt_ids_dims=[], in_channels=16, hidden_size=hidden,
                context_in_dim=4096, patch_size=2, vec_in_dim=768, depth=depth, depth_single_blocks=single,
                guidance_embed=guidance, yak_mlp=False, txt_norm=False)


def _flux2(hidden: int, depth: int, single: int, context: int = 7680, guidance: bool = False) -> dict:
    # klein has no guidance embedding and no pooled vector; dev has the guidance embedding
    return dict(image_model="flux2", axes_dim=[32, 32, 32, 32], num_heads=hidden // 128, mlp_ratio=3.0, theta=2000,
                out_channels=128, global_modulation=True, mlp_silu_act=True, qkv_bias=False, ops_bias=False,
                default_ref_method="index", ref_index_scale=10.0, txt_ids_dims=[3], in_channels=128,
                hidden_size=hidden, context_in_dim=context, patch_size=1, vec_in_dim=None, depth=depth,
                depth_single_blocks=single, guidance_embed=guidance, yak_mlp=False, txt_norm=False)


def _mmdit(depth: int, pos_embed_max_size: int, x_block_self_attn_layers=()) -> dict:
    # SD3.5: hidden 64 per depth, CLIP-L + CLIP-G pooled (2048), T5 context (4096), rms qk-norm
    return dict(in_channels=16, patch_size=2, out_channels=16, depth=depth, input_size=None, adm_in_channels=2048,
                context_embedder_config={"target": "torch.nn.Linear",
                                         "params": {"in_features": 4096, "out_features": 64 * depth}},
                num_patches=pos_embed_max_size ** 2, pos_embed_max_size=pos_embed_max_size, qk_norm="rms",
                pos_embed_scaling_factor=None, x_block_self_attn_layers=list(x_block_self_attn_layers))


def _ltxv(head_dim: int, layers: int) -> dict:
    # 32 heads of head_dim; cross_attention_dim is the width after the caption projection from T5's 4096
    return dict(image_model="ltxv", num_layers=layers, attention_head_dim=head_dim, cross_attention_dim=32 * head_dim,
                use_keyframes_abs_pos_embedding=False)


def _cosmos_predict2(channels: int, blocks: int) -> dict:
    # the text-to-image model: 16 latent channels, 1024-wide T5 context
    return dict(image_model="cosmos_predict2", max_img_h=240, max_img_w=240, max_frames=128, in_channels=16,
                out_channels=16, patch_spatial=2, patch_temporal=1, model_channels=channels,
                concat_padding_mask=True, crossattn_emb_channels=1024, pos_emb_cls="rope3d", pos_emb_learnable=True,
                pos_emb_interpolation="crop", min_fps=1, max_fps=30, use_adaln_lora=True, adaln_lora_dim=256,
                num_blocks=blocks, extra_per_block_abs_pos_emb=False, rope_h_extrapolation_ratio=4.0,
                rope_w_extrapolation_ratio=4.0, rope_t_extrapolation_ratio=1.0, extra_h_extrapolation_ratio=1.0,
                extra_w_extrapolation_ratio=1.0, extra_t_extrapolation_ratio=1.0, rope_enable_fps_modulation=False)


def _kandinsky5(model_dim: int, visual_blocks: int) -> dict:
    # the video model's layout (16 latent channels, visual embed 132), Qwen2.5-VL text (3584) + CLIP pooled (768)
    return dict(model_dim=model_dim, time_dim=model_dim, image_model="kandinsky5", ff_dim=2 * model_dim,
                visual_embed_dim=132, num_text_blocks=1, num_visual_blocks=visual_blocks)


def _qwen_image(layers: int) -> dict:
    # detection reads only the depth: every other width is Qwen-Image's own (3072 wide, 3584 text)
    return dict(image_model="qwen_image", in_channels=64, num_layers=layers)


FLUX_SMALL = _spec("tiny-flux-small", "Flux", 51, **_flux(128, 1, 2))
FLUX_LARGE = _spec("tiny-flux-large", "Flux", 52, **_flux(128, 3, 2))
SD35_SMALL = _spec("tiny-sd35-small", "SD3", 53, **_mmdit(2, 32, x_block_self_attn_layers=[0]))  # MMDiT-X
SD35_LARGE = _spec("tiny-sd35-large", "SD3", 54, **_mmdit(3, 16))
LTXV_SMALL = _spec("tiny-ltxv-small", "LTXV", 55, **_ltxv(4, 1))
LTXV_LARGE = _spec("tiny-ltxv-large", "LTXV", 56, **_ltxv(8, 2))
COSMOS_SMALL = _spec("tiny-cosmos-predict2-small", "CosmosT2IPredict2", 57, **_cosmos_predict2(256, 1))
COSMOS_LARGE = _spec("tiny-cosmos-predict2-large", "CosmosT2IPredict2", 58, **_cosmos_predict2(512, 2))
FLUX2_SMALL = _spec("tiny-flux2-klein-small", "Flux2", 59, **_flux2(128, 1, 1))
FLUX2_LARGE = _spec("tiny-flux2-klein-large", "Flux2", 60, **_flux2(256, 2, 2))
# Flux.2 dev in miniature: its text encoder's width (15360) and a guidance embedding; beside a klein-like small
# model (7680) it is the pair one conditioning can't serve
FLUX2_DEV_LARGE = _spec("tiny-flux2-dev-large", "Flux2", 61, **_flux2(256, 2, 2, context=15360, guidance=True))
KANDINSKY5_SMALL = _spec("tiny-kandinsky5-small", "Kandinsky5", 62, **_kandinsky5(128, 1))
KANDINSKY5_LARGE = _spec("tiny-kandinsky5-large", "Kandinsky5", 63, **_kandinsky5(256, 2))
QWEN_IMAGE_SMALL = _spec("tiny-qwen-image-small", "QwenImage", 64, **_qwen_image(1))
QWEN_IMAGE_LARGE = _spec("tiny-qwen-image-large", "QwenImage", 65, **_qwen_image(2))


def build_detected_state_dict(spec: DetectedSpec) -> dict:
    """Seeded random weights for ``spec``, built by the ComfyUI model class its config is detected as."""
    import comfy.model_detection

    model_config = comfy.model_detection.model_config_from_unet_config(spec.unet_config)
    if type(model_config).__name__ != spec.detected:
        raise RuntimeError(f"{spec.name}: ComfyUI takes its config for {type(model_config).__name__}, "
                           f"not {spec.detected}")
    model = model_config.get_model({}, device="cpu")
    state_dict = randomize_(model.diffusion_model, spec.seed)
    if spec.unet_config.get("image_model") in _SCALE_NORMS:
        # the published files name the q/k norms' weights ``scale``; the loader renames them (process_unet_state_dict)
        state_dict = {(key[:-len("weight")] + "scale" if key.endswith("_norm.weight") else key): value
                      for key, value in state_dict.items()}
    return state_dict


def ensure_family_model(spec, folder: Path = MODEL_CACHE) -> Path:
    """Path of ``spec`` (a DetectedSpec, or models.py's WanSpec / UNetSpec) as a diffusion-model file, built once."""
    if not isinstance(spec, DetectedSpec):
        return ensure_diffusion_model(spec, folder)
    return _built_once(folder / spec.file_name, lambda path: _save(build_detected_state_dict(spec), path))


# --- conditioning as each family's text encoders give it (seeded stand-ins for encoded prompts) ---

def _randn(generator, *shape):
    import torch

    return torch.randn(*shape, generator=generator)


def _generator(seed: int):
    import torch

    return torch.Generator().manual_seed(seed)


def flux_conditioning(seed: int) -> list:
    """T5-XXL tokens (4096 wide) with CLIP-L's pooled output (768) and FluxGuidance's 3.5."""
    g = _generator(seed)
    return [[_randn(g, 1, 16, 4096), {"pooled_output": _randn(g, 1, 768), "guidance": 3.5}]]


def sd35_conditioning(seed: int) -> list:
    """CLIP-L + CLIP-G + T5 tokens (4096 wide) with the two CLIPs' pooled outputs (2048)."""
    g = _generator(seed)
    return [[_randn(g, 1, 16, 4096), {"pooled_output": _randn(g, 1, 2048)}]]


def ltxv_conditioning(seed: int) -> list:
    """T5-XXL tokens (4096 wide) with the all-ones (integer) attention mask LTX-Video's text encoder gives."""
    import torch

    g = _generator(seed)
    return [[_randn(g, 1, 16, 4096), {"attention_mask": torch.ones(1, 16, dtype=torch.long)}]]  # as T5 gives it


def cosmos_predict2_conditioning(seed: int) -> list:
    """T5 tokens as Cosmos Predict2 takes them (1024 wide)."""
    return [[_randn(_generator(seed), 1, 16, 1024), {}]]


def flux2_conditioning(seed: int) -> list:
    """Qwen3-4B tokens as Flux.2 klein 4B's text encoder gives them (7680 wide), no pooled output (ComfyUI pads
    Flux.2's text to 512 tokens, which makes even a tiny Flux.2 cost ~1 GFLOP a call in txt_in)."""
    return [[_randn(_generator(seed), 1, 16, 7680), {}]]


def flux2_dev_conditioning(seed: int) -> list:
    """Mistral tokens as Flux.2 dev's text encoder gives them (15360 wide) with FluxGuidance's 4.0."""
    return [[_randn(_generator(seed), 1, 16, 15360), {"guidance": 4.0}]]


def kandinsky5_conditioning(seed: int) -> list:
    """Qwen2.5-VL tokens (3584 wide) with CLIP-L's pooled output (768)."""
    g = _generator(seed)
    return [[_randn(g, 1, 16, 3584), {"pooled_output": _randn(g, 1, 768)}]]


def wan_conditioning(seed: int) -> list:
    """umT5-XXL tokens (4096 wide)."""
    return [[_randn(_generator(seed), 1, 16, 4096), {}]]


def qwen_image_conditioning(seed: int) -> list:
    """Qwen2.5-VL tokens (3584 wide)."""
    return [[_randn(_generator(seed), 1, 16, 3584), {}]]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


@dataclass(frozen=True)
class FamilySpec:
    """A small / large pair of one family, sharing its latent space, text encoders and model sampling."""

    name: str  # what users call it
    small: object  # DetectedSpec, or models.py's WanSpec
    large: object
    detected: str  # the ComfyUI model config class both are detected as
    make_conditioning: Callable[[int], list]
    latent_shape: tuple[int, ...]  # an empty latent of this shape (zeros), batch 1
    scheduler: str = "simple"  # the KSampler scheduler its workflows use
    min_comfyui: str = "0.3.64"  # the oldest ComfyUI these tiny models are known to load on (the hosts tested)
    why_min: str = ""  # why not older (empty where the floor has it)
    sampler_name: str = "euler"  # the sampler its workflows use
    cfg: float = 5.0  # 1.0 for the guidance-distilled (Flux.1 dev, Flux.2 klein): their workflows run no negative
    heavy: bool = False  # widths fixed by detection make it costly (Qwen-Image: ~1.4 GB a layer in fp32)

    def on_host(self, version: str | None = None) -> bool:
        """Does ComfyUI ``version`` (default: the host the tests run against) have this family at these sizes?"""
        version = comfyui_version(find_comfyui(clone=False)) if version is None else version
        return _version(version) >= _version(self.min_comfyui)


FAMILIES: dict[str, FamilySpec] = {
    "flux": FamilySpec("Flux.1", FLUX_SMALL, FLUX_LARGE, "Flux", flux_conditioning, (1, 16, 8, 8), cfg=1.0,
                       min_comfyui="0.33.0",
                       why_min="ComfyUI 0.3.64 takes every Flux.1 to be 3072 wide (24 heads) whatever its weights say"),
    "sd35": FamilySpec("SD3.5", SD35_SMALL, SD35_LARGE, "SD3", sd35_conditioning, (1, 16, 8, 8),
                       scheduler="sgm_uniform", sampler_name="dpmpp_2m"),
    "ltxv": FamilySpec("LTX-Video", LTXV_SMALL, LTXV_LARGE, "LTXV", ltxv_conditioning, (1, 128, 2, 4, 4)),
    "cosmos_predict2": FamilySpec("Cosmos Predict2", COSMOS_SMALL, COSMOS_LARGE, "CosmosT2IPredict2",
                                  cosmos_predict2_conditioning, (1, 16, 1, 8, 8), sampler_name="res_multistep",
                                  min_comfyui="0.33.0",
                                  why_min="ComfyUI 0.3.64 reads a Cosmos Predict2's depth and heads only for the "
                                          "2B and 14B widths"),
    "flux2": FamilySpec("Flux.2", FLUX2_SMALL, FLUX2_LARGE, "Flux2", flux2_conditioning, (1, 128, 4, 4), cfg=1.0,
                        min_comfyui="0.33.0", why_min="ComfyUI 0.3.64 has no Flux.2"),
    "kandinsky5": FamilySpec("Kandinsky 5", KANDINSKY5_SMALL, KANDINSKY5_LARGE, "Kandinsky5",
                             kandinsky5_conditioning, (1, 16, 2, 8, 8), min_comfyui="0.33.0",
                             why_min="ComfyUI 0.3.64 has no Kandinsky 5"),
    "wan": FamilySpec("Wan 2.2 A14B expert + Wan 2.1 1.3B", TINY_WAN_SMALL, TINY_WAN_LARGE, "WAN21_T2V",
                      wan_conditioning, (1, 16, 2, 8, 8), sampler_name="uni_pc"),
    "qwen_image": FamilySpec("Qwen-Image", QWEN_IMAGE_SMALL, QWEN_IMAGE_LARGE, "QwenImage", qwen_image_conditioning,
                             (1, 16, 1, 8, 8), heavy=True),
}


def load_family_model(spec, weight_dtype: str = "default"):
    """``spec`` through ComfyUI's UNETLoader node (the ComfyUI host must be booted), its file built on first use."""
    import folder_paths
    import nodes

    path = ensure_family_model(spec)
    if str(path.parent) not in folder_paths.get_folder_paths("diffusion_models"):
        folder_paths.add_model_folder_path("diffusion_models", str(path.parent))
    return nodes.UNETLoader().load_unet(path.name, weight_dtype)[0]


def load_family_pair(family: str | FamilySpec, weight_dtype: str = "default"):
    """(small, large) ModelPatchers of ``family`` (a FAMILIES key or spec), loaded through UNETLoader."""
    spec = FAMILIES[family] if isinstance(family, str) else family
    return load_family_model(spec.small, weight_dtype), load_family_model(spec.large, weight_dtype)


def empty_latent(family: str | FamilySpec) -> dict:
    """An empty LATENT of the family's test shape."""
    import torch

    spec = FAMILIES[family] if isinstance(family, str) else family
    return {"samples": torch.zeros(spec.latent_shape)}


def timestep_fractions_where_both_run(model_sampling, sigmas) -> tuple[float, float]:
    """(low, high): small_fraction strictly between them gives both models at least one of the steps of ``sigmas``
    (a schedule ending at 0) under switch_by timestep, by the README's rule: the small model takes the step from
    sigma when t(sigma) / t(sigma_max) >= 1 - small_fraction.

    low is 1 - t/T of the first step's sigma (0 for a schedule from sigma_max; at or below it the large model takes
    every step), high is 1 - t/T of the last step's sigma (from it on the small model takes every step)."""
    import torch

    t_max = float(model_sampling.timestep(torch.tensor([float(model_sampling.sigma_max)])))
    ratios = [float(model_sampling.timestep(torch.tensor([float(s)]))) / t_max for s in sigmas[:-1]]
    return 1 - max(ratios), 1 - min(ratios)


def ksampler_sigmas(model_sampling, scheduler: str, steps: int, sampler_name: str | None = None):
    """The schedule KSampler samples on: for the samplers it drops the penultimate sigma for (uni_pc, dpm_2, ...)
    that of steps + 1 less that sigma. Without ``sampler_name``, BasicScheduler's (SamplerCustomAdvanced drops
    nothing)."""
    import comfy.samplers
    import torch

    if sampler_name in comfy.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS:
        sigmas = comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps + 1)
        return torch.cat([sigmas[:-2], sigmas[-1:]])
    return comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps)


def family_switch_range(model, scheduler: str, steps: int = 6, sampler_name: str | None = None) -> tuple[float, float]:
    """``timestep_fractions_where_both_run`` on the schedule ``ksampler_sigmas`` gives ``model`` (a ModelPatcher, as
    loaded or with its model sampling patched)."""
    model_sampling = model.get_model_object("model_sampling")
    return timestep_fractions_where_both_run(model_sampling,
                                             ksampler_sigmas(model_sampling, scheduler, steps, sampler_name))


def switch_table(steps: int = 6, names=None) -> dict[str, tuple[str, str, float, float]]:
    """For each family the running host has: (scheduler, sampler, low, high) of ``family_switch_range`` on its default
    model sampling (shift included) under KSampler with its usual scheduler and sampler. No weights are loaded: the
    model sampling comes from the model ComfyUI builds, on the meta device, from the config it detects."""
    import comfy.model_base

    table = {}
    for name in FAMILIES if names is None else names:
        family = FAMILIES[name]
        if not family.on_host():
            continue
        model = _meta_model(family.large)[1]
        # built again outside the meta device: the schedulers read its sigmas
        model_sampling = comfy.model_base.model_sampling(model.model_config, model.model_type)
        sigmas = ksampler_sigmas(model_sampling, family.scheduler, steps, family.sampler_name)
        table[name] = (family.scheduler, family.sampler_name,
                       *timestep_fractions_where_both_run(model_sampling, sigmas))
    return table


def _meta_model(spec):
    """(the shapes of ``spec``'s file, the BaseModel the running ComfyUI builds for it on the meta device, or None and
    why not, the model config class name it detected)."""
    import comfy.model_detection
    import safetensors
    import torch

    with safetensors.safe_open(str(ensure_family_model(spec)), "pt") as file:
        shapes = {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}
    state_dict = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    config = comfy.model_detection.detect_unet_config(state_dict, "")
    model_config = None if config is None else comfy.model_detection.model_config_from_unet_config(config, state_dict)
    if model_config is None:
        return state_dict, None, f"no model config for {config}"
    detected = type(model_config).__name__
    try:
        with torch.device("meta"):
            model = model_config.get_model({}, device="meta")
    except Exception as error:  # a config this host's classes can't build (Flux.2 read as Flux.1 by 0.3.64)
        return state_dict, None, f"{detected}, which fails to build: {error}"
    return model_config.process_unet_state_dict(state_dict), model, detected  # with the loader's key renames


def host_takes(spec) -> tuple[bool, str]:
    """(whether the running ComfyUI detects ``spec``'s file as its family and builds from it a model with exactly
    the file's tensors, what it detected): read from the file's tensor shapes, the model built on the meta device."""
    file_tensors, model, detected = _meta_model(spec)
    if model is None:
        return False, detected
    tensors = {key: tuple(value.shape) for key, value in model.diffusion_model.state_dict().items()}
    renamed = {key: tuple(value.shape) for key, value in file_tensors.items()}
    expected = spec.detected if isinstance(spec, DetectedSpec) else "WAN21_T2V"
    return detected == expected and tensors == renamed, detected
