"""TStitchSchedulePreview: which model runs which step, before sampling."""

from __future__ import annotations

import comfy.samplers
from comfy_api.latest import io, ui

from ..tstitch_core import describe_stage_steps
from ._drawing import draw_schedule, to_image_tensor
from ._patching import get_plan
from ._run import stage_labels
from ._schedule import stage_of_each_step, stages_on_schedule
from ._schema import schema


def stitched_model_of(model, guider):
    """The stitched MODEL behind a preview's input, or a ValueError saying what to connect."""
    if (model is None) == (guider is None):
        raise ValueError("Connect exactly one of model (from T-Stitch Model Pair) or guider (from T-Stitch Guider).")
    stitched = model if model is not None else getattr(guider, "model_patcher", None)
    if stitched is None or get_plan(stitched) is None:
        source = "model" if model is not None else "guider"
        raise ValueError(f"The {source} input is not a T-Stitch {source}: connect the output of "
                         f"{'T-Stitch Model Pair' if model is not None else 'T-Stitch Guider'}.")
    return stitched


def check_sigmas_to_preview(sigmas: list[float]) -> None:
    """A ValueError where a step would start from a sigma the plot can't place (its axis is log sigma)."""
    for step, sigma in enumerate(sigmas[:-1]):
        if not (0 < sigma < float("inf")):  # NaN too
            raise ValueError(
                f"T-Stitch Schedule Preview: the sigmas input has sigma {sigma:g} at step {step + 1} of "
                f"{len(sigmas) - 1}; a schedule reaches 0 only at its end, and every sigma before it must be a finite "
                "number above 0. Connect sigmas from a scheduler node, or cut the schedule with SplitSigmas.")


class TStitchSchedulePreview(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchSchedulePreview",
            display_name="T-Stitch Schedule Preview",
            search_aliases=["t-stitch", "schedule plot", "sigma plot", "switch preview", "refiner", "MoE"],
            description=(
                "Plots the sigma schedule a sampler would run, each step coloured by the model that runs it, "
                "with each model's share of the steps: see the switch before sampling."),
            inputs=[
                io.Model.Input("model", optional=True, tooltip="A stitched model, from T-Stitch Model Pair."),
                io.Guider.Input("guider", optional=True, tooltip="Or a guider, from T-Stitch Guider."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="The sampler's number of steps."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                               tooltip="The sampler's scheduler."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="The sampler's denoise: below 1, only the last part of the schedule runs."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="euler",
                               optional=True, tooltip=(
                                   "The sampler: dpm_2, dpm_2_ancestral, uni_pc and uni_pc_bh2 run a schedule of "
                                   "steps + 1 with the next-to-last sigma left out, so their steps fall elsewhere.")),
                io.Sigmas.Input("sigmas", optional=True, tooltip=(
                    "Sigmas to preview instead of the schedule of steps, scheduler and denoise (which are then "
                    "ignored): from T-Stitch Stage Sigmas, say, for SamplerCustom with the pair.")),
            ],
            outputs=[io.Image.Output(display_name="plot", tooltip="The schedule, coloured by model."),
                     io.String.Output(display_name="summary", tooltip="Each model's steps, in words.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, steps, scheduler, denoise, model=None, guider=None, sampler_name="euler",
                sigmas=None) -> io.NodeOutput:
        stitched = stitched_model_of(model, guider)
        plan = get_plan(stitched)
        sigmas_given = sigmas is not None
        if not sigmas_given:
            sigmas, stages = stages_on_schedule(stitched, plan, steps, sampler_name, scheduler, denoise)
        else:
            sigmas = sigmas.cpu().float().tolist()
            check_sigmas_to_preview(sigmas)
            stages = stage_of_each_step(plan, stitched.get_model_object("model_sampling"), sigmas)
        if len(sigmas) < 2:
            raise ValueError("The sigmas input has no steps to preview." if sigmas_given
                             else f"denoise {denoise} leaves no steps to preview.")
        labels = stage_labels(plan, stitched)  # a model per stage; T-Stitch Stages may run one in two stages
        counts = [stages.count(index) for index in range(len(labels))]
        legend = [f"{label}: {words} ({100 * n / len(stages):.0f}%)"
                  for label, words, n in zip(labels, describe_stage_steps(counts), counts)]
        settings = "given sigmas" if sigmas_given else f"{scheduler}, denoise {denoise:g}"
        title = f"T-Stitch schedule: {len(stages)} steps, {settings}"
        plot = to_image_tensor(draw_schedule(sigmas, stages, legend, title))
        return io.NodeOutput(plot, "\n".join(legend), ui=ui.PreviewImage(plot, cls=cls))
