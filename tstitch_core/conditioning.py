"""The text-embedding and pooled widths each model takes, and the check that a conditioning fits the model it reaches.

Two models of one latent space may still read different text encoders: Flux.2 dev takes 15360-wide embeddings,
Flux.2 klein 4B 7680, klein 9B 12288. One prompt can't serve both, and a model handed the other's fails inside its
first step ("mat1 and mat2 shapes cannot be multiplied"), so the widths are compared before any model runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

# Where each family keeps the widths it takes: "config:KEY" (its detected unet_config; the UNets always carry
# context_dim) or "layer:PATH" (the input layer of its diffusion model: detection leaves several of these widths at
# the model class's default, so the layer is what the weights say). A family not listed is not checked.
#   family: (text embeddings, pooled output)
CONDITIONING_WIDTH_SOURCES: dict[str, tuple[Optional[str], Optional[str]]] = {
    # SD1.x 768, SD2.x 1024, SDXL 2048; SDXL's pooled output goes in beside size embeddings (adm), not alone
    "unet": ("config:context_dim", None),
    "flux": ("layer:txt_in", "layer:vector_in.in_layer"),  # T5-XXL 4096, CLIP-L 768
    "flux2": ("layer:txt_in", None),  # dev 15360 (Mistral), klein 4B 7680 / 9B 12288 (Qwen3)
    "sd3": ("layer:context_embedder", "layer:y_embedder.mlp.0"),  # T5 (or padded CLIPs) 4096, CLIP-L + G 2048
    "wan2.1": ("layer:text_embedding.0", None),  # umT5-XXL 4096
    "ltxv": ("layer:caption_projection.linear_1", None),  # T5-XXL 4096
    "cosmos_predict2": ("layer:blocks.0.cross_attn.k_proj", None),  # T5 1024
    "kandinsky5": ("layer:text_embeddings.in_layer", "layer:pooled_text_embeddings.in_layer"),  # Qwen2.5-VL, CLIP-L
    "qwen_image": ("layer:txt_in", None),  # Qwen2.5-VL 3584
}


def conditioning_family(unet_config: dict) -> Optional[str]:
    """The key of ``CONDITIONING_WIDTH_SOURCES`` for a detected unet_config, or None for a family not listed."""
    family = unet_config.get("image_model")
    if family is None and "context_embedder_config" in unet_config:
        family = "sd3"  # MMDiT's detection names no image_model
    elif family is None and "context_dim" in unet_config and "model_channels" in unet_config:
        family = "unet"
    return family if family in CONDITIONING_WIDTH_SOURCES else None


@dataclass(frozen=True)
class ConditioningReach:
    """One model of a pass and the conditioning that reaches it: (input name, text width, pooled width) per entry,
    a width None where the entry has none."""

    model: str  # "small model (Flux2)"
    text_width: Optional[int]  # what the model takes; None: unknown, not checked
    pooled_width: Optional[int]
    entries: tuple[tuple[str, Optional[int], Optional[int]], ...]
    own_prompts: bool = False  # the entries are this model's own (T-Stitch Guider's small_* or large_* inputs)


def validate_conditioning_widths(reaches: Sequence[ConditioningReach], node: str = "T-Stitch",
                                 shared_way_out: str = "") -> None:
    """Raise before any model runs when a conditioning's text-embedding or pooled width is not the one the model it
    reaches takes, naming the models, the widths and the way out.

    Args:
        shared_way_out: what to do when one conditioning reaches models that take different widths.
    """
    for reach in reaches:
        for name, text, pooled in reach.entries:
            for kind, got, takes, takes_of in (
                    ("text embeddings", text, reach.text_width, lambda r: r.text_width),
                    ("a pooled output", pooled, reach.pooled_width, lambda r: r.pooled_width)):
                if got is None or takes is None or got == takes:
                    continue
                others = [r.model for r in reaches if r is not reach and takes_of(r) == got]
                whose = f", the width the {others[0]} takes" if others else ""
                if reach.own_prompts:
                    way_out = (f"Encode {name} with the {reach.model}'s own text encoder (the one its workflows "
                               f"use), which gives {takes}-wide {kind}.")
                elif others:
                    way_out = shared_way_out
                else:
                    way_out = f"Encode the prompt with the text encoder of the {reach.model}'s family."
                raise ValueError(
                    f"{node}: the {reach.model} takes {kind} {takes} wide, but the conditioning that reaches it "
                    f"({name}) is {got} wide{whose}. It would fail inside its first step. {way_out}")
