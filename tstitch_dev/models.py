"""Seeded random-weight diffusion models in ComfyUI's formats, built on demand and cached on disk.

Nothing here is a trained model: images sampled from them are noise. They have the real
layouts (an SD1.5-shaped UNet is detected by ComfyUI as SD15), so ComfyUI's loaders,
samplers and model management treat them as the real thing, and at full size they cost
what the real models cost per step.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
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
    # SSD-1B and Vega prune output blocks apart from input blocks; None keeps each level's depth
    transformer_depth_output: tuple[int, ...] | None = None  # per output block, shallowest level first
    transformer_depth_middle: int | None = None  # None: the deepest level's; -1: res blocks, no transformer

    @property
    def file_name(self) -> str:
        # unset layout overrides stay out of the hash, so earlier specs keep their cached files
        fields = {key: value for key, value in asdict(self).items() if value is not None}
        digest = hashlib.sha1(json.dumps([FACTORY_VERSION, fields]).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}.safetensors"


# Test-sized models: SD1.5 UNets of a few depths that ComfyUI detects as SD15, and a narrow SDXL-family
# one (detected as KOALA_700M, whose transformer depths it copies) for the mismatch errors.
TINY_SD15_SMALL = UNetSpec("tiny-sd15-small", "sd15", (1, 2), (1, 1), (1, 1), middle_block=False, seed=1)
TINY_SD15_LARGE = UNetSpec("tiny-sd15-large", "sd15", (1, 2), (2, 2), (1, 1), middle_block=True, seed=2)
TINY_SD15_MEDIUM = UNetSpec("tiny-sd15-medium", "sd15", (1, 2), (2, 1), (1, 1), middle_block=False, seed=4)
# SSD-1B-style pruning of TINY_SD15_LARGE: the same blocks, fewer transformers in them
TINY_SD15_PRUNED = UNetSpec("tiny-sd15-pruned", "sd15", (1, 2), (2, 2), (0, 1), middle_block=True, seed=7)
# One level at SD1.5's width, three to five times cheaper per call than the two-level models: what
# most host tests sample with (small, medium, large as in a three-stage nest; the large one with a
# middle block, where PAG and SAG act).
MINI_SD15_SMALL = UNetSpec("mini-sd15-small", "sd15", (1,), (1,), (1,), middle_block=False, seed=8)
MINI_SD15_MEDIUM = UNetSpec("mini-sd15-medium", "sd15", (1,), (2,), (1,), middle_block=False, seed=10)
MINI_SD15_LARGE = UNetSpec("mini-sd15-large", "sd15", (1,), (1,), (1,), middle_block=True, seed=9)
MINI_SD15_SMALL_ALT = UNetSpec("mini-sd15-small-alt", "sd15", (1,), (1,), (1,), middle_block=False, seed=12)
TINY_SD15_SMALL_ALT = UNetSpec("tiny-sd15-small-alt", "sd15", (1, 2), (1, 1), (1, 1), middle_block=False, seed=5)
# BK-SDM-Small's stand-in: one level more than Tiny's (as nota-ai's Small keeps the level Tiny drops), one res block
# in each, no middle block; uniform blocks, which diffusers' layout (and so the BK-SDM loader's file) needs
TINY_BK_SDM_SMALL = UNetSpec("tiny-bk-sdm-small", "sd15", (1, 2, 2), (1, 1, 1), (1, 1, 1), middle_block=False, seed=13)
TINY_SDXL = UNetSpec("tiny-sdxl", "sdxl", (1, 1, 1), (1, 1, 1), (0, 2, 5), middle_block=False, seed=3)
# detected as Segmind_Vega, whose transformer depths it copies at a quarter of the width
TINY_SDXL_SMALL = UNetSpec("tiny-sdxl-small", "sdxl", (1, 1, 1), (2, 2, 2), (0, 1, 2), middle_block=False, seed=6)

# Real architectures as ComfyUI detects them (parameter counts in HOST-NOTES).
SD15 = UNetSpec("sd15", "sd15", (1, 2, 4, 4), (2, 2, 2, 2), (1, 1, 1, 0), middle_block=True, seed=10)
BK_SDM_TINY = UNetSpec("bk-sdm-tiny", "sd15", (1, 2, 4), (1, 1, 1), (1, 1, 1), middle_block=False, seed=11)
SDXL = UNetSpec("sdxl", "sdxl", (1, 2, 4), (2, 2, 2), (0, 2, 10), middle_block=True, seed=12)
# the distilled SDXLs keep SDXL's blocks but drop transformers, unevenly in the decoder
SSD_1B = UNetSpec("ssd-1b", "sdxl", (1, 2, 4), (2, 2, 2), (0, 2, 4), middle_block=True, seed=13,
                  transformer_depth_output=(0, 0, 0, 1, 1, 2, 10, 4, 4), transformer_depth_middle=-1)
SEGMIND_VEGA = UNetSpec("segmind-vega", "sdxl", (1, 2, 4), (2, 2, 2), (0, 1, 2), middle_block=True, seed=14,
                        transformer_depth_output=(0, 0, 0, 1, 1, 1, 2, 2, 2), transformer_depth_middle=-1)

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
    if spec.transformer_depth_output is not None:
        depth_out = list(spec.transformer_depth_output)
    depth_middle = spec.transformer_depth_middle
    if depth_middle is None:
        depth_middle = max(spec.transformer_depth)
    return dict(
        image_size=32, in_channels=4, out_channels=4, model_channels=320,
        num_res_blocks=list(spec.num_res_blocks), channel_mult=list(spec.channel_mult),
        transformer_depth=depth_in, transformer_depth_output=depth_out,
        transformer_depth_middle=depth_middle if spec.middle_block else -2,
        use_spatial_transformer=True, legacy=False, use_temporal_attention=False, use_temporal_resblock=False,
        **_FAMILY_CONFIG[spec.family],
    )


def randomize_(module, seed: int) -> dict:
    """Fill ``module`` with seeded random weights in place and return its state dict."""
    import torch

    device = next(iter(module.state_dict().values())).device
    generator = torch.Generator(device).manual_seed(seed)  # on the CPU, the cached files' weights
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if tensor.ndim >= 2:  # conv / linear / embedding: fan-in scaled, so activations keep their size
                tensor.normal_(0.0, tensor[0].numel() ** -0.5, generator=generator)
            elif name.endswith("weight"):  # norms
                tensor.fill_(1.0)
            else:
                tensor.normal_(0.0, 0.02, generator=generator)
    return {k: v.contiguous() for k, v in module.state_dict().items()}


def build_unet_state_dict(spec: UNetSpec) -> dict:
    """Seeded random weights for ``spec``, keys in ComfyUI's (LDM) layout."""
    import torch
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(**unet_config(spec), dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)
    return randomize_(unet, spec.seed)


def build_sd15_text_encoder(seed: int) -> dict:
    """A random CLIP-L text encoder keyed as in an SD1.5 checkpoint (ComfyUI fixes its shape)."""
    import comfy.sd1_clip

    return {f"cond_stage_model.{k}": v for k, v in randomize_(comfy.sd1_clip.SDClipModel(device="cpu"), seed).items()}


def build_sdxl_text_encoders(seed: int) -> dict:
    """Random CLIP-L and CLIP-G text encoders keyed as in an SDXL checkpoint (ComfyUI fixes both shapes)."""
    import comfy.sdxl_clip

    renames = {"clip_l.transformer.text_model.": "conditioner.embedders.0.transformer.text_model.",
               "clip_g.": "conditioner.embedders.1.model."}
    state_dict = {}
    for key, value in randomize_(comfy.sdxl_clip.SDXLClipModel(device="cpu"), seed).items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        if prefix:
            state_dict[renames[prefix] + key[len(prefix):]] = value
    return state_dict


def build_vae(seed: int) -> dict:
    """A random SD/SDXL VAE (the two share a layout), keyed as in a checkpoint."""
    from comfy.ldm.models.autoencoder import AutoencoderKL

    vae = AutoencoderKL(ddconfig={"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                                  "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [],
                                  "dropout": 0.0}, embed_dim=4)
    return {f"first_stage_model.{k}": v for k, v in randomize_(vae, seed).items()}


def ensure_sd_vae(folder: Path = MODEL_CACHE) -> Path:
    """Path of a random SD VAE as a standalone file (VAELoader's format, as sd-vae-ft-mse's), built once."""
    prefix = "first_stage_model."
    return _built_once(folder / f"sd-vae-{FACTORY_VERSION}.safetensors",
                       lambda path: _save({k[len(prefix):]: v for k, v in build_vae(1000).items()}, path))


@contextlib.contextmanager
def _building(path: Path):
    """Held while ``path`` is built: one process at a time (pytest-xdist workers, a demo beside the tests).

    The lock is advisory and only spares a second build of the same file; the files themselves are
    written under a name of this process's own and renamed into place (``_write``), so a reader never
    sees a partial one. Where ``fcntl`` is missing (Windows) the build is not locked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write(path: Path, write) -> Path:
    """``write(temporary_path)``, then an atomic rename onto ``path``: no other process sees it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _built_once(path: Path, build) -> Path:
    """``path``, made by ``build(path)`` unless it exists; concurrent callers build it once between them."""
    if path.exists():
        return path
    with _building(path):
        if not path.exists():  # another process may have built it while this one waited
            build(path)
    return path


def _save(state_dict: dict, path: Path, metadata: dict | None = None) -> Path:
    import safetensors.torch
    import torch

    tensors = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in state_dict.items()}
    metadata = {"tstitch": "random weights, not a trained model", **({} if metadata is None else metadata)}
    return _write(path, lambda partial: safetensors.torch.save_file(tensors, str(partial), metadata=metadata))


def ensure_diffusion_model(spec, folder: Path = MODEL_CACHE) -> Path:
    """Path of ``spec`` (a UNetSpec or WanSpec) saved as a diffusion-model file (UNETLoader's format), built once."""
    build = build_wan_state_dict if isinstance(spec, WanSpec) else build_unet_state_dict
    return _built_once(folder / spec.file_name, lambda path: _save(build(spec), path))


def ensure_controlnet(spec: UNetSpec, folder: Path = MODEL_CACHE) -> Path:
    """Path of a random ControlNet for ``spec``'s UNet (ControlNetLoader's format, 3-channel hint), built once."""
    return _built_once(folder / f"controlnet-{spec.file_name}", lambda path: _build_controlnet(spec, path))


def _build_controlnet(spec: UNetSpec, path: Path) -> Path:
    import torch
    import comfy.cldm.cldm
    import comfy.ops

    config = {k: v for k, v in unet_config(spec).items() if k != "out_channels"}
    control = comfy.cldm.cldm.ControlNet(hint_channels=3, **config, dtype=torch.float32, device="cpu",
                                         operations=comfy.ops.disable_weight_init)
    return _save({f"control_model.{k}": v for k, v in randomize_(control, spec.seed + 2000).items()}, path)


def ensure_checkpoint(spec: UNetSpec, folder: Path = MODEL_CACHE, text_encoder_seed: int | None = 100,
                      suffix: str = ".safetensors") -> Path:
    """Path of ``spec`` saved as a full checkpoint (CheckpointLoaderSimple's format), built once.

    It holds the UNet, a VAE and, unless ``text_encoder_seed`` is None, the family's text encoders; ``suffix``
    ".ckpt" writes it as torch.save of {"state_dict": ...}, the format of CompVis's sd-v1-4.ckpt.
    """
    tag = "no-text-encoder" if text_encoder_seed is None else f"text-encoder-{text_encoder_seed}"
    name = f"checkpoint-{tag}-{spec.file_name}".removesuffix(".safetensors") + suffix
    return _built_once(folder / name, lambda path: _build_checkpoint(spec, text_encoder_seed, path))


def _build_checkpoint(spec: UNetSpec, text_encoder_seed: int | None, path: Path) -> Path:
    import torch

    state_dict = {f"model.diffusion_model.{k}": v for k, v in build_unet_state_dict(spec).items()}
    state_dict.update(build_vae(spec.seed + 1000))
    if text_encoder_seed is not None:
        build_text_encoders = {"sd15": build_sd15_text_encoder, "sdxl": build_sdxl_text_encoders}[spec.family]
        state_dict.update(build_text_encoders(text_encoder_seed))
    if path.suffix == ".ckpt":
        tensors = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in state_dict.items()}
        return _write(path, lambda partial: torch.save({"state_dict": tensors}, partial))
    return _save(state_dict, path)


@dataclass(frozen=True)
class WanSpec:
    """A Wan 2.1-architecture text-to-video DiT, detected by ComfyUI as WAN21 (one head per 128 of ``dim``)."""

    name: str
    dim: int
    ffn_dim: int
    num_layers: int
    seed: int = 0
    in_dim: int = 16  # 36 for image-to-video models (the image latent and its mask are concatenated)

    @property
    def file_name(self) -> str:
        # the text-to-video width stays out of the hash, so earlier specs keep their cached files
        fields = {key: value for key, value in asdict(self).items() if (key, value) != ("in_dim", 16)}
        digest = hashlib.sha1(json.dumps([FACTORY_VERSION, "wan", fields]).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}.safetensors"


# Wan 2.1 1.3B -> 14B in miniature (different widths and depths), and Wan 2.2 A14B's two experts
# (one architecture, two sets of weights)
TINY_WAN_SMALL = WanSpec("tiny-wan-small", dim=128, ffn_dim=256, num_layers=1, seed=21)
TINY_WAN_LARGE = WanSpec("tiny-wan-large", dim=256, ffn_dim=512, num_layers=2, seed=22)
TINY_WAN_HIGH_NOISE = WanSpec("tiny-wan-high-noise", dim=128, ffn_dim=256, num_layers=2, seed=23)
TINY_WAN_LOW_NOISE = WanSpec("tiny-wan-low-noise", dim=128, ffn_dim=256, num_layers=2, seed=24)
# Wan 2.1 T2V 1.3B and 14B at their published sizes (the GPU check's optional pair)
WAN_1_3B = WanSpec("wan-1.3b", dim=1536, ffn_dim=8960, num_layers=30, seed=51)
WAN_14B = WanSpec("wan-14b", dim=5120, ffn_dim=13824, num_layers=40, seed=52)
# Wan 2.2 A14B's image-to-video expert in miniature: 36 input channels, no CLIP image embedding
TINY_WAN_I2V_LARGE = WanSpec("tiny-wan-i2v-large", dim=256, ffn_dim=512, num_layers=2, seed=25, in_dim=36)
# Wan 2.2 A14B's image-to-video experts: one architecture (36 input channels, no CLIP image embedding), two sets
# of weights
TINY_WAN_I2V_HIGH_NOISE = WanSpec("tiny-wan-i2v-high-noise", dim=128, ffn_dim=256, num_layers=2, seed=26, in_dim=36)
TINY_WAN_I2V_LOW_NOISE = WanSpec("tiny-wan-i2v-low-noise", dim=128, ffn_dim=256, num_layers=2, seed=27, in_dim=36)


def build_wan_state_dict(spec: WanSpec, device="cpu", dtype=None) -> dict:
    """Seeded random weights for ``spec``, fp32 on the CPU unless asked (a 14B-sized one is built on the GPU)."""
    import torch
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    model = WanModel(model_type="t2v", patch_size=(1, 2, 2), text_len=512, in_dim=spec.in_dim, dim=spec.dim,
                     ffn_dim=spec.ffn_dim, freq_dim=256, text_dim=4096, out_dim=16, num_heads=spec.dim // 128,
                     num_layers=spec.num_layers, window_size=(-1, -1), qk_norm=True, cross_attn_norm=True, eps=1e-6,
                     dtype=dtype or torch.float32, device=device, operations=comfy.ops.disable_weight_init)
    return randomize_(model, spec.seed)


def ensure_wan_vae(dim: int = 96, folder: Path = MODEL_CACHE) -> Path:
    """Path of a random Wan 2.1 VAE, ``dim`` wide, built once.

    96 is the real Wan 2.1 VAE's width: ComfyUI reads it off the weights since 0.8, but 0.3.64
    assumes 96, so a narrower test VAE fails to load there.
    """
    def build(path):
        from comfy.ldm.wan.vae import WanVAE

        vae = WanVAE(dim=dim, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                     temperal_downsample=[False, True, True], dropout=0.0)
        return _save(randomize_(vae, 31), path)

    return _built_once(folder / f"tiny-wan-vae-{FACTORY_VERSION}-{dim}.safetensors", build)


# the SD-layout VAE as ComfyUI's VAELoader reads it: the encoder's width is fixed at 128 there, the decoder's is
# read off its weights, so the smallest it detects keeps the encoder and narrows the decoder
_FLOW_VAE_DDCONFIG = {"double_z": True, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                      "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}


def build_flow_vae(seed: int, z_channels: int = 16, batch_norm: bool = False, decoder_ch: int = 32) -> dict:
    """A random VAE in the layout of Flux.1's ae.safetensors and SD3.5's (16 latent channels, no quant convs), or
    with ``batch_norm`` Flux.2's (32 channels, quant convs and the latent batch norm its 2x2 patches are scaled by)."""
    import torch
    from comfy.ldm.models.autoencoder import AutoencoderKL, AutoencodingEngine

    ddconfig = {**_FLOW_VAE_DDCONFIG, "z_channels": z_channels, **({"batch_norm_latent": True} if batch_norm else {})}
    decoder = {**ddconfig, "ch": decoder_ch}
    if batch_norm:
        vae = AutoencoderKL(ddconfig=ddconfig, embed_dim=z_channels, decoder_ddconfig=decoder)
    else:
        vae = AutoencodingEngine(
            regularizer_config={"target": "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
            encoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Encoder", "params": ddconfig},
            decoder_config={"target": "comfy.ldm.modules.diffusionmodules.model.Decoder", "params": decoder})
    state_dict = randomize_(vae, seed)
    if batch_norm:  # running statistics as trained ones look: a random (negative) variance would give NaN
        state_dict["bn.running_mean"] = torch.zeros_like(state_dict["bn.running_mean"])
        state_dict["bn.running_var"] = torch.ones_like(state_dict["bn.running_var"])
    return state_dict


def ensure_flux_vae(folder: Path = MODEL_CACHE) -> Path:
    """Path of a random Flux.1 VAE (ae.safetensors' layout; VAELoader reads it as a 16-channel latent VAE)."""
    return _built_once(folder / f"tiny-flux-vae-{FACTORY_VERSION}.safetensors",
                       lambda path: _save(build_flow_vae(32), path))


def ensure_flux2_vae(folder: Path = MODEL_CACHE) -> Path:
    """Path of a random Flux.2 VAE (flux2-vae.safetensors' layout; VAELoader reads it as 128 channels at 1/16)."""
    return _built_once(folder / f"tiny-flux2-vae-{FACTORY_VERSION}.safetensors",
                       lambda path: _save(build_flow_vae(33, z_channels=32, batch_norm=True), path))


# LTX-Video's VAE takes its layout from the checkpoint's "config" metadata (as Lightricks' files carry it): the
# 1/32 space and 1/8 time compression of the real one (three compress_all, patch 4), one layer per block, 32 wide
TINY_LTXV_VAE_CONFIG = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "blocks": [["res_x", 1], ["compress_all", 1], ["res_x_y", 1], ["compress_all", 1], ["res_x_y", 1],
               ["compress_all", 1], ["res_x", 1]],
    "encoder_base_channels": 32, "decoder_base_channels": 32, "scaling_factor": 1.0, "norm_layer": "pixel_norm",
    "patch_size": 4, "latent_log_var": "uniform", "use_quant_conv": False, "causal_decoder": False,
}


def build_ltxv_vae(seed: int) -> dict:
    """A random LTX-Video VAE of TINY_LTXV_VAE_CONFIG (its per-channel statistics those of a trained one: 0 and 1)."""
    import torch
    from comfy.ldm.lightricks.vae.causal_video_autoencoder import VideoVAE

    state_dict = randomize_(VideoVAE(config=TINY_LTXV_VAE_CONFIG), seed)
    for key in state_dict:
        if key.startswith("per_channel_statistics."):
            fill = torch.ones_like if "std" in key else torch.zeros_like
            state_dict[key] = fill(state_dict[key])
    return state_dict


# the checkpoint layout of each family the examples load as one file: its VAE's prefix, how the VAE is built and
# the metadata it needs
_FAMILY_CHECKPOINT_VAE = {
    "SD3": ("first_stage_model.", lambda: build_flow_vae(34), {}),
    "LTXV": ("vae.", lambda: build_ltxv_vae(35), {"config": json.dumps({"vae": TINY_LTXV_VAE_CONFIG})}),
}


def ensure_family_checkpoint(spec, folder: Path = MODEL_CACHE) -> Path:
    """Path of families.py's ``spec`` (SD3.5, LTX-Video) as a checkpoint with its family's VAE and no text encoder
    (CheckpointLoaderSimple's format, as sd3.5_medium.safetensors or Lightricks' ltxv files are), built once."""
    from .families import build_detected_state_dict

    prefix, build_vae_state_dict, metadata = _FAMILY_CHECKPOINT_VAE[spec.detected]

    def build(path):
        state_dict = {f"model.diffusion_model.{k}": v for k, v in build_detected_state_dict(spec).items()}
        state_dict.update({prefix + k: v for k, v in build_vae_state_dict().items()})
        return _save(state_dict, path, metadata)

    return _built_once(folder / f"checkpoint-{FACTORY_VERSION}-{spec.file_name}", build)


def ensure_lora(spec: UNetSpec, seed: int, rank: int = 4, folder: Path = MODEL_CACHE) -> Path:
    """Path of a random LoRA (kohya-style keys) on every attention projection of ``spec``'s UNet, built once."""
    def build(path):
        import torch

        generator = torch.Generator().manual_seed(seed)
        lora = {}
        for key, weight in build_unet_state_dict(spec).items():
            if weight.ndim == 2 and (".attn1.to_" in key or ".attn2.to_" in key) and key.endswith(".weight"):
                name = "lora_unet_" + key[:-len(".weight")].replace(".", "_")
                lora[f"{name}.lora_down.weight"] = torch.randn(rank, weight.shape[1], generator=generator) * 0.1
                lora[f"{name}.lora_up.weight"] = torch.randn(weight.shape[0], rank, generator=generator) * 0.1
                lora[f"{name}.alpha"] = torch.tensor(float(rank))
        return _save(lora, path)

    return _built_once(folder / f"lora-{seed}-{rank}-{spec.file_name}", build)


def ensure_wan_lora(spec: WanSpec, seed: int, rank: int = 4, folder: Path = MODEL_CACHE) -> Path:
    """Path of a random LoRA on every linear layer of ``spec``'s blocks (attention and feed-forward), built once.

    Keyed as the Comfy-Org repackaged Wan LoRAs (the lightx2v Lightning ones) are: ``diffusion_model.<layer>``
    with ``lora_down`` / ``lora_up`` / ``alpha``, which ComfyUI's LoraLoaderModelOnly maps onto the model's weights."""
    def build(path):
        import torch

        generator = torch.Generator().manual_seed(seed)
        lora = {}
        for key, weight in build_wan_state_dict(spec).items():
            if weight.ndim == 2 and key.startswith("blocks.") and key.endswith(".weight"):
                name = "diffusion_model." + key[:-len(".weight")]
                lora[f"{name}.lora_down.weight"] = torch.randn(rank, weight.shape[1], generator=generator) * 0.1
                lora[f"{name}.lora_up.weight"] = torch.randn(weight.shape[0], rank, generator=generator) * 0.1
                lora[f"{name}.alpha"] = torch.tensor(float(rank))
        return _save(lora, path)

    return _built_once(folder / f"wan-lora-{seed}-{rank}-{spec.file_name}", build)


@dataclass(frozen=True)
class DiTSpec:
    """A class-conditional DiT in the original checkpoint layout (DiT-XL-2-256x256.pt's keys)."""

    name: str
    depth: int
    width: int  # 384, 768, 1024 or 1152: the published widths, which fix the heads
    patch_size: int = 2
    grid_size: int = 16  # patches per side at the training resolution (256 px at /2: 16)
    learned_sigma: bool = True
    seed: int = 0
    classes: int = 1000

    def file_name(self, suffix: str = ".pt") -> str:
        digest = hashlib.sha1(json.dumps([FACTORY_VERSION, "dit-2", asdict(self)]).encode()).hexdigest()[:10]
        return f"{self.name}-{digest}{suffix}"


# miniatures at DiT-S's and DiT-XL's widths (two blocks), one at patch size 4; 8x8-patch grids
TINY_DIT_S = DiTSpec("tiny-dit-s", depth=2, width=384, grid_size=8, seed=41)
TINY_DIT_B = DiTSpec("tiny-dit-b", depth=2, width=768, grid_size=8, seed=42)
TINY_DIT_XL = DiTSpec("tiny-dit-xl", depth=2, width=1152, grid_size=8, seed=43)
TINY_DIT_S4 = DiTSpec("tiny-dit-s4", depth=2, width=384, patch_size=4, grid_size=4, seed=44)
# the published sizes at 256x256 (DiT paper, table 1), for the benchmark
DIT_S_2 = DiTSpec("dit-s-2", depth=12, width=384, seed=45)
DIT_B_2 = DiTSpec("dit-b-2", depth=12, width=768, seed=46)
DIT_XL_2 = DiTSpec("dit-xl-2", depth=28, width=1152, seed=47)


def dit_tensor_shapes(spec: DiTSpec) -> dict[str, tuple[int, ...]]:
    """Every tensor of a DiT checkpoint in the original layout, by name."""
    w, p = spec.width, spec.patch_size
    out_channels = 8 if spec.learned_sigma else 4
    shapes = {"x_embedder.proj.weight": (w, 4, p, p), "x_embedder.proj.bias": (w,),
              "t_embedder.mlp.0.weight": (w, 256), "t_embedder.mlp.0.bias": (w,),
              "t_embedder.mlp.2.weight": (w, w), "t_embedder.mlp.2.bias": (w,),
              "y_embedder.embedding_table.weight": (spec.classes + 1, w), "pos_embed": (1, spec.grid_size ** 2, w),
              "final_layer.linear.weight": (p * p * out_channels, w), "final_layer.linear.bias": (p * p * out_channels,),
              "final_layer.adaLN_modulation.1.weight": (2 * w, w), "final_layer.adaLN_modulation.1.bias": (2 * w,)}
    for i in range(spec.depth):
        for name, rows, cols in (("attn.qkv", 3 * w, w), ("attn.proj", w, w), ("mlp.fc1", 4 * w, w),
                                 ("mlp.fc2", w, 4 * w), ("adaLN_modulation.1", 6 * w, w)):
            shapes[f"blocks.{i}.{name}.weight"] = (rows, cols)
            shapes[f"blocks.{i}.{name}.bias"] = (rows,)
    return shapes


def build_dit_state_dict(spec: DiTSpec) -> dict:
    """Seeded random weights for ``spec``; pos_embed holds the fixed sin-cos table, as in the published files."""
    import torch
    from tstitch_core.dit import sincos_positions

    generator = torch.Generator().manual_seed(spec.seed)
    state_dict = {}
    for name, shape in dit_tensor_shapes(spec).items():
        if name == "pos_embed":
            state_dict[name] = sincos_positions(spec.width, spec.grid_size, spec.grid_size).float()[None]
        elif len(shape) >= 2:  # fan-in scaled, so activations keep their size through the blocks
            fan_in = 1
            for size in shape[1:]:
                fan_in *= size
            state_dict[name] = torch.randn(shape, generator=generator) * fan_in ** -0.5
        else:
            state_dict[name] = torch.randn(shape, generator=generator) * 0.02
    return state_dict


def ensure_dit(spec: DiTSpec, folder: Path = MODEL_CACHE, suffix: str = ".pt") -> Path:
    """Path of ``spec`` saved as ``.pt`` (torch.save of the state dict, as published) or ``.safetensors``, built once.

    Weights are stored in fp16, the fixed pos_embed table in fp32: rounded to fp16 it would no longer be the
    sin-cos table a reference computes."""
    def build(path):
        import safetensors.torch
        import torch

        state_dict = {k: v if k == "pos_embed" else v.half() for k, v in build_dit_state_dict(spec).items()}
        if suffix == ".safetensors":
            return _write(path, lambda partial: safetensors.torch.save_file(
                state_dict, str(partial), metadata={"tstitch": "random weights, not a trained model"}))
        return _write(path, lambda partial: torch.save(state_dict, partial))

    return _built_once(folder / spec.file_name(suffix), build)


# ComfyUI-GGUF's files for SD1/SDXL UNets, as its tools write them (tools/convert.py, then llama.cpp's quantize
# with its tools/lcpp.patch): tensors of 512+ elements whose last dimension isn't a multiple of 256 are stored as
# rows of 256 with their shape in "comfy.gguf.orig_shape.<key>"; a quantized file quantizes the 2-D ones (so
# reshaped, convolutions too) but the embeddings and the first and last convolutions, which stay F16 as
# 1-D tensors do. Its convert script doesn't recognise a one-level UNet as SD1, so these are written here.
GGUF_TYPES = ("F16", "Q8_0")
_GGUF_ARCH = {"sd15": "sd1", "sdxl": "sdxl"}
_GGUF_UNQUANTIZED_PARTS = ("class_embedding.", "time_embedding.", "add_embedding.", "time_embed.", "label_emb.",
                           "conv_in.", "conv_out.")
_GGUF_UNQUANTIZED_NAMES = ("input_blocks.0.0.weight", "out.2.weight")


def ensure_gguf(spec: UNetSpec, qtype: str = "F16", folder: Path = MODEL_CACHE) -> Path:
    """Path of ``spec`` as a ComfyUI-GGUF diffusion-model file (UnetLoaderGGUF's format), F16 or Q8_0, built once.

    The weights are the .safetensors file's (rounded to fp16 as it is), before quantization."""
    if qtype not in GGUF_TYPES:
        raise ValueError(f"No GGUF test files of type {qtype!r}: {', '.join(GGUF_TYPES)}")
    stem = spec.file_name[:-len(".safetensors")]
    return _built_once(folder / f"{stem}-{qtype}.gguf",
                       lambda path: _write(path, lambda partial: _write_gguf(spec, qtype, partial)))


def gguf_tensor_type(key: str, shape: tuple[int, ...], qtype: str) -> str:
    """The GGML type ComfyUI-GGUF's tools give tensor ``key`` of (stored) ``shape`` in a ``qtype`` file."""
    if qtype == "F16" or len(shape) != 2 or shape[-1] % 32:  # Q8_0 packs rows in blocks of 32
        return "F16"
    if any(part in key for part in _GGUF_UNQUANTIZED_PARTS) or key in _GGUF_UNQUANTIZED_NAMES:
        return "F16"
    return qtype


def _write_gguf(spec: UNetSpec, qtype: str, path: Path) -> None:
    import gguf
    import torch

    writer = gguf.GGUFWriter(path=None, arch=_GGUF_ARCH[spec.family])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(getattr(gguf.LlamaFileType, f"MOSTLY_{qtype}"))
    for key, tensor in build_unet_state_dict(spec).items():
        data = tensor.to(torch.float16).numpy()
        if data.ndim > 1 and data.size >= 512 and data.size % 256 == 0 and data.shape[-1] % 256:
            writer.add_array(f"comfy.gguf.orig_shape.{key}", [int(size) for size in data.shape])
            data = data.reshape(data.size // 256, 256)
        ggml_type = getattr(gguf.GGMLQuantizationType, gguf_tensor_type(key, data.shape, qtype))
        writer.add_tensor(key, gguf.quants.quantize(data, ggml_type), raw_dtype=ggml_type)
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
