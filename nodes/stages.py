"""TStitchStages: up to four stages, any model at any stage (large -> small -> large, as FlowBlending runs them)."""

from __future__ import annotations

from comfy_api.latest import io

from ..tstitch_core import SWITCH_BY_STEPS, SWITCH_MODES
from ..tstitch_core.stages import NODE_NAME, build_stage_rules, parse_until, validate_stage_models
from ._model_facts import blocks_line_up, check_stage_models
from ._patching import get_plan, stage_models
from .stitch import offload_idle_input
from ._schema import schema

UNTIL = (
    "Where each model but the last hands over, as shares of the trajectory, in order: \"0.2, 0.7\" runs model_1 "
    "to 0.2, model_2 from 0.2 to 0.7 and model_3 after. Each share is read as the pair's small_fraction.")


class TStitchStages(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        model_tip = "The model of stage {k}. Connect the same output to two stages to run one model twice."
        return schema(
            node_id="TStitchStages",
            display_name="T-Stitch Stages",
            search_aliases=["t-stitch", "FlowBlending", "large small large", "stages", "model stages",
                            "switch model", "refiner", "speed up", "faster", "small model"],
            description=(
                "Two to four models in stages along one sampling trajectory, in any order: large -> small -> large "
                "keeps the large model for the layout and the details and gives the middle to the small one "
                "(FlowBlending). Connect the output to any sampler."),
            inputs=[
                io.Model.Input("model_1", tooltip=model_tip.format(k=1) + " It runs the first, high-noise steps."),
                io.Model.Input("model_2", tooltip=model_tip.format(k=2)),
                io.Model.Input("model_3", optional=True, tooltip=model_tip.format(k=3)),
                io.Model.Input("model_4", optional=True, tooltip=model_tip.format(k=4)),
                io.String.Input("until", default="0.2, 0.7", tooltip=UNTIL),
                io.Combo.Input("switch_by", options=list(SWITCH_MODES), default=SWITCH_BY_STEPS, tooltip=(
                    "steps: each handover after round(share x steps) steps of the sampler's schedule. timestep: "
                    "at diffusion time t/T = 1 - share, whatever the scheduler, step count or denoise.")),
                offload_idle_input(),
            ],
            outputs=[io.Model.Output(tooltip="One model that hands each call to the model of its stage.")],
        )

    @classmethod
    def execute(cls, model_1, model_2, until, switch_by, model_3=None, model_4=None,
                offload_idle_model=False) -> io.NodeOutput:
        named = gather_stage_inputs(model_1, model_2, model_3, model_4)
        return io.NodeOutput(build_stages(named, parse_until(until, len(named)), switch_by, offload_idle_model))


def build_stages(named: list[tuple[str, object]], until: list[float], switch_by: str, offload_idle: bool = False):
    """The stitched model of (input name, model) stages handing over at ``until``, every check run first."""
    rules = build_stage_rules(until, switch_by)
    models = [model for _, model in named]
    first_names = {}
    for name, model in named:  # a model that runs twice is named by its first input
        first_names.setdefault(id(model), name)
    validate_stage_models([id(model) for model in models], [first_names[id(model)] for model in models])
    check_stage_models(named, rules)
    last = models[-1]
    return stage_models(models, rules, lambda model: blocks_line_up(model, last), offload_idle)


def gather_stage_inputs(*models) -> list[tuple[str, object]]:
    """(input name, model) of the stages in order; a gap (model_4 without model_3) or a T-Stitch model refused."""
    named = [(f"model_{k}", model) for k, model in enumerate(models, 1)]
    if models[2] is None and models[3] is not None:
        raise ValueError(f"{NODE_NAME}: model_4 is connected but model_3 is not; the stages run in input order, so "
                         "connect model_3 first.")
    named = [(name, model) for name, model in named if model is not None]
    for name, model in named:
        if get_plan(model) is not None:
            raise ValueError(f"{NODE_NAME}: {name} is already a T-Stitch model (a pair or stages). Connect the "
                             "models themselves: a stage runs one model, and up to four stages fit in one node.")
    return named
