"""TStitchFractionSweep: the same seed and prompt over several fractions, timed, as a labelled grid."""

from __future__ import annotations

import time

import torch

import comfy.model_management
import comfy.sample
import comfy.utils
from comfy_api.latest import io, ui

from ..tstitch_core import (SWITCH_BY_STEPS, SWITCH_MODES, SweepRow, format_caption, format_sweep_table, parse_fractions,
                            speedup)
from ._drawing import draw_grid, draw_tradeoff, to_image_tensor
from ._fidelity import image_metrics, latent_rel_l2
from ._patching import get_plan
from ._schedule import stages_on_schedule
from ._progress import report_progress_text
from ._schema import schema
from .stitch import ksampler_inputs, stitch


class TStitchFractionSweep(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="TStitchFractionSweep",
            display_name="T-Stitch Fraction Sweep",
            search_aliases=["t-stitch", "compare fractions", "xy plot", "grid", "refiner", "speed up"],
            description=(
                "Samples the same seed and prompt once per small_fraction and measures each result against the "
                "large model alone (f = 0, always sampled): speedup, PSNR, SSIM and latent distance, in a table, "
                "a labelled grid and a speed/quality plot. Pick your trade-off. For video, images holds every "
                "frame, the metrics average over frames and the grid shows each video's first frame."),
            inputs=[
                io.Model.Input("small_model", tooltip="The small model that runs the early steps."),
                io.Model.Input("large_model", tooltip="The large model that finishes."),
                io.Vae.Input("vae", tooltip="Decodes each result for the grid."),
                io.String.Input("fractions", default="0, 0.2, 0.4, 0.6, 0.8, 1", tooltip=(
                    "small_fraction values to try, separated by commas or spaces.")),
                io.Combo.Input("switch_by", options=list(SWITCH_MODES), default=SWITCH_BY_STEPS,
                               tooltip="steps or timestep, as on T-Stitch Model Pair."),
                *ksampler_inputs(),
            ],
            outputs=[io.Image.Output(display_name="images",
                                     tooltip="Every result (every frame of a video), fraction by fraction."),
                     io.Image.Output(display_name="grid", tooltip=(
                         "The results side by side, labelled with speedup and SSIM; a video shows its first frame.")),
                     io.String.Output(display_name="table", tooltip=(
                         "Per fraction: small steps, seconds, speedup over the large model alone, and PSNR, SSIM "
                         "and latent relative L2 against its result (video: the mean over frames).")),
                     io.Image.Output(display_name="tradeoff", tooltip=(
                         "Speedup against SSIM to the large model alone, one point per fraction."))],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, small_model, large_model, vae, fractions, switch_by, seed, steps, cfg, sampler_name, scheduler,
                positive, negative, latent_image, denoise) -> io.NodeOutput:
        values = parse_fractions(fractions)
        # f = 0, the large model alone, is every result's reference: sampled first, whether listed or not
        runs = [0.0] + [f for f in values if f != 0.0]
        models = {f: stitch(small_model, large_model, f, switch_by) for f in runs}  # every check before any step
        latent = comfy.sample.fix_empty_latent_channels(models[0.0], latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        # load both models now, so no fraction's time includes loading them
        comfy.model_management.load_models_gpu([models[0.0], *models[0.0].get_nested_additional_models()])
        progress = comfy.utils.ProgressBar(len(runs) * steps)
        results = {}
        for index, fraction in enumerate(runs):
            comfy.model_management.throw_exception_if_processing_interrupted()
            report_progress_text(f"T-Stitch sweep: small_fraction {fraction:g} ({index + 1} of {len(runs)})")

            def advance(step, x0, x, total_steps, done=index * steps):
                progress.update_absolute(done + step + 1)

            start = time.perf_counter()
            samples = comfy.sample.sample(models[fraction], noise, steps, cfg, sampler_name, scheduler, positive,
                                          negative, latent, denoise=denoise, noise_mask=latent_image.get("noise_mask"),
                                          callback=advance, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
                                          seed=seed)
            seconds = time.perf_counter() - start
            decoded = vae.decode(samples)  # [B, T, H, W, 3] for video latents
            results[fraction] = (samples, decoded, seconds)

        reference_samples, reference_decoded, reference_seconds = results[0.0]
        flat = lambda decoded: decoded.reshape(-1, *decoded.shape[-3:])  # frames flattened, as VAEDecode does
        rows = []
        for fraction in values:
            samples, decoded, seconds = results[fraction]
            psnr, ssim = image_metrics(flat(decoded), flat(reference_decoded))
            small_steps, total = small_steps_of(models[fraction], steps, scheduler, denoise)
            rows.append(SweepRow(fraction, small_steps, total, seconds, psnr, ssim,
                                 latent_rel_l2(samples, reference_samples)))
        batch = torch.cat([flat(results[f][1]) for f in values])
        # one column per fraction, one row per image (or video's first frame) of the latent batch
        tiles = [results[f][1][:, 0] if results[f][1].ndim == 5 else results[f][1] for f in values]
        per_fraction = tiles[0].shape[0]
        order = [f * per_fraction + b for b in range(per_fraction) for f in range(len(values))]
        captions = [format_caption(rows[i // per_fraction], reference_seconds) for i in order]
        grid = to_image_tensor(draw_grid(torch.cat(tiles)[order], captions, columns=len(values)))
        tradeoff = to_image_tensor(draw_tradeoff(
            [(r.fraction, speedup(r, reference_seconds), r.ssim) for r in rows],
            "T-Stitch trade-off: speedup and SSIM to the large model alone"))
        table = format_sweep_table(rows, reference_seconds)
        return io.NodeOutput(batch, grid, table, tradeoff, ui=ui.PreviewImage(grid, cls=cls))


def small_steps_of(stitched, steps: int, scheduler: str, denoise: float) -> tuple[int, int]:
    """(steps not run by the large model, steps) of the schedule KSampler would run with ``stitched``."""
    plan = get_plan(stitched)
    _, stages = stages_on_schedule(stitched, plan, steps, scheduler, denoise)
    return sum(stage != len(plan.stages) for stage in stages), len(stages)
