"""Reading the conditioning widths a model takes, and what reaches each model of a stitched pass."""

from __future__ import annotations

import math
from typing import Optional

import comfy.model_patcher

from ..tstitch_core.conditioning import (CONDITIONING_WIDTH_SOURCES, ConditioningReach, conditioning_family,
                                         validate_conditioning_widths)


def _read_width(model: comfy.model_patcher.ModelPatcher, source: Optional[str]) -> Optional[int]:
    if source is None:
        return None
    kind, _, name = source.partition(":")
    if kind == "config":
        value = model.model.model_config.unet_config.get(name)
        return int(value) if isinstance(value, int) else None
    try:
        layer = model.model.diffusion_model.get_submodule(name)
    except AttributeError:  # a variant without that layer (Chroma has no vector_in): not checked
        return None
    width = getattr(layer, "in_features", None)
    return int(width) if isinstance(width, int) else None


def read_conditioning_widths(model: comfy.model_patcher.ModelPatcher) -> tuple[Optional[int], Optional[int]]:
    """(text-embedding width, pooled width) ``model`` takes, each None where its family's is not known."""
    family = conditioning_family(model.model.model_config.unet_config)
    if family is None:
        return None, None
    text, pooled = CONDITIONING_WIDTH_SOURCES[family]
    return _read_width(model, text), _read_width(model, pooled)


def _width(entry: dict, key: str) -> Optional[int]:
    value = entry.get(key)
    return int(value.shape[-1]) if hasattr(value, "shape") and len(value.shape) > 0 else None


def conditioning_reach(label: str, model, conds: dict, cfg: float, prefix: str = "",
                       own_prompts: bool = False, skip_uncond_at_cfg_1: bool = True) -> ConditioningReach:
    """What of ``conds`` (as a guider keeps them: {"positive": [entry, ...], ...}) reaches ``model``: the negative
    only where CFG runs it (ComfyUI skips it at cfg 1)."""
    text, pooled = read_conditioning_widths(model)
    entries = []
    for kind, items in conds.items():
        if kind == "negative" and skip_uncond_at_cfg_1 and math.isclose(cfg, 1.0):
            continue
        for entry in items:
            entries.append((f"{prefix}{kind}", _width(entry, "cross_attn"), _width(entry, "pooled_output")))
    return ConditioningReach(label, text, pooled, tuple(entries), own_prompts)


PAIR_WAY_OUT = ("One prompt can't serve both: use T-Stitch Guider in place of the pair (with SamplerCustomAdvanced) "
                "and give each model its own prompt from its own text encoder.")
STAGES_WAY_OUT = ("T-Stitch Stages hands every model the sampler's prompt: models with different text encoders need a "
                  "pair through T-Stitch Guider, each model its own prompt from its own text encoder.")


def check_conditioning_widths(reaches, stages_node: bool) -> None:
    validate_conditioning_widths(reaches, node="T-Stitch Stages" if stages_node else "T-Stitch",
                                 shared_way_out=STAGES_WAY_OUT if stages_node else PAIR_WAY_OUT)
