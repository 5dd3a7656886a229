"""TStitchFractionSweep: the same seed and prompt over several fractions, timed, as a labelled grid."""

from __future__ import annotations

import statistics
import time

import torch

import comfy.model_management
import comfy.sample
import comfy.utils
from comfy_api.latest import io, ui

from ..tstitch_core import SWITCH_BY_STEPS, SWITCH_MODES, SweepRow, format_caption, format_sweep_table, speedup
from ..tstitch_core.report import (LARGE_ALONE, SweepPlan, compute_latent_rel_l2, pick_warmup_fractions,
                                  resolve_sweep_plan)
from ..tstitch_core.validation import MAX_SWEEP_PLANS, parse_sweep_plans
from ._drawing import draw_grid, draw_tradeoff, to_image_tensor
from ._fidelity import image_metrics
from ._patching import get_plan
from ._schedule import stages_on_schedule
from ._progress import report_progress_text
from ._schema import schema
from .stages import build_stages
from .stitch import ksampler_inputs, stitch


class TStitchFractionSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchFractionSweep",
            display_name="T-Stitch Fraction Sweep",
            search_aliases=["t-stitch", "compare fractions", "xy plot", "grid", "refiner", "speed up"],
            description=(
                "Samples the same seed and prompt once per small_fraction and compares each result with the large "
                "model alone (f = 0, always sampled): speedup, PSNR, SSIM and latent distance, as a table, a "
                "labelled grid and a speed/quality plot."),
            inputs=[
                io.Model.Input("small_model", tooltip="The small model that runs the early steps."),
                io.Model.Input("large_model", tooltip="The large model that finishes."),
                io.Vae.Input("vae", tooltip="Decodes each result, after the last timed run."),
                io.String.Input("fractions", default="0, 0.2, 0.4, 0.6, 0.8, 1", tooltip=(
                    "What to try, by commas or spaces: a small_fraction f (the small model to f, then the large one), "
                    "or a window a-b (the large model to a, the small one to b, then the large one). At most "
                    f"{MAX_SWEEP_PLANS} different ones: every result is kept.")),
                io.Combo.Input("switch_by", options=list(SWITCH_MODES), default=SWITCH_BY_STEPS,
                               tooltip="steps or timestep, as on T-Stitch Model Pair."),
                *ksampler_inputs(),
                io.Int.Input("repeats", default=1, min=1, max=100, optional=True, tooltip=(
                    "Timed runs per fraction, the fractions taking turns; the table gives the median. More repeats "
                    "steady the speedups on a busy machine. An untimed warm-up comes first either way.")),
            ],
            outputs=[io.Image.Output(display_name="images",
                                     tooltip="Every result (every frame of a video), fraction by fraction."),
                     io.Image.Output(display_name="grid", tooltip=(
                         "The results side by side, labelled with speedup and SSIM; a video shows its first frame.")),
                     io.String.Output(display_name="table", tooltip=(
                         "Per fraction: small steps, seconds (the median of the repeats), speedup over the large model "
                         "alone, and against its result PSNR (over the images that differ), identical images, SSIM "
                         "and latent relative L2.")),
                     io.Image.Output(display_name="tradeoff", tooltip=(
                         "Speedup against SSIM to the large model alone, one point per fraction."))],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, small_model, large_model, vae, fractions, switch_by, seed, steps, cfg, sampler_name, scheduler,
                positive, negative, latent_image, denoise, repeats=1) -> io.NodeOutput:
        values, merged = parse_sweep_plans(fractions)
        # f = 0, the large model alone, is every result's reference: sampled whether listed or not
        runs = [LARGE_ALONE] + [f for f in values if f != LARGE_ALONE]
        # every check before any step
        models, stages, notes = {}, {}, {}
        for f in runs:
            models[f] = plan_model(small_model, large_model, f, switch_by)
            stages[f] = step_models(models[f], steps, sampler_name, scheduler, denoise)
            # a setting whose last model gets no step is sampled as what it is the same as, and the table says so
            last = small_model.model if f.start > 0.0 and f.end >= 1.0 else large_model.model
            resolved, notes[f] = resolve_sweep_plan(f, stages[f].count(id(last)))
            if resolved != f:
                models[f] = plan_model(small_model, large_model, resolved, switch_by)
                stages[f] = step_models(models[f], steps, sampler_name, scheduler, denoise)
        warmup = pick_warmup_fractions({f: set(s) for f, s in stages.items()})
        latent = comfy.sample.fix_empty_latent_channels(models[LARGE_ALONE], latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))

        def sample(fraction, callback):
            return comfy.sample.sample(models[fraction], noise, steps, cfg, sampler_name, scheduler, positive, negative,
                                       latent, denoise=denoise, noise_mask=latent_image.get("noise_mask"),
                                       callback=callback, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)

        # sampling, then one unit per decode, per fraction's metrics and per grid tile: Cancel reaches each
        sampled = (len(warmup) + repeats * len(runs)) * steps
        progress = comfy.utils.ProgressBar(sampled + len(runs) + 2 * len(values))
        samples, seconds = time_runs(sample, models, runs, warmup, repeats, steps, progress)
        # decoding only now: a VAE loaded between timed runs can evict the models, and the next run pays their reload
        report_progress_text("T-Stitch sweep: decoding and measuring the results")
        decoded = {}
        for index, fraction in enumerate(runs):
            comfy.model_management.throw_exception_if_processing_interrupted()
            decoded[fraction] = vae.decode(samples[fraction])  # [B, T, H, W, 3] for video latents
            progress.update_absolute(sampled + index + 1)
        reference = LARGE_ALONE
        flat = lambda images: images.reshape(-1, *images.shape[-3:])  # frames flattened, as VAEDecode does
        rows = []
        for index, fraction in enumerate(values):
            comfy.model_management.throw_exception_if_processing_interrupted()
            progress.update_absolute(sampled + len(runs) + index + 1)
            psnr, identical, ssim = image_metrics(flat(decoded[fraction]), flat(decoded[reference]))
            step_model = stages[fraction]
            rows.append(SweepRow(fraction, sum(m == id(small_model.model) for m in step_model), len(step_model),
                                 seconds[fraction], psnr, ssim,
                                 compute_latent_rel_l2(samples[fraction], samples[reference]), identical,
                                 flat(decoded[fraction]).shape[0], notes[fraction]))
        reference_seconds = seconds[reference]
        batch = torch.cat([flat(decoded[f]) for f in values])
        # one column per fraction, one row per image (or video's first frame) of the latent batch
        tiles = [decoded[f][:, 0] if decoded[f].ndim == 5 else decoded[f] for f in values]
        per_fraction = tiles[0].shape[0]
        order = [f * per_fraction + b for b in range(per_fraction) for f in range(len(values))]
        captions = [format_caption(rows[i // per_fraction], reference_seconds) for i in order]
        done = sampled + len(runs) + len(values)

        def tile_drawn(index):
            comfy.model_management.throw_exception_if_processing_interrupted()
            progress.update_absolute(done + (index + 1) // per_fraction)

        grid = to_image_tensor(draw_grid(torch.cat(tiles)[order], captions, columns=len(values), on_tile=tile_drawn))
        tradeoff = to_image_tensor(draw_tradeoff(
            [(r.fraction, speedup(r, reference_seconds), r.ssim) for r in rows],
            "T-Stitch trade-off: speedup and SSIM to the large model alone"))
        table = format_sweep_table(rows, reference_seconds, repeats, warmup, merged)
        return io.NodeOutput(batch, grid, table, tradeoff, ui=ui.PreviewImage(grid, cls=cls))


def time_runs(sample, models, runs: list[float], warmup: list[float], repeats: int, steps: int,
              progress) -> tuple[dict, dict]:
    """({fraction: samples}, {fraction: median seconds}): the warm-up runs untimed, then ``repeats`` rounds of
    every fraction in turn, so that drift (heat, other loads) reaches them all alike."""
    # load every model now, so no fraction's time includes loading them
    large_alone = models[LARGE_ALONE]
    comfy.model_management.load_models_gpu([large_alone, *large_alone.get_nested_additional_models()])
    order = [(f, None) for f in warmup] + [(f, r) for r in range(repeats) for f in runs]
    samples, seconds = {}, {f: [] for f in runs}
    for index, (fraction, round_) in enumerate(order):
        comfy.model_management.throw_exception_if_processing_interrupted()
        report_progress_text(f"T-Stitch sweep: untimed warm-up at small_fraction {fraction:g}" if round_ is None else
                             f"T-Stitch sweep: small_fraction {fraction:g} ({runs.index(fraction) + 1} of {len(runs)})"
                             + (f", round {round_ + 1} of {repeats}" if repeats > 1 else ""))

        def advance(step, x0, x, total_steps, done=index * steps):
            progress.update_absolute(done + step + 1)

        start = time.perf_counter()
        result = sample(fraction, advance)
        elapsed = time.perf_counter() - start
        if round_ is not None:
            samples.setdefault(fraction, result)
            seconds[fraction].append(elapsed)
    return samples, {f: statistics.median(times) for f, times in seconds.items()}


def plan_model(small_model, large_model, plan: SweepPlan, switch_by: str):
    """The stitched model of one sweep plan: the pair for T-Stitch's order, T-Stitch Stages for a window."""
    if plan.start == 0.0:
        return stitch(small_model, large_model, plan.end, switch_by)
    if plan.end >= 1.0:
        return build_stages([("large_model", large_model), ("small_model", small_model)], [plan.start], switch_by)
    return build_stages([("large_model", large_model), ("small_model", small_model), ("large_model", large_model)],
                        [plan.start, plan.end], switch_by)


def step_models(stitched, steps: int, sampler_name: str, scheduler: str, denoise: float) -> list[int]:
    """The id of the BaseModel that runs each step of the schedule KSampler would run with ``stitched``."""
    plan = get_plan(stitched)
    _, stages = stages_on_schedule(stitched, plan, steps, sampler_name, scheduler, denoise)
    models = [stage.patcher.model for stage in plan.stages] + [stitched.model]
    return [id(models[plan.stage_models[stage]]) for stage in stages]
