"""TStitchStageSampler: a SAMPLER that gives each stage of a stitched model its own sampler, in one pass."""

from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io

from ..tstitch_core.stage_sampler import NODE_NAME, group_steps_by_stage, parse_sampler_names
from ._patching import get_plan
from ._run import StitchRun
from ._schema import TWO_MODEL_ALIASES, schema

NAMES = (
    "One ComfyUI sampler per stage, first stage first: \"dpmpp_2m, euler\" runs the small model's steps with "
    "dpmpp_2m and the large model's with euler. A multistep sampler's history starts again at every handover.")


class StageSampler(comfy.samplers.KSAMPLER):
    """Runs each stage's own sampler function on the part of the schedule whose steps start in that stage."""

    def __init__(self, names: list[str]):
        self.names = names
        self.samplers = [comfy.samplers.sampler_object(name) for name in names]
        # the first stage's inpainting noise (ddim's is drawn from the seed), as one sampler's would be
        super().__init__(self._unused, {}, self.samplers[0].inpaint_options)

    @staticmethod
    def _unused(*args, **kwargs):
        raise RuntimeError("T-Stitch Stage Sampler samples only through its own sample().")

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        run = stitch_run_of(model_wrap)
        if len(run.stage_models) != len(self.samplers):
            raise ValueError(f"{NODE_NAME}: it names {len(self.samplers)} samplers, but the model being sampled has "
                             f"{len(run.stage_models)} stages; connect the model it was made for.")
        groups = group_steps_by_stage([run.pick(sigma) for sigma in sigmas[:-1]])

        def sample_stages(model, x, sigmas, extra_args=None, callback=None, disable=None):
            for stage, first, end in groups:
                sampler = self.samplers[stage]
                # callbacks count the steps of the whole pass; a CFG++ sampler's post-CFG function stays its own
                step_callback = None if callback is None else (
                    lambda info, offset=first: callback({**info, "i": info["i"] + offset}))
                x = sampler.sampler_function(model, x, sigmas[first:end + 1], extra_args=dict(extra_args or {}),
                                             callback=step_callback, disable=disable, **sampler.extra_options)
            return x

        whole = comfy.samplers.KSAMPLER(sample_stages, {}, self.inpaint_options)
        return whole.sample(model_wrap, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)


def stitch_run_of(guider) -> StitchRun:
    try:
        return StitchRun.of_main_model(guider.model_patcher)
    except ValueError:
        raise ValueError(f"{NODE_NAME}: the model being sampled is not a T-Stitch model, so it has no stages to give "
                         "samplers to. Sample the T-Stitch model this sampler was made for (SamplerCustom's model, or "
                         "the guider's).") from None


class TStitchStageSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchStageSampler",
            display_name=NODE_NAME,
            search_aliases=[*TWO_MODEL_ALIASES, "sampler per model", "mixed samplers", "different sampler"],
            description=(
                "A sampler for SamplerCustom or SamplerCustomAdvanced that runs each stage of a T-Stitch model with "
                "its own sampler, in one pass: euler for Lightning-LoRA experts, dpmpp_2m for a base model."),
            inputs=[
                io.Model.Input("model", tooltip=(
                    "The T-Stitch model (a pair, nested pair or Stages) the sampler will sample: only read, for its "
                    "number of stages. Connect the same model to the sampler node.")),
                io.String.Input("sampler_names", default="dpmpp_2m, euler", tooltip=NAMES),
            ],
            outputs=[io.Sampler.Output(tooltip="For SamplerCustom / SamplerCustomAdvanced with that model.")],
        )

    @classmethod
    def execute(cls, model, sampler_names) -> io.NodeOutput:
        plan = get_plan(model)
        if plan is None:
            raise ValueError(f"{NODE_NAME}: model is not a T-Stitch model; connect a T-Stitch Model Pair or T-Stitch "
                             "Stages output (the one the sampler node samples).")
        names = parse_sampler_names(sampler_names, comfy.samplers.SAMPLER_NAMES, len(plan.rules) + 1)
        return io.NodeOutput(StageSampler(names))
