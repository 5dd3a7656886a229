"""TStitchModelPair and TStitchKSampler: two models, one sampling trajectory."""

from __future__ import annotations

import comfy.samplers
import nodes as comfy_nodes
from comfy_api.latest import io

from ..tstitch_core import SWITCH_BY_STEPS, SWITCH_MODES, SwitchRule, validate_rule
from ..tstitch_core.validation import validate_denoise
from ._model_facts import blocks_line_up, check_stitchable
from ._patching import refuse_stages_in_pair, stitch_models
from ._schema import TWO_MODEL_ALIASES, schema


def pair_inputs() -> list:
    return [
        io.Model.Input("small_model", tooltip=(
            "The small, fast model that runs the early, high-noise steps where the layout is drawn "
            "(BK-SDM-Tiny for SD1.x, SSD-1B or Vega for SDXL). Apply its LoRAs and patches before this node.")),
        io.Model.Input("large_model", tooltip=(
            "The large model that finishes the image. Its model sampling sets the schedule. Apply its "
            "LoRAs and patches before this node: patches applied to the output reach the large model only.")),
        # three decimals, so published boundaries such as Wan 2.2's 0.125 (t = 0.875) can be typed exactly
        io.Float.Input("small_fraction", default=0.4, min=0.0, max=1.0, step=0.005, round=0.001, tooltip=(
            "Share of the trajectory the small model runs: 0 is the large model alone, 1 the small model "
            "alone. The T-Stitch paper runs the small model for the first 40% at no loss in quality.")),
        io.Combo.Input("switch_by", options=list(SWITCH_MODES), default=SWITCH_BY_STEPS, tooltip=(
            "steps: the first round(small_fraction x steps) steps of the sampler's own schedule go to the "
            "small model. timestep: every step whose diffusion time t/T is at least 1 - small_fraction "
            "does, whatever the scheduler, step count or denoise.")),
    ]


def ksampler_inputs(seed_control: bool | io.ControlAfterGenerate = True) -> list:
    """KSampler's inputs after its model, with its names, defaults and ranges; ``seed_control``: what the seed does
    after a run (True: randomize, as KSampler's)."""
    return [
        io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=seed_control,
                     tooltip="The random seed used for creating the noise."),
        io.Int.Input("steps", default=20, min=1, max=10000,
                     tooltip="The number of steps used in the denoising process."),
        io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="The Classifier-Free Guidance scale, used by both models."),
        io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip=(
            "The sampling algorithm. Multistep samplers keep their history across the switch.")),
        io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                       tooltip="The scheduler, computed from the large model's model sampling."),
        io.Conditioning.Input("positive", tooltip="The conditioning describing what to include in the image."),
        io.Conditioning.Input("negative", tooltip="The conditioning describing what to exclude from the image."),
        io.Latent.Input("latent_image", tooltip="The latent image to denoise."),
        io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip=(
            "The amount of denoising applied; lower values keep the structure of the input image.")),
    ]


def offload_idle_input():
    return io.Boolean.Input("offload_idle_model", default=False, optional=True, tooltip=(
        "Keep only the model that is running loaded: the small model is handed back to ComfyUI's model "
        "management before the large one loads. Peak VRAM is about the larger model instead of both; each "
        "switch costs a model load."))


def stitch(small_model, large_model, small_fraction: float, switch_by: str, offload_idle_model: bool = False):
    rule = validate_rule(SwitchRule(small_fraction, switch_by))
    refuse_stages_in_pair(small_model, large_model)
    check_stitchable(small_model, large_model, rule)
    return stitch_models(small_model, large_model, rule, lambda model: blocks_line_up(model, large_model),
                         offload_idle_model)


class TStitchModelPair(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchModelPair",
            display_name="T-Stitch Model Pair",
            search_aliases=TWO_MODEL_ALIASES,
            description=(
                "T-Stitch: the small model denoises the first part of the trajectory and the large model the "
                "rest, in one sampler pass. Connect the output to KSampler or any "
                "sampler; a pair can be the large_model of another pair for three stages."),
            inputs=[*pair_inputs(), offload_idle_input()],
            outputs=[io.Model.Output(tooltip="One model that hands each model call to the small or the large model.")],
        )

    @classmethod
    def execute(cls, small_model, large_model, small_fraction, switch_by, offload_idle_model=False) -> io.NodeOutput:
        return io.NodeOutput(stitch(small_model, large_model, small_fraction, switch_by, offload_idle_model))


class TStitchKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchKSampler",
            display_name="T-Stitch KSampler",
            search_aliases=[*TWO_MODEL_ALIASES, "ksampler"],
            description=(
                "KSampler with two models: the small model runs the first small_fraction of the trajectory "
                "and the large model the rest (T-Stitch). Same result as T-Stitch Model Pair into KSampler."),
            inputs=[*pair_inputs(), *ksampler_inputs(), offload_idle_input()],
            outputs=[io.Latent.Output(tooltip="The denoised latent.")],
        )

    @classmethod
    def execute(cls, small_model, large_model, small_fraction, switch_by, seed, steps, cfg, sampler_name, scheduler,
                positive, negative, latent_image, denoise=1.0, offload_idle_model=False) -> io.NodeOutput:
        validate_denoise(steps, denoise)
        model = stitch(small_model, large_model, small_fraction, switch_by, offload_idle_model)
        return io.NodeOutput(*comfy_nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive,
                                                          negative, latent_image, denoise=denoise))
