"""What every node's schema shares: the category and the words people search for it by."""

from __future__ import annotations

from comfy_api.latest import io

CATEGORY = "sampling/T-Stitch"

# the names people give this elsewhere: a refiner pass, MoE experts (Wan 2.2), a model switch
TWO_MODEL_ALIASES = ["t-stitch", "trajectory stitching", "refiner", "two models", "switch model", "model switch",
                     "MoE", "mixture of experts", "high noise expert", "low noise expert", "Wan 2.2", "speed up",
                     "faster", "small model", "draft model"]


def schema(*, search_aliases: list[str], subcategory: str | None = None, **fields) -> io.Schema:
    """``io.Schema(category=CATEGORY, **fields)`` (``subcategory`` below it: the DiT-only nodes), with
    ``search_aliases`` where the host's schema has that field (ComfyUI 0.3.64's has not: there the node search
    finds the names and descriptions only)."""
    if "search_aliases" in getattr(io.Schema, "__dataclass_fields__", {}):
        fields["search_aliases"] = search_aliases
    return io.Schema(category=CATEGORY if subcategory is None else f"{CATEGORY}/{subcategory}", **fields)
