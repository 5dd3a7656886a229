"""A stitched generation end to end through ComfyUI's nodes, timed against the large model alone.

    ./tstitch demo                                   the trained digits pair, then SD1.5-sized timing
    ./tstitch demo --digits-only                     only the trained digits pair
    ./tstitch demo --large v1-5.safetensors --small bk-sdm-tiny.safetensors --prompt "a red fox"

First, quality: the DiT pair trained on handwritten digits that the repository ships (tstitch_dev/digits.py,
tstitch_dev/digits_pair/; no training) samples every digit with the large model alone, stitched at the
largest fraction its measured curve keeps at the large model's quality, and stitched past the curve's knee,
side by side in one picture labelled with what a classifier trained on real digits makes of them, and the
times. Then speed
at real sizes: built-in SD1.5 and BK-SDM-Tiny-sized models with the real architectures (so each step
costs what it costs with the real weights) but random weights: their images are noise. Given checkpoint
paths, the demo times those instead (and skips the digits); the text encoder and VAE come from the large
checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tstitch_core import compute_switch_index, parse_fractions

from .cli import add_sampling_options
from .comfy_env import boot_comfyui
from .host import PACK_ROOT, comfyui_version


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="./tstitch demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", type=Path, help="large model checkpoint (.safetensors); default: built-in")
    parser.add_argument("--small", type=Path, help="small model checkpoint or diffusion model; default: built-in")
    parser.add_argument("--prompt", default="a photograph of a lighthouse on a cliff at sunset")
    parser.add_argument("--negative", default="blurry, low quality")
    parser.add_argument("--fraction", type=float, default=0.4, help="small_fraction (default 0.4)")
    # about a minute on a 2-core CPU; a GPU keeps the larger setting
    add_sampling_options(parser, steps=None, defaults="6 steps at 128 pixels on CPU, 10 steps at 512 on GPU")
    parser.add_argument("--repeats", type=int, help="timed runs of each, interleaved; the medians count "
                        "(default 3 on CPU, 5 on GPU)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is there")
    parser.add_argument("--out", type=Path, default=Path("results/demo"), help="where the images go")
    parser.add_argument("--digits-only", action="store_true", help="only the trained digits pair")
    parser.add_argument("--no-digits", action="store_true", help="only the timing (skip the trained digits pair)")
    parser.add_argument("--digits-fractions", help=(
        "small_fractions for the stitched digits panels, comma-separated (switch_by timestep; default: the "
        "measured curve's largest fraction at the large model's quality and one past its knee)"))
    parser.add_argument("--digits-per-class", type=int, default=DIGITS_PER_CLASS,
                        help=f"samples of each digit scored (default {DIGITS_PER_CLASS})")
    args = parser.parse_args(argv)
    if (args.large is None) != (args.small is None):
        parser.error("give both --large and --small, or neither for the built-in models")
    if args.digits_only and (args.no_digits or args.large is not None):
        parser.error("--digits-only takes neither --no-digits nor checkpoints")
    return args


DIGITS_PER_CLASS = 10
DIGITS_SHOWN = 4  # rows of samples in the picture (per digit)
DIGITS_PICTURE = "tstitch-demo-digits.png"
# the shipped pair's measured curve (./tstitch bench --pair trained-digits): where the demo's fractions come from
DIGITS_CURVE = PACK_ROOT / "bench" / "results" / "trained-digits-shipped-cpu-20steps-cfg1.5-100per-class-timestep"


# the drop the past-the-knee panel shows: 0.05 (the shipped curve's 0.4) reads as noise on the panel's 100 samples,
# where 0.3 and 0.4 both scored 0.90
KNEE_DROP = 0.1


def curve_fractions(curve: Path = DIGITS_CURVE) -> tuple[float, float]:
    """(kept, past the knee) from a measured curve: the largest small_fraction of its flat region (quality within
    the large model's seed spread, up to the first setting that is not) and the next measured fraction whose
    class accuracy has fallen by at least KNEE_DROP from the large model's alone, so the drop is plain to see."""
    from bench.quality import Point, build_rows, flat_rows

    found = json.loads((curve / "results.json").read_text())
    points = [Point(**point) for point in found["points"]]
    rows = build_rows(points, {p.fraction: 0 for p in points})  # the small steps play no part here
    large, kept = rows[0], flat_rows(rows)[-1].fraction
    past = next((r.fraction for r in rows if r.fraction > kept and r.accuracy_mean <= large.accuracy_mean - KNEE_DROP),
                rows[-1].fraction)
    return kept, past


def digits_demo(out: Path, small_path: Path, large_path: Path, fractions: tuple[float, ...],
                per_class: int = DIGITS_PER_CLASS, sampling=None, seed: int = 0, notes: tuple[str, ...] = ()) -> Path:
    """Every digit from the pair's large model alone and stitched at each of ``fractions``, scored and timed (one
    warm-up sampling first), side by side in one picture; ``notes`` label the stitched panels. Returns its path."""
    from . import digits

    sampling = sampling or digits.Sampling(per_class=per_class)
    classifier = digits.train_classifier()
    small, large = digits.load_trained(small_path), digits.load_trained(large_path)
    conditionings = digits.class_conditionings(large)
    stitched = [digits.stitched_model(small, large, fraction, sampling.switch_by) for fraction in fractions]
    # the run's own steps, so both models run (one step would be the small model's alone, which the pair refuses)
    warm = dataclasses.replace(sampling, per_class=1)
    for model in stitched[:1]:
        digits.sample_digits(model, conditionings[:1], warm, seed)  # first-call costs stay out of the times
    panels = []
    runs = [("large model alone", "", large)] + [
        (f"T-Stitch, small_fraction {fraction:g}", note, model)
        for fraction, note, model in zip(fractions, [*notes, *[""] * len(fractions)], stitched)]
    for name, note, model in runs:
        images, labels, seconds = digits.sample_digits(model, conditionings, sampling, seed)
        accuracy, frechet = classifier.accuracy(images, labels), classifier.frechet_distance(images)
        print(f"{name:<34} class accuracy {accuracy:.3f}  Frechet {frechet:6.2f}  {seconds:6.2f} s "
              f"({len(labels)} samples, {sampling.steps} steps)")
        label = f"{name}\n{note}\naccuracy {accuracy:.2f}, Frechet {frechet:.2f}, {seconds:.1f} s"
        panels.append((label, images, sampling.per_class))
    out.mkdir(parents=True, exist_ok=True)
    path = out / DIGITS_PICTURE
    small_recipe = digits.SMALL
    draw_digits(panels, f"Digits from the shipped DiT pair (depth {small_recipe.depth} -> {digits.LARGE.depth}, "
                        f"width {digits.LARGE.width}), {sampling.steps} euler steps; a classifier of real digits "
                        f"scores them (held-out accuracy {classifier.held_out_accuracy:.2f})").save(path, optimize=True)
    return path


def draw_digits(panels, title: str, cell: int = 24, gap_between: int = 4, shown: int = DIGITS_SHOWN):
    """Panels side by side, each ``shown`` samples (rows) of every digit (columns), dark ink on white: each 8x8
    digit upscaled without smoothing and spaced from the next, so its pixels read as they are."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    shown = min(shown, min(per_class for _, _, per_class in panels))
    lines = max(label.count("\n") + 1 for label, _, _ in panels)
    gap, label_height, title_height = 28, 16 * lines + 8, 30
    pitch = cell + gap_between
    panel_width = 10 * pitch - gap_between
    width = len(panels) * panel_width + (len(panels) + 1) * gap
    height = title_height + label_height + shown * pitch + gap
    picture = Image.new("L", (max(width, 620), height), 255)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=12)
    draw.text((picture.width / 2, 14), title, fill=0, font=ImageFont.load_default(size=13), anchor="mm")
    for index, (label, images, per_class) in enumerate(panels):
        left = gap + index * (panel_width + gap) + (picture.width - width) // 2
        draw.multiline_text((left + panel_width / 2, title_height + label_height / 2), label, fill=0, font=font,
                            anchor="mm", align="center")
        for digit in range(10):
            for row in range(shown):
                ink = (np.asarray(images[digit * per_class + row]) + 1) / 2  # 0 paper .. 1 ink
                tile = Image.fromarray(np.uint8(255 * (1 - ink.clip(0, 1))), "L").resize((cell, cell), Image.NEAREST)
                picture.paste(tile, (left + digit * pitch, title_height + label_height + row * pitch))
    return picture


def load_models(args, folder_paths):
    """(large model, small model, clip, vae), loaded from exactly these files by ComfyUI's checkpoint loaders."""
    from . import models

    if args.large is None:
        print("Models: built-in SD1.5-sized (large, 860M) and BK-SDM-Tiny-sized (small, 323M) UNets with RANDOM\n"
              "weights, so the images are noise; the timings are what these architectures cost.\n"
              "(Built once and cached in ~/.cache/comfyui-tstitch; the first run takes a minute longer.)")
        large_path, small_path = models.ensure_checkpoint(models.SD15), models.ensure_checkpoint(models.BK_SDM_TINY)
    else:
        large_path, small_path = args.large.resolve(), args.small.resolve()
    for path in (large_path, small_path):
        if not path.is_file():
            sys.exit(f"tstitch demo: no such file: {path}")
    # by path, not by name through the model folders, where a same-named file in ComfyUI's models/ would win
    import comfy.sd

    large, clip, vae = comfy.sd.load_checkpoint_guess_config(
        str(large_path), output_vae=True, output_clip=True,
        embedding_directory=folder_paths.get_folder_paths("embeddings"))[:3]
    return large, load_small(comfy.sd, small_path), clip, vae


def load_small(sd, path: Path):
    # a BK-SDM conversion may be a full checkpoint or the UNet alone
    try:
        return sd.load_checkpoint_guess_config(str(path), output_vae=False, output_clip=False)[0]
    except RuntimeError:
        return sd.load_diffusion_model(str(path))


def interleaved(repeats: int, runs: dict) -> dict:
    """name -> (last result, seconds of each repeat): the runs take turns, in an order that alternates by
    round, so a busy spell of a shared machine falls on both rather than on whichever ran second."""
    results, seconds = {}, {name: [] for name in runs}
    for round_index in range(repeats):
        for name in (list(runs) if round_index % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            results[name] = runs[name]()
            seconds[name].append(time.perf_counter() - start)
    return {name: (results[name], seconds[name]) for name in runs}


def describe(seconds: list[float]) -> str:
    return f"{statistics.median(seconds):8.2f} s  ({min(seconds):.2f}-{max(seconds):.2f} over {len(seconds)} runs)"


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    workdir = Path(tempfile.mkdtemp(prefix="tstitch-demo-"))
    host = boot_comfyui(workdir, cpu=True if args.cpu else None)

    import comfy.model_management
    import folder_paths
    import nodes
    import torch

    device = comfy.model_management.get_torch_device()
    on_cpu = device.type == "cpu"
    size = args.size or (128 if on_cpu else 512)
    args.steps = args.steps or (6 if on_cpu else 10)
    repeats = max(1, args.repeats or (3 if on_cpu else 5))
    print(f"T-Stitch demo on ComfyUI {comfyui_version(host)} ({host}), device {device}")
    if not args.no_digits and args.large is None:
        from . import digits

        small_path, large_path = digits.shipped_pair()
        kept, past = curve_fractions()
        fractions = (parse_fractions(args.digits_fractions) if args.digits_fractions else (kept, past))
        notes = () if args.digits_fractions else ("within the curve's seed spread", "past the curve's knee")
        print(f"Quality: the shipped digits DiT pair ({large_path.parent})")
        picture = digits_demo(args.out, small_path, large_path, tuple(fractions), args.digits_per_class,
                              notes=notes)
        print(f"Picture: {picture}\n")
        if args.digits_only:
            return 0
    with torch.inference_mode():
        large, small, clip, vae = load_models(args, folder_paths)
        positive = nodes.CLIPTextEncode().encode(clip, args.prompt)[0]
        negative = nodes.CLIPTextEncode().encode(clip, args.negative)[0]
        latent = nodes.EmptyLatentImage().generate(size, size, 1)[0]
        common = dict(seed=args.seed, steps=args.steps, cfg=args.cfg, sampler_name=args.sampler,
                      scheduler=args.scheduler, positive=positive, negative=negative, latent_image=latent)
        stitched_sampler = nodes.NODE_CLASS_MAPPINGS["TStitchKSampler"]

        def sample_large(steps=args.steps):
            return nodes.KSampler().sample(large, **{**common, "steps": steps})[0]

        def sample_stitched(steps=args.steps):
            return stitched_sampler.execute(small, large, args.fraction, "steps", **{**common, "steps": steps}).result[0]

        print(f"Settings: {size}x{size}, {args.steps} steps, {args.sampler}/{args.scheduler}, cfg {args.cfg}, "
              f"small_fraction {args.fraction}, {repeats} interleaved runs of each")
        # one short run each first: loading and first-call costs stay out of the timings
        sample_large(1), sample_stitched(2)
        timed = interleaved(repeats, {"large-only": sample_large, "stitched": sample_stitched})

        folder_paths.set_output_directory(str(args.out.resolve()))
        saved = []
        for name, (samples, _) in timed.items():
            images = nodes.VAEDecode().decode(vae, samples)[0]
            result = nodes.SaveImage().save_images(images, filename_prefix=f"tstitch-demo-{name}")
            saved.append(args.out / result["ui"]["images"][0]["filename"])

    large_seconds, stitched_seconds = timed["large-only"][1], timed["stitched"][1]
    small_steps = compute_switch_index(args.steps, args.fraction)
    stitched_label = f"T-Stitch ({small_steps} of {args.steps} steps small)"
    ratios = [large / stitched for large, stitched in zip(large_seconds, stitched_seconds)]
    print(f"\n{'large model alone':<34}{describe(large_seconds)}")
    print(f"{stitched_label:<34}{describe(stitched_seconds)}")
    print(f"{'speedup (medians)':<34}{statistics.median(large_seconds) / statistics.median(stitched_seconds):8.2f}x"
          f"  (each round: {min(ratios):.2f}-{max(ratios):.2f}x)")
    print("Images: " + ", ".join(str(p) for p in saved))
    return 0


if __name__ == "__main__":
    sys.exit(main())
