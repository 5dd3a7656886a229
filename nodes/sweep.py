"""TStitchFractionSweep: the same seed and prompt over several fractions, timed, as a labelled grid."""

from __future__ import annotations

import time

import torch

import comfy.model_management
import comfy.sample
import comfy.utils
from comfy_api.latest import io, ui

from ..tstitch_core import SWITCH_BY_STEPS, SWITCH_MODES, parse_fractions
from ._drawing import draw_grid, to_image_tensor
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
                "Samples the same seed and prompt once per small_fraction and returns the images and a grid "
                "labelled with each fraction and its sampling time: pick your speed/quality trade-off. For video, "
                "images holds every frame and the grid shows each video's first frame."),
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
                     io.Image.Output(display_name="grid",
                                     tooltip="The results side by side, labelled; a video shows its first frame."),
                     io.String.Output(display_name="timings", tooltip="Each fraction's sampling time.")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, small_model, large_model, vae, fractions, switch_by, seed, steps, cfg, sampler_name, scheduler,
                positive, negative, latent_image, denoise) -> io.NodeOutput:
        values = parse_fractions(fractions)
        models = [stitch(small_model, large_model, f, switch_by) for f in values]  # every check before any step
        latent = comfy.sample.fix_empty_latent_channels(models[0], latent_image["samples"])
        noise = comfy.sample.prepare_noise(latent, seed, latent_image.get("batch_index"))
        # load both models now, so no fraction's time includes loading them
        comfy.model_management.load_models_gpu([models[0], *models[0].get_nested_additional_models()])
        progress = comfy.utils.ProgressBar(len(values) * steps)
        images, tiles, seconds = [], [], []
        for index, (fraction, model) in enumerate(zip(values, models)):
            comfy.model_management.throw_exception_if_processing_interrupted()
            report_progress_text(f"T-Stitch sweep: small_fraction {fraction:g} ({index + 1} of {len(values)})")

            def advance(step, x0, x, total_steps, done=index * steps):
                progress.update_absolute(done + step + 1)

            start = time.perf_counter()
            samples = comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, latent,
                                          denoise=denoise, noise_mask=latent_image.get("noise_mask"),
                                          callback=advance, disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED,
                                          seed=seed)
            seconds.append(time.perf_counter() - start)
            decoded = vae.decode(samples)  # [B, T, H, W, 3] for video latents
            images.append(decoded.reshape(-1, *decoded.shape[-3:]))  # frames flattened, as VAEDecode does
            tiles.append(decoded[:, 0] if decoded.ndim == 5 else decoded)  # a video's first frame in the grid
        batch, tile_batch = torch.cat(images), torch.cat(tiles)
        # one column per fraction, one row per image (or video) of the latent batch
        per_fraction = tiles[0].shape[0]
        order = [f * per_fraction + b for b in range(per_fraction) for f in range(len(values))]
        captions = [f"f = {values[i // per_fraction]:.2f}   {seconds[i // per_fraction]:.1f} s" for i in order]
        grid = to_image_tensor(draw_grid(tile_batch[order], captions, columns=len(values)))
        timings = "\n".join(f"small_fraction {f:g}: {s:.2f} s" for f, s in zip(values, seconds))
        return io.NodeOutput(batch, grid, timings, ui=ui.PreviewImage(grid, cls=cls))
