"""TStitchGuider: a stitched model whose small and large models each get their own prompts and CFG scale."""

from __future__ import annotations

from typing import NamedTuple

import comfy.sampler_helpers
import comfy.samplers
from comfy_api.latest import io

from ._patching import get_plan
from ._schema import TWO_MODEL_ALIASES, schema
from .stitch import offload_idle_input, pair_inputs, stitch


class StageInputs(NamedTuple):
    """Conditioning (as set_conds converts it) and CFG scale a guider gives one earlier model."""

    conds: dict
    cfg: float


class StitchedGuider(comfy.samplers.CFGGuider):
    """CFG guidance on a stitched model: the large side's prompts and scale as usual, the small side's its own."""

    def __init__(self, stitched_model, small_positive, small_negative, small_cfg: float, small_side_stages: int):
        super().__init__(stitched_model)
        self.small_conds = {"positive": comfy.sampler_helpers.convert_cond(small_positive),
                            "negative": comfy.sampler_helpers.convert_cond(small_negative)}
        self.small_cfg = small_cfg
        self.small_side_stages = small_side_stages  # the first stages came in through small_model

    def tstitch_stage_inputs(self, index: int) -> StageInputs | None:
        """The small prompts and scale for the stages of small_model; None (the guider's own) for the rest."""
        return StageInputs(self.small_conds, self.small_cfg) if index < self.small_side_stages else None


class TStitchGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchGuider",
            display_name="T-Stitch Guider",
            search_aliases=[*TWO_MODEL_ALIASES, "cfg guider", "dual prompt"],
            description=(
                "A guider for SamplerCustomAdvanced: T-Stitch with its own prompts and CFG scale for each model, "
                "in one sampler pass. The small_* inputs go to every model of small_model, the large_* inputs to "
                "every model of large_model."),
            inputs=[
                *pair_inputs(),
                io.Conditioning.Input("small_positive", tooltip="What to include, for the small model's steps."),
                io.Conditioning.Input("small_negative", tooltip="What to exclude, for the small model's steps."),
                io.Float.Input("small_cfg", default=5.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="The CFG scale of the small model's steps."),
                io.Conditioning.Input("large_positive", tooltip="What to include, for the large model's steps."),
                io.Conditioning.Input("large_negative", tooltip="What to exclude, for the large model's steps."),
                io.Float.Input("large_cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="The CFG scale of the large model's steps."),
                offload_idle_input(),
            ],
            outputs=[io.Guider.Output(tooltip="A guider for SamplerCustomAdvanced.")],
        )

    @classmethod
    def execute(cls, small_model, large_model, small_fraction, switch_by, small_positive, small_negative, small_cfg,
                large_positive, large_negative, large_cfg, offload_idle_model=False) -> io.NodeOutput:
        plan = get_plan(small_model)
        guider = StitchedGuider(stitch(small_model, large_model, small_fraction, switch_by, offload_idle_model),
                                small_positive, small_negative, small_cfg, len(plan.stages) + 1 if plan else 1)
        guider.set_conds(large_positive, large_negative)
        guider.set_cfg(large_cfg)
        return io.NodeOutput(guider)
