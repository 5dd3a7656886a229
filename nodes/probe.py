"""TStitchAgreementProbe: along the large model's own trajectory, how far the small model's predictions agree."""

from __future__ import annotations

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
from comfy_api.latest import io, ui

from ..tstitch_core import (SWITCH_BY_STEPS, StepAgreement, SwitchRule, format_agreement_table,
                            leading_agreeing_steps, suggested_fraction)
from ._drawing import draw_agreement, to_image_tensor
from ._model_facts import check_stitchable
from ._schedule import timestep_function, timestep_max
from ._schema import TWO_MODEL_ALIASES, schema
from .stitch import ksampler_inputs


class TStitchAgreementProbe(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchAgreementProbe",
            display_name="T-Stitch Agreement Probe",
            search_aliases=[*TWO_MODEL_ALIASES, "probe", "agreement", "where to switch", "suggest fraction"],
            description=(
                "Finds where to switch: runs the large model's trajectory once and, at every step, also asks the "
                "small model for its prediction on the same input (it never steers). Plots their agreement "
                "(cosine of the two denoised predictions) step by step and suggests the largest small_fraction "
                "whose small steps all agree at min_agreement or better. Costs one large-model sampling plus one "
                "small-model call per step."),
            inputs=[
                io.Model.Input("small_model", tooltip="The small model (or a pair) that would run the early steps."),
                io.Model.Input("large_model", tooltip="The large model whose trajectory is followed."),
                *ksampler_inputs(),
                io.Float.Input("min_agreement", default=0.9, min=-1.0, max=1.0, step=0.005, round=0.001, tooltip=(
                    "The cosine similarity of the two predictions each small step must keep.")),
            ],
            outputs=[io.Image.Output(display_name="plot", tooltip="Agreement by step, coloured by the suggested split."),
                     io.String.Output(display_name="table", tooltip="The suggestion, then each step's figures."),
                     io.Float.Output(display_name="suggested_fraction", tooltip=(
                         "The largest small_fraction (switch_by steps) whose small steps all agree: wire it into "
                         "T-Stitch Model Pair."))],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, small_model, large_model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                latent_image, denoise, min_agreement) -> io.NodeOutput:
        check_stitchable(small_model, large_model, SwitchRule(1.0, SWITCH_BY_STEPS))  # the pair's own checks
        latent = comfy.sample.fix_empty_latent_channels(large_model, latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        sigmas = comfy.samplers.KSampler(large_model, steps, "cpu", scheduler=scheduler, denoise=denoise).sigmas
        progress = comfy.utils.ProgressBar(2 * (len(sigmas) - 1))
        visited = []  # (x, large model's x0) at the start of each step of the large trajectory

        def record(step, x0, x, total_steps):
            visited.append((x.detach().clone(), x0.detach().clone()))
            progress.update_absolute(step + 1)

        comfy.sample.sample(large_model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                            denoise=denoise, noise_mask=latent_image.get("noise_mask"), callback=record,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
        small_x0 = predict_at(small_model, [x for x, _ in visited], sigmas, cfg, positive, negative, latent, noise,
                              latent_image.get("noise_mask"), seed, lambda i: progress.update_absolute(len(visited) + i + 1))
        model_sampling = large_model.get_model_object("model_sampling")
        timestep_of, t_max = timestep_function(model_sampling), timestep_max(model_sampling)
        agreements = [StepAgreement(i, float(sigmas[i]), timestep_of(float(sigmas[i])) / t_max,
                                    *compare(small, large)) for i, (small, (_, large)) in enumerate(zip(small_x0, visited))]
        small_steps = leading_agreeing_steps(agreements, min_agreement)
        plot = to_image_tensor(draw_agreement(agreements, small_steps, min_agreement,
                                              f"T-Stitch agreement probe: {len(agreements)} steps, {scheduler}"))
        table = format_agreement_table(agreements, min_agreement)
        return io.NodeOutput(plot, table, suggested_fraction(agreements, min_agreement),
                             ui=ui.PreviewImage(plot, cls=cls))


def predict_at(model, inputs: list[torch.Tensor], sigmas, cfg, positive, negative, latent, noise, noise_mask, seed,
               on_call) -> list[torch.Tensor]:
    """The model's denoised prediction (with CFG) at each (input, sigma) of a trajectory it did not draw: one
    sampler run over the same schedule, so its conditioning, patches and loading are prepared as for sampling."""
    predictions = []

    def evaluate(sampling_model, x, run_sigmas, extra_args=None, callback=None, disable=None):
        s_in = x.new_ones([x.shape[0]])
        for i, x_i in enumerate(inputs):
            comfy.model_management.throw_exception_if_processing_interrupted()
            predictions.append(sampling_model(x_i.to(x), run_sigmas[i] * s_in, **(extra_args or {})).detach().clone())
            on_call(i)
        return x

    comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.KSAMPLER(evaluate), sigmas, positive, negative,
                               latent, noise_mask=noise_mask, disable_pbar=True, seed=seed)
    return predictions


def compare(small: torch.Tensor, large: torch.Tensor) -> tuple[float, float]:
    """(cosine similarity, relative L2) of two predictions, flattened."""
    a, b = small.float().flatten(), large.float().flatten().to(small.device)
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    return cosine, ((a - b).norm() / b.norm()).item()
