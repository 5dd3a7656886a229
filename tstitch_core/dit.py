"""DiT checkpoints (Peebles & Xie, the format T-Stitch's DiT-S/B/XL were published in): their shape, read
off the weights, and the fixed 2-D sin-cos positions and timestep frequencies the network is built on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from .messages import quote_input

# Attention heads leave no trace in the weights, so the published widths fix them (the DiT paper, table 1).
HEADS_BY_WIDTH = {384: 6, 768: 12, 1024: 16, 1152: 16}
VARIANT_NAMES = {(12, 384): "DiT-S", (12, 768): "DiT-B", (24, 1024): "DiT-L", (28, 1152): "DiT-XL"}
# ImageNet's 1000 classes and the learned "null" class classifier-free guidance uses as the negative
NULL_CLASS = 1000
TIMESTEP_FREQUENCIES = 256


@dataclass(frozen=True)
class DiTShape:
    """What a DiT checkpoint's weights say about its network."""

    depth: int
    width: int
    heads: int
    patch_size: int
    in_channels: int
    out_channels: int
    grid_size: int  # patches per side of the training resolution
    class_rows: int  # rows of the class table: 1000 classes plus the null class

    @property
    def learned_sigma(self) -> bool:
        """Twice the input channels out: the noise, then the variance DDPM sampling may use."""
        return self.out_channels == 2 * self.in_channels

    @property
    def latent_size(self) -> int:
        return self.grid_size * self.patch_size

    @property
    def name(self) -> str:
        variant = VARIANT_NAMES.get((self.depth, self.width), f"DiT (width {self.width}, depth {self.depth})")
        return f"{variant}/{self.patch_size} at {self.latent_size * 8}x{self.latent_size * 8}"

    def unet_config(self) -> dict:
        return {"depth": self.depth, "width": self.width, "heads": self.heads, "patch_size": self.patch_size,
                "in_channels": self.in_channels, "out_channels": self.out_channels, "grid_size": self.grid_size,
                "class_rows": self.class_rows}


def check_class_index(index: int, class_rows: int, node: str) -> int:
    """The class table row a class index picks: the classes come first, the null class (guidance's negative) last.
    ``ValueError`` naming ``node`` when the model has no such class."""
    classes = class_rows - 1
    if not 0 <= index < classes:
        raise ValueError(f"{node}: class {index} is not one of this DiT's {classes} classes (0 to {classes - 1}; "
                         f"its class table has {class_rows} rows, the last the null class). Pick a class index "
                         f"from 0 to {classes - 1}.")
    return index


def unwrap_training_checkpoint(checkpoint: Mapping) -> Mapping:
    """The weights to sample with: a training checkpoint keeps them under "ema" (DiT's own sample.py
    prefers them), else under "model"; a plain state dict is returned as it is."""
    for key in ("ema", "model"):
        if isinstance(checkpoint.get(key), Mapping):
            return checkpoint[key]
    return checkpoint


def read_dit_shape(shapes: Mapping[str, Sequence[int]], source: str = "this file",
                   heads: str | None = None) -> DiTShape:
    """The network a DiT state dict holds, from its tensors' shapes; ``ValueError`` saying what was found
    when it is not a complete DiT of a known width, or a tensor has a shape no DiT has. ``heads`` is the
    ``dit_heads`` a safetensors file's metadata records (the weights do not hold it): needed only for a width
    no published DiT has, such as the trained digits pair's."""
    patch_weight = shapes.get("x_embedder.proj.weight")
    if patch_weight is None:
        raise ValueError(f"{source} is not a DiT checkpoint: {_describe_foreign(shapes)}")
    _check_rank(shapes, "x_embedder.proj.weight", 4, "(width, channels, patch, patch)", source)
    width, in_channels, patch_size = int(patch_weight[0]), int(patch_weight[1]), int(patch_weight[2])
    if patch_size < 1 or in_channels < 1 or tuple(patch_weight[2:]) != (patch_size, patch_size):
        raise ValueError(f"{source} is a malformed DiT checkpoint: x_embedder.proj.weight has shape "
                         f"{tuple(patch_weight)}, which is no patch embedding (a square patch of 1 or more pixels "
                         "from 1 or more channels). The file may be damaged: download it again.")
    head_count = read_head_count(width, heads, source)
    depth = len({key.split(".")[1] for key in shapes if key.startswith("blocks.")})
    missing = [key for key in _expected_keys(depth) if key not in shapes]
    if missing:
        raise ValueError(f"{source} is an incomplete DiT (width {width}, {depth} blocks): {len(missing)} tensors "
                         f"are missing, among them {', '.join(missing[:3])}. The file may be truncated: "
                         "download it again.")
    _check_rank(shapes, "pos_embed", 3, "(1, positions, width)", source)
    _check_rank(shapes, "final_layer.linear.weight", 2, "(patch x patch x channels, width)", source)
    _check_rank(shapes, "y_embedder.embedding_table.weight", 2, "(classes + 1, width)", source)
    positions, rows = int(shapes["pos_embed"][1]), int(shapes["y_embedder.embedding_table.weight"][0])
    grid_size = math.isqrt(max(positions, 0))
    if positions < 1 or grid_size * grid_size != positions:
        raise ValueError(f"{source}: pos_embed holds {positions} positions, not a square grid.")
    out_channels, leftover = divmod(int(shapes["final_layer.linear.weight"][0]), patch_size * patch_size)
    expected = _expected_shapes(width, patch_size, out_channels, positions, rows, depth)
    wrong = [(key, tuple(shapes[key]), shape) for key, shape in expected.items() if tuple(shapes[key]) != shape]
    if leftover or out_channels < 1 or rows < 2 or wrong:
        key, found, shape = wrong[0] if wrong else (
            "final_layer.linear.weight" if leftover or out_channels < 1 else "y_embedder.embedding_table.weight",
            None, None)
        found = tuple(shapes[key]) if found is None else found
        want = f"; a DiT of width {width}, patch {patch_size} has {shape}" if shape else ""
        raise ValueError(f"{source} is a malformed DiT checkpoint: {key} has shape {found}{want}. The file may be "
                         "damaged or hold another network: download it again.")
    return DiTShape(depth=depth, width=width, heads=head_count, patch_size=patch_size,
                    in_channels=in_channels, out_channels=out_channels, grid_size=grid_size, class_rows=rows)


def read_head_count(width: int, heads: str | None, source: str) -> int:
    """The attention heads of a DiT of ``width``: the file's ``dit_heads`` metadata where it has one (a number
    that divides the width), else the published DiTs' for their widths."""
    if heads is not None:
        text = str(heads).strip()
        if not text.isdigit() or int(text) < 1 or width % int(text):
            raise ValueError(f"{source} records dit_heads {quote_input(heads, 40)} in its metadata, which is no "
                             f"number of attention heads for width {width} (a whole number that divides it).")
        return int(text)
    if width not in HEADS_BY_WIDTH:
        known = ", ".join(f"{w} ({n})" for (_, w), n in sorted(VARIANT_NAMES.items(), key=lambda i: i[0][1]))
        raise ValueError(
            f"{source} is a DiT of width {width}, which none of the published DiTs has: the number of attention "
            f"heads is not stored in the weights, so it can only be known for the widths {known}, or from a "
            f".safetensors file whose metadata records dit_heads.")
    return HEADS_BY_WIDTH[width]


def _check_rank(shapes: Mapping[str, Sequence[int]], key: str, rank: int, layout: str, source: str) -> None:
    if len(shapes[key]) != rank:
        raise ValueError(f"{source} is a malformed DiT checkpoint: {key} has shape {tuple(shapes[key])}, where a DiT "
                         f"has {rank} dimensions {layout}. The file may be damaged: download it again.")


def _expected_shapes(width: int, patch: int, out_channels: int, positions: int, rows: int,
                     depth: int) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor ``_expected_keys`` names, as DiT's layers make them."""
    w = width
    shapes = {"pos_embed": (1, positions, w), "x_embedder.proj.bias": (w,),
              "t_embedder.mlp.0.weight": (w, TIMESTEP_FREQUENCIES), "t_embedder.mlp.2.weight": (w, w),
              "y_embedder.embedding_table.weight": (rows, w), "final_layer.linear.weight": (patch * patch * out_channels, w),
              "final_layer.adaLN_modulation.1.weight": (2 * w, w)}
    for i in range(depth):
        shapes.update({f"blocks.{i}.attn.qkv.weight": (3 * w, w), f"blocks.{i}.attn.proj.weight": (w, w),
                       f"blocks.{i}.mlp.fc1.weight": (4 * w, w), f"blocks.{i}.mlp.fc2.weight": (w, 4 * w),
                       f"blocks.{i}.adaLN_modulation.1.weight": (6 * w, w)})
    return shapes


def _expected_keys(depth: int) -> list[str]:
    keys = ["pos_embed", "x_embedder.proj.bias", "t_embedder.mlp.0.weight", "t_embedder.mlp.2.weight",
            "y_embedder.embedding_table.weight", "final_layer.linear.weight", "final_layer.adaLN_modulation.1.weight"]
    for i in range(depth):
        keys += [f"blocks.{i}.{name}" for name in ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight",
                                                    "mlp.fc2.weight", "adaLN_modulation.1.weight")]
    return keys


def _describe_foreign(shapes: Mapping) -> str:
    keys = list(shapes)
    if any(k.startswith(("model.diffusion_model.", "input_blocks.", "down_blocks.")) for k in keys):
        return ("it holds a Stable Diffusion UNet. Load it with Load Checkpoint or Load Diffusion Model "
                "instead, and pair it with a model of its own family.")
    if any(k.startswith("transformer_blocks.") for k in keys) and "pos_embed.proj.weight" in shapes:
        return ("it holds a DiT in diffusers' layout (transformer_blocks.*). This loader reads the original "
                "format (x_embedder, blocks.*), in which DiT-S/B/XL and DiT-XL-2-256x256.pt were published.")
    sample = ", ".join(keys[:3]) if keys else "no tensors at all"
    return f"it has no x_embedder.proj.weight (found {len(keys)} tensors: {sample}...)."


def sincos_positions(width: int, grid_height: int, grid_width: int) -> torch.Tensor:
    """The fixed 2-D sin-cos position of every patch, row by row: ``(grid_height * grid_width, width)``.
    Half the channels encode the row, half the column, each as sines then cosines (float64 for the
    exactness the published tables have)."""
    rows, cols = torch.meshgrid(torch.arange(grid_height, dtype=torch.float64),
                                torch.arange(grid_width, dtype=torch.float64), indexing="ij")
    # the published tables put the column coordinate first
    return torch.cat([_sincos_1d(width // 2, cols.flatten()), _sincos_1d(width // 2, rows.flatten())], dim=1)


def _sincos_1d(channels: int, positions: torch.Tensor) -> torch.Tensor:
    omega = 1.0 / 10000 ** (torch.arange(channels // 2, dtype=torch.float64) / (channels / 2.0))
    angles = positions[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def timestep_frequencies(timesteps: torch.Tensor, channels: int = TIMESTEP_FREQUENCIES) -> torch.Tensor:
    """The sinusoidal timestep features DiT's time embedder reads: cosines then sines of t at ``channels / 2``
    frequencies from 1 down to 1/10000 (divided by half the channels, as the checkpoints were trained)."""
    half = channels // 2
    frequencies = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    angles = timesteps[:, None].float() * frequencies[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def compute_respaced_timesteps(steps: int, num_timesteps: int = 1000) -> list[int]:
    """The ``steps`` timesteps, largest first, that DiT's samplers (improved-diffusion's respacing, one section)
    keep of ``num_timesteps``: evenly strided from 0 to ``num_timesteps - 1``, each rounded to the nearest integer.
    For 100 of 1000: 999, 989, ..., 20, 10, 0 (strides of 10 and 11)."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"DiT timesteps: {steps} steps of a {num_timesteps}-step schedule is not possible; "
                         f"pick 1 to {num_timesteps} steps.")
    stride = (num_timesteps - 1) / (steps - 1) if steps > 1 else 1
    taken, position = [], 0.0
    for _ in range(steps):
        taken.append(round(position))  # python's round, the stride summed up step by step, as the reference does
        position += stride
    return taken[::-1]


def guide_leading_channels(cond: torch.Tensor, uncond: torch.Tensor, scale: float, channels: int = 3) -> torch.Tensor:
    """Classifier-free guidance on the first ``channels`` channels only, the rest the conditional prediction's,
    as DiT's published samplers guide (``forward_with_cfg``: three of the four latent channels)."""
    guided = uncond[:, :channels] + (cond[:, :channels] - uncond[:, :channels]) * scale
    return torch.cat([guided, cond[:, channels:]], dim=1)
