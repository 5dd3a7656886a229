"""TStitchAgreementProbe: along the large model's own trajectory, how far the small model's predictions agree."""

from __future__ import annotations

import math
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
from ..tstitch_core.agreement import (DEFAULT_MIN_AGREEMENT, longest_agreeing_run, suggest_stages,
                                     validate_min_agreement)
from ._drawing import draw_agreement, to_image_tensor
from ._model_facts import check_stitchable
from ._patching import unstitched_models
from ._run import model_label
from ._schedule import sampler_sigmas, timestep_function, timestep_max
from ._schema import TWO_MODEL_ALIASES, schema
from .stitch import ksampler_inputs


# a seed that stays as typed after a run; hosts before ComfyUI 0.33's ControlAfterGenerate show their default control
FIXED_SEED = getattr(getattr(io, "ControlAfterGenerate", None), "fixed", True)


class TStitchAgreementProbe(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchAgreementProbe",
            display_name="T-Stitch Agreement Probe",
            search_aliases=[*TWO_MODEL_ALIASES, "probe", "agreement", "where to switch", "suggest fraction",
                            "suggest window", "FlowBlending", "large small large"],
            description=(
                "Finds where to switch: follows the large model's trajectory, asks the small model at each step, "
                "compares the directions the sampler would step in, and suggests the largest small_fraction whose "
                "small steps all agree. More in the help page."),
            inputs=[
                io.Model.Input("small_model", tooltip=(
                    "The small model that would run the early steps, or a nested pair: each of its models is probed.")),
                io.Model.Input("large_model", tooltip=(
                    "The large model whose trajectory is followed; of a nested pair, its last model, and the models "
                    "before it are probed too.")),
                *ksampler_inputs(seed_control=FIXED_SEED),  # a rerun keeps its cached result
                io.Float.Input("min_agreement", default=DEFAULT_MIN_AGREEMENT, min=-1.0, max=1.0, step=0.0001,
                               round=0.0001, tooltip=(
                    "The cosine similarity of the two models' predicted noise (or velocity) each small step must "
                    "keep. The default is calibrated on a trained pair: its suggestion keeps the large model's "
                    "quality.")),
            ],
            outputs=[io.Image.Output(display_name="plot", tooltip="Agreement by step, coloured by the suggested split."),
                     io.String.Output(display_name="table", tooltip="The suggestion, then each step's figures."),
                     io.Float.Output(display_name="suggested_fraction", tooltip=(
                         "The largest small_fraction (switch_by steps) whose small steps all agree: wire it into "
                         "T-Stitch Model Pair. With a nested pair, the smallest model's: the small_fraction of the "
                         "pair where it hands over to the next model.")),
                     # last, so that links to the outputs above keep their index
                     io.String.Output(display_name="suggested_stages", tooltip=(
                         "The longest run of agreeing steps as T-Stitch Stages' until (switch_by steps): \"a, b\" "
                         "for large, small, large; \"b\" when it starts at step 1; \"0\" when no step agrees. "
                         "More in the help page."))],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, small_model, large_model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                latent_image, denoise, min_agreement) -> io.NodeOutput:
        min_agreement = validate_min_agreement(min_agreement)
        check_stitchable(small_model, large_model, SwitchRule(1.0, SWITCH_BY_STEPS))  # the pair's own checks
        *large_side, large = unstitched_models(large_model)
        probed = unstitched_models(small_model) + large_side  # every model before the large one, in trajectory order
        settings = Settings(cfg, positive, negative, latent_image, seed)
        trajectory = follow_trajectory(large, steps, sampler_name, scheduler, denoise, settings, len(probed))
        stages = [trajectory.agreements_of(model, settings, index + 1) for index, model in enumerate(probed)]
        handovers = compute_stage_handovers(stages, min_agreement)
        labels = [model_label(i, len(probed) + 1, model) for i, model in enumerate([*probed, large])]
        # the window is the smallest model's alone, against the large model
        window, until = longest_agreeing_run(stages[0], min_agreement), suggest_stages(stages[0], min_agreement)
        plot = to_image_tensor(draw_agreement(
            [[a.cosine for a in stage] for stage in stages], handovers, plot_legend(labels, handovers, len(stages[0])),
            min_agreement, f"T-Stitch agreement probe: {len(stages[0])} steps, {scheduler}", window=window,
            window_label=window_legend(until, window, "small model" if len(stages) == 1 else "smallest model")))
        table = format_stages_agreement_table(stages, labels[:-1], min_agreement)
        return io.NodeOutput(plot, table, handovers[0] / len(stages[0]), until, ui=ui.PreviewImage(plot, cls=cls))


class Settings(NamedTuple):
    cfg: float
    positive: list
    negative: list
    latent_image: dict
    seed: int


# samplers that step on a schedule of their own between the first and last sigma, so no step lines up with one of
# the schedule the probe reports (the other samplers are checked call by call while sampling)
OWN_SCHEDULE_SAMPLERS = ("dpm_fast", "dpm_adaptive")


def refuse_unprobeable(sampler_name: str, sigmas: torch.Tensor, denoise: float) -> None:
    if sampler_name in OWN_SCHEDULE_SAMPLERS:
        raise ValueError(
            f"T-Stitch Agreement Probe: the {sampler_name} sampler evaluates the model at sigmas of its own, not at "
            f"the scheduler's steps, so there is no step to compare the models at. Probe with another sampler "
            f"(euler, dpmpp_2m, ...): where two models agree depends on the sigmas, not much on the sampler.")
    if len(sigmas) < 2:
        raise ValueError(f"T-Stitch Agreement Probe: denoise {denoise:g} leaves no step to probe. Set denoise above 0.")


@dataclass
class VisitedStep:
    """Where the large model's trajectory passed at one step: the x and sigma of the model call the step took its
    prediction from, and that prediction (with CFG); kept on ComfyUI's intermediate device between passes."""

    x: torch.Tensor
    sigma: torch.Tensor  # as the sampler passed it, one per batch item
    x0: torch.Tensor


class StepRecorder:
    """Records, for each step of ``sigmas``, the model call that step's prediction came from: the last call at the
    step's sigma before the sampler reports the step. Second-order samplers also call the model at the next sigma
    on a trial x (Heun), and uni_pc reports a step after moving x on, so neither the first call at a sigma nor the
    callback's x would do. Only the current step's candidate stays on the sampling device."""

    def __init__(self, sigmas: torch.Tensor, sampler_name: str):
        self.sigmas, self.sampler_name = sigmas.tolist(), sampler_name
        self.steps: list[VisitedStep] = []
        self.candidate: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.store = comfy.model_management.intermediate_device()

    def on_call(self, x: torch.Tensor, sigma: torch.Tensor, x0: torch.Tensor) -> None:
        step = len(self.steps)
        if step < len(self.sigmas) - 1 and math.isclose(float(sigma.reshape(-1)[0]), self.sigmas[step], rel_tol=1e-5):
            self.candidate = (x.detach().clone(), sigma.detach().clone(), x0.detach().clone())

    def on_step(self, step: int) -> None:
        if step != len(self.steps) or self.candidate is None:
            raise ValueError(self.misaligned(step))
        x, sigma, x0 = (t.to(self.store) for t in self.candidate)
        self.steps.append(VisitedStep(x, sigma, x0))
        self.candidate = None

    def check_complete(self) -> None:
        if len(self.steps) != len(self.sigmas) - 1:
            raise ValueError(self.misaligned(len(self.steps)))

    def misaligned(self, step: int) -> str:
        return (f"T-Stitch Agreement Probe: the {self.sampler_name} sampler did not evaluate the model at step "
                f"{step + 1}'s sigma ({self.sigmas[min(step, len(self.sigmas) - 2)]:.4g}) before reporting that step, "
                f"so the steps it takes can't be compared with the schedule's. Probe with another sampler (euler, "
                f"dpmpp_2m, ...).")


class RecordingModel:
    """The sampler's denoiser (KSamplerX0Inpaint), reporting every call's (x, sigma, prediction)."""

    def __init__(self, denoiser, on_call):
        self._denoiser, self._on_call = denoiser, on_call

    def __call__(self, x, sigma, **kwargs):
        x0 = self._denoiser(x, sigma, **kwargs)
        self._on_call(x, sigma, x0)
        return x0

    def __getattr__(self, name):  # inner_model, sigmas, ...: what samplers read from their denoiser
        return getattr(self._denoiser, name)


def recording_sampler(sampler_name: str, on_call) -> comfy.samplers.KSAMPLER:
    """``sampler_name``'s sampler as KSampler builds it, its denoiser's calls reported to ``on_call``."""
    real = comfy.samplers.sampler_object(sampler_name)

    def sample(model, noise, sigmas, *args, **kwargs):
        return real.sampler_function(RecordingModel(model, on_call), noise, sigmas, *args, **kwargs)

    return comfy.samplers.KSAMPLER(sample, real.extra_options, real.inpaint_options)


@dataclass
class Trajectory:
    """The large model's own sampling: its sigmas and noise, and where it passed at each step."""

    large: object  # ModelPatcher
    sigmas: torch.Tensor
    noise: torch.Tensor
    visited: list[VisitedStep]
    progress: comfy.utils.ProgressBar

    def agreements_of(self, model, settings: Settings, pass_index: int) -> list[StepAgreement]:
        """``model``'s agreement with the large model at every step; it is the ``pass_index``-th pass of the
        progress bar (the large model's own sampling is pass 0)."""
        done = len(self.visited) * pass_index
        figures = compare_at(model, self.visited, self.sigmas, self.noise, settings, self.large,
                             lambda i: self.progress.update_absolute(done + i + 1))
        model_sampling = self.large.get_model_object("model_sampling")
        timestep_of, t_max = timestep_function(model_sampling), timestep_max(model_sampling)
        return [StepAgreement(i, float(self.sigmas[i]), timestep_of(float(self.sigmas[i])) / t_max, *figure)
                for i, figure in enumerate(figures)]


def follow_trajectory(large, steps, sampler_name, scheduler, denoise, settings: Settings,
                      probed_count: int) -> Trajectory:
    """The large model's own sampling, as KSampler runs it; its progress bar counts that sampling and then every
    probed model's calls."""
    latent_image = settings.latent_image
    latent = comfy.sample.fix_empty_latent_channels(large, latent_image["samples"])
    noise = comfy.sample.prepare_noise(latent, settings.seed, latent_image.get("batch_index"))
    sigmas = sampler_sigmas(large, steps, sampler_name, scheduler, denoise)
    refuse_unprobeable(sampler_name, sigmas, denoise)
    progress = comfy.utils.ProgressBar((1 + probed_count) * (len(sigmas) - 1))
    recorder = StepRecorder(sigmas, sampler_name)

    def on_step(step, x0, x, total_steps):
        recorder.on_step(step)
        progress.update_absolute(step + 1)

    comfy.sample.sample_custom(large, noise, settings.cfg, recording_sampler(sampler_name, recorder.on_call), sigmas,
                               settings.positive, settings.negative, latent, noise_mask=latent_image.get("noise_mask"),
                               callback=on_step, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=settings.seed)
    recorder.check_complete()
    return Trajectory(large, sigmas, noise, recorder.steps, progress)


def plot_legend(labels: list[str], handovers: list[int], steps: int) -> list[str]:
    """One line per model, the large one last: the steps the suggested split gives it."""
    if len(labels) == 2:
        small = handovers[0]
        return [f"small model: steps 1-{small} agree (suggested small_fraction {small / steps:.3f})"
                if small else "small model: no step agrees (suggested small_fraction 0)", "large model: the rest"]
    words = describe_stage_steps([b - a for a, b in zip([0, *handovers], [*handovers, steps])])
    return ([f"{label}: {w} (hands over at {k / steps:.3f})" for label, w, k in zip(labels, words, handovers)]
            + [f"{labels[-1]}: {words[-1]}, its trajectory followed"])


def window_legend(until: str, window: tuple[int, int], small: str) -> str:
    """The plot's line on suggested_stages, beside the white bracket over the window's steps."""
    start, end = window
    steps = f"step {start + 1}" if end - start == 1 else f"steps {start + 1}-{end}"
    if start == end:
        return f'suggested_stages "0": the {small} agrees at no step'
    if start == 0:
        return f'suggested_stages "{until}": {steps} to the {small}, then the large model (T-Stitch\'s split)'
    return f'suggested_stages "{until}": the large model, {steps} to the {small}, the large model again'


def compare_at(model, visited: list[VisitedStep], sigmas, noise, settings: Settings, large,
               on_call) -> list[tuple[float, float, str]]:
    """The model's prediction (with CFG) at each step's (x, sigma) of a trajectory it did not draw, compared with
    the large model's at once (so no prediction is kept): one sampler run over the same schedule, so its
    conditioning, patches and loading are prepared as for sampling."""
    cfg, positive, negative, latent_image, seed = settings
    latent = comfy.sample.fix_empty_latent_channels(large, latent_image["samples"])
    figures = []

    def evaluate(sampling_model, x, run_sigmas, extra_args=None, callback=None, disable=None):
        for i, step in enumerate(visited):
            comfy.model_management.throw_exception_if_processing_interrupted()
            at_x, at_sigma = step.x.to(x), step.sigma.to(run_sigmas)
            prediction = sampling_model(at_x, at_sigma, **(extra_args or {}))
            figures.append(compare(prediction, step.x0.to(prediction.device), at_x.to(prediction.device),
                                   at_sigma.to(prediction.device)))
            on_call(i)
        return x

    comfy.sample.sample_custom(model, noise, cfg, comfy.samplers.KSAMPLER(evaluate), sigmas,
                               positive, negative, latent, noise_mask=latent_image.get("noise_mask"),
                               disable_pbar=True, seed=seed)
    return figures


def sampler_direction(x: torch.Tensor, sigma: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """(x - x0) / sigma: the direction every k-diffusion sampler steps along (Euler's derivative), the predicted
    noise of an eps model and the velocity of a flow model. Not x0: at high noise x0 = x - sigma * noise
    amplifies every difference in the predicted noise by sigma, so two good models look most different exactly
    where they agree most (on a trained DiT pair: x0 cosine 0.45 at step 1, this one's 0.9999)."""
    sigma = sigma.float().reshape(-1, *[1] * (x.ndim - 1))
    return (x.float() - x0.float()) / sigma


def compare(small: torch.Tensor, large: torch.Tensor, x: torch.Tensor,
            sigma: torch.Tensor) -> tuple[float, float, str]:
    """(cosine similarity, relative L2, which prediction is not finite: "", "small", "large" or "both") of the two
    models' sampler directions at (x, sigma), from their denoised predictions, flattened."""
    bad = [name for name, t in (("small", small), ("large", large)) if not torch.isfinite(t).all()]
    a = sampler_direction(x, sigma, small).flatten()
    b = sampler_direction(x, sigma, large.to(small.device)).flatten()
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    return cosine, ((a - b).norm() / b.norm()).item(), "both" if len(bad) == 2 else "".join(bad)
