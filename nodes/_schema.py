"""What every node's schema shares: the category, the words people search for it by, and the checks of what
ComfyUI's API hands a node unchecked."""

from __future__ import annotations

import functools
import inspect
import math

import torch

from comfy_api.latest import io

from ..tstitch_core.messages import quote_input

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


WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def refuse_odd_api_values(cls: type[io.ComfyNode]) -> type[io.ComfyNode]:
    """``cls`` with an ``execute`` that first refuses what ComfyUI's API hands a node unchecked: a value typed into
    an input a link must give (a number or null where a MODEL goes), and a NaN or infinite FLOAT (past min and
    max). Checked here, not in validate_inputs: naming an input there turns off ComfyUI's own checks of it."""
    if getattr(cls.execute, "tstitch_checked", False):  # done already (get_node_list may be asked again)
        return cls
    schema_ = cls.define_schema()
    inputs = {i.id: i for i in schema_.inputs}
    execute = cls.__dict__["execute"].__func__

    parameters = inspect.signature(execute)

    @functools.wraps(execute)
    def checked(cls_, *args, **kwargs):
        values = parameters.bind(cls_, *args, **kwargs).arguments  # a caller may pass inputs by position
        for name, value in values.items():
            spec = inputs.get(name)
            if spec is None:
                continue
            kind = spec.get_io_type()
            if kind == "FLOAT" and isinstance(value, float) and not math.isfinite(value):
                bounds = f" from {spec.min:g} to {spec.max:g}" if spec.min is not None and spec.max is not None else ""
                raise ValueError(f"{schema_.display_name}: {name} is {value}, which is no number to compute with; "
                                 f"give a finite number{bounds}.")
            if kind not in WIDGET_TYPES and not (value is None and spec.optional) and is_typed_in(value, kind):
                raise ValueError(f"{schema_.display_name}: {name} is given the value {quote_input(value, 80)}, but "
                                 f"it takes a {kind} link; connect a node's {kind} output to it.")
        return execute(cls_, *args, **kwargs)

    checked.tstitch_checked = True
    cls.execute = classmethod(checked)
    return cls


def is_typed_in(value, kind: str) -> bool:
    """Whether a link input's value is one a prompt's JSON holds (a list there is a link) rather than an output."""
    if kind == "LATENT":
        return not (isinstance(value, dict) and isinstance(value.get("samples"), torch.Tensor))
    return value is None or isinstance(value, (bool, int, float, str, dict))
