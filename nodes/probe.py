"""TStitchAgreementProbe: along the large model's own trajectory, how far the small model's predictions agree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
from comfy_api.latest import io, ui

from ..tstitch_core import (SWITCH_BY_STEPS, StepAgreement, SwitchRule, compute_stage_handovers,
                            describe_stage_steps, format_stages_agreement_table)
from ._drawing import draw_agreement, to_image_tensor
from ._model_facts import check_stitchable
from ._patching import unstitched_models
from ._run import model_label
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
                "small-model call per step. A nested pair on either side is probed model by model against the last, "
                "largest model: a curve, columns and a suggestion each, every model taking the steps it agrees on "
                "after the smaller one's; suggested_fraction is then the smallest model's, and the table gives the "
                "others'."),
            inputs=[
                io.Model.Input("small_model", tooltip=(
                    "The small model that would run the early steps, or a nested pair: each of its models is probed.")),
                io.Model.Input("large_model", tooltip=(
                    "The large model whose trajectory is followed; of a nested pair, its last model, and the models "
                    "before it are probed too.")),
                *ksampler_inputs(),
                io.Float.Input("min_agreement", default=0.9, min=-1.0, max=1.0, step=0.005, round=0.001, tooltip=(
                    "The cosine similarity of the two predictions each small step must keep.")),
            ],
            outputs=[io.Image.Output(display_name="plot", tooltip="Agreement by step, coloured by the suggested split."),
                     io.String.Output(display_name="table", tooltip="The suggestion, then each step's figures."),
                     io.Float.Output(display_name="suggested_fraction", tooltip=(
                         "The largest small_fraction (switch_by steps) whose small steps all agree: wire it into "
                         "T-Stitch Model Pair. With a nested pair, the smallest model's: the small_fraction of the "
                         "pair where it hands over to the next model."))],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, small_model, large_model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                latent_image, denoise, min_agreement) -> io.NodeOutput:
        check_stitchable(small_model, large_model, SwitchRule(1.0, SWITCH_BY_STEPS))  # the pair's own checks
        *large_side, large = unstitched_models(large_model)
        probed = unstitched_models(small_model) + large_side  # every model before the large one, in trajectory order
        settings = Settings(cfg, positive, negative, latent_image, seed)
        trajectory = follow_trajectory(large, steps, sampler_name, scheduler, denoise, settings, len(probed))
        stages = [trajectory.agreements_of(model, settings, index + 1) for index, model in enumerate(probed)]
        handovers = compute_stage_handovers(stages, min_agreement)
        labels = [model_label(i, len(probed) + 1, model) for i, model in enumerate([*probed, large])]
        plot = to_image_tensor(draw_agreement(
            [[a.cosine for a in stage] for stage in stages], handovers, plot_legend(labels, handovers, len(stages[0])),
            min_agreement, f"T-Stitch agreement probe: {len(stages[0])} steps, {scheduler}"))
        table = format_stages_agreement_table(stages, labels[:-1], min_agreement)
        return io.NodeOutput(plot, table, handovers[0] / len(stages[0]), ui=ui.PreviewImage(plot, cls=cls))


class Settings(NamedTuple):
    cfg: float
    positive: list
    negative: list
    latent_image: dict
    seed: int


@dataclass
class Trajectory:
    """The large model's own sampling: its sigmas and noise, and (x, its x0) at the start of each step."""

    large: object  # ModelPatcher
    sigmas: torch.Tensor
    noise: torch.Tensor
    visited: list[tuple[torch.Tensor, torch.Tensor]]
    progress: comfy.utils.ProgressBar

    def agreements_of(self, model, settings: Settings, pass_index: int) -> list[StepAgreement]:
        """``model``'s agreement with the large model at every step; it is the ``pass_index``-th pass of the
        progress bar (the large model's own sampling is pass 0)."""
        done = len(self.visited) * pass_index
        predictions = predict_at(model, [x for x, _ in self.visited], self.sigmas, self.noise, settings, self.large,
                                 lambda i: self.progress.update_absolute(done + i + 1))
        model_sampling = self.large.get_model_object("model_sampling")
        timestep_of, t_max = timestep_function(model_sampling), timestep_max(model_sampling)
        return [StepAgreement(i, float(self.sigmas[i]), timestep_of(float(self.sigmas[i])) / t_max,
                              *compare(small, large)) for i, (small, (_, large)) in enumerate(zip(predictions,
                                                                                                    self.visited))]


def follow_trajectory(large, steps, sampler_name, scheduler, denoise, settings: Settings,
                      probed_count: int) -> Trajectory:
    """The large model's own sampling; its progress bar counts that sampling and then every probed model's calls."""
    latent_image = settings.latent_image
    latent = comfy.sample.fix_empty_latent_channels(large, latent_image["samples"])
    noise = comfy.sample.prepare_noise(latent, settings.seed, latent_image.get("batch_index"))
    sigmas = comfy.samplers.KSampler(large, steps, "cpu", scheduler=scheduler, denoise=denoise).sigmas
    progress = comfy.utils.ProgressBar((1 + probed_count) * (len(sigmas) - 1))
    visited = []

    def record(step, x0, x, total_steps):
        visited.append((x.detach().clone(), x0.detach().clone()))
        progress.update_absolute(step + 1)

    comfy.sample.sample(large, noise, steps, settings.cfg, sampler_name, scheduler, settings.positive,
                        settings.negative, latent, denoise=denoise, noise_mask=latent_image.get("noise_mask"),
                        callback=record, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=settings.seed)
    return Trajectory(large, sigmas, noise, visited, progress)


def plot_legend(labels: list[str], handovers: list[int], steps: int) -> list[str]:
    """One line per model, the large one last: the steps the suggested split gives it."""
    if len(labels) == 2:
        small = handovers[0]
        return [f"small model: steps 1-{small} agree (suggested small_fraction {small / steps:.3f})"
                if small else "small model: no step agrees (suggested small_fraction 0)", "large model: the rest"]
    words = describe_stage_steps([b - a for a, b in zip([0, *handovers], [*handovers, steps])])
    return ([f"{label}: {w} (hands over at {k / steps:.3f})" for label, w, k in zip(labels, words, handovers)]
            + [f"{labels[-1]}: {words[-1]}, its trajectory followed"])


def predict_at(model, inputs: list[torch.Tensor], sigmas, noise, settings: Settings, large,
               on_call) -> list[torch.Tensor]:
    """The model's denoised prediction (with CFG) at each (input, sigma) of a trajectory it did not draw: one
    sampler run over the same schedule, so its conditioning, patches and loading are prepared as for sampling."""
    cfg, positive, negative, latent_image, seed = settings
    latent = comfy.sample.fix_empty_latent_channels(large, latent_image["samples"])
    predictions = []

    def evaluate(sampling_model, x, run_sigmas, extra_args=None, callback=None, disable=None):
        s_in = x.new_ones([x.shape[0]])
        for i, x_i in enumerate(inputs):
            comfy.model_management.throw_exception_if_processing_interrupted()
            predictions.append(sampling_model(x_i.to(x), run_sigmas[i] * s_in, **(extra_args or {})).detach().clone())
            on_call(i)
        return x

    comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.KSAMPLER(evaluate), sigmas,
                               positive, negative, latent, noise_mask=latent_image.get("noise_mask"),
                               disable_pbar=True, seed=seed)
    return predictions


def compare(small: torch.Tensor, large: torch.Tensor) -> tuple[float, float]:
    """(cosine similarity, relative L2) of two predictions, flattened."""
    a, b = small.float().flatten(), large.float().flatten().to(small.device)
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    return cosine, ((a - b).norm() / b.norm()).item()
