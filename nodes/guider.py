"""TStitchGuider: a stitched model whose small and large models each get their own prompts and CFG scale."""

from __future__ import annotations

import torch

import comfy.sampler_helpers
import comfy.samplers
from comfy_api.latest import io

from ._patching import StageGuidance, get_plan
from .stitch import CATEGORY, offload_idle_input, pair_inputs, stitch


class StitchedGuider(comfy.samplers.CFGGuider):
    """CFG guidance on a stitched model: the large model's prompts and scale as usual, the small model's its own."""

    def __init__(self, stitched_model, small_positive, small_negative, small_cfg: float):
        super().__init__(stitched_model)
        self.small_conds = {"positive": comfy.sampler_helpers.convert_cond(small_positive),
                            "negative": comfy.sampler_helpers.convert_cond(small_negative)}
        self.small_cfg = small_cfg
        self.stage_conds = {}

    def inner_sample(self, noise, latent_image, device, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                     **kwargs):
        # each earlier model's conditioning is prepared by that model, as CFGGuider prepares the large one's
        for index, stage in enumerate(get_plan(self.model_patcher).stages):
            model = stage.patcher.model
            image = model.process_latent_in(latent_image) if torch.count_nonzero(latent_image) > 0 else latent_image
            conds = {kind: [c.copy() for c in entries] for kind, entries in self.small_conds.items()}
            self.stage_conds[index] = comfy.samplers.process_conds(model, noise, conds, device, image, denoise_mask,
                                                                   seed, **kwargs)
        try:
            return super().inner_sample(noise, latent_image, device, sampler, sigmas, denoise_mask, callback,
                                        disable_pbar, seed, **kwargs)
        finally:
            for conds in self.stage_conds.values():
                comfy.sampler_helpers.cleanup_models(conds, [])
            self.stage_conds = {}

    def stage_guidance(self, index: int) -> StageGuidance:
        return StageGuidance(self.stage_conds[index], self.small_cfg)


class TStitchGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="TStitchGuider",
            display_name="T-Stitch Guider",
            category=CATEGORY,
            description=(
                "A guider for SamplerCustomAdvanced: T-Stitch with its own prompts and CFG scale for each model, "
                "in one sampler pass. Use it to guide the small model less, or when the two models need "
                "different conditioning. A nested pair as small_model gets the small prompts on all its models."),
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
        guider = StitchedGuider(stitch(small_model, large_model, small_fraction, switch_by, offload_idle_model),
                                small_positive, small_negative, small_cfg)
        guider.set_conds(large_positive, large_negative)
        guider.set_cfg(large_cfg)
        return io.NodeOutput(guider)
