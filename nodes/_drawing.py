"""Pictures the nodes return as IMAGE: the schedule plot and the labelled sweep grid (drawn with PIL)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

# Okabe-Ito colours, told apart with colour-blindness too; the large model's is the last used
STAGE_COLORS = [(86, 180, 233), (0, 158, 115), (204, 121, 167), (240, 228, 66), (230, 159, 0)]
BACKGROUND, FOREGROUND, GRID = (28, 28, 32), (235, 235, 235), (70, 70, 78)
NAN_COLOR = (213, 94, 0)  # Okabe-Ito vermillion, used for nothing else
WINDOW_COLOR = (255, 255, 255)  # the probe's suggested window, used for nothing else (text is FOREGROUND)


def stage_color(index: int, count: int) -> tuple[int, int, int]:
    return STAGE_COLORS[-1] if index == count - 1 else STAGE_COLORS[index % (len(STAGE_COLORS) - 1)]


def _font(size: int):
    return ImageFont.load_default(size=size)


def to_image_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as ComfyUI's IMAGE: float [1, H, W, 3] in 0..1."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)[None]


def draw_schedule(sigmas: list[float], stage_of_step: list[int], legend: list[str], title: str,
                  width: int = 768, height: int = 432, scale: float = 1.0) -> Image.Image:
    """One bar per step, as tall as the (log) sigma it starts from, coloured by the model that runs it; ``scale``
    multiplies text and margins (pictures shown smaller than drawn)."""
    s = lambda value: round(value * scale)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    left, right, top = s(64), width - s(24), s(44)
    bottom = height - s(28) - s(22) * len(legend)
    draw.text((left, s(12)), title, fill=FOREGROUND, font=_font(s(18)))
    starts = [s for s in sigmas[:-1]]
    low, high = math.log10(min(starts)), math.log10(max(starts))
    span = max(high - low, 1e-6)

    def y_of(sigma):  # the lowest sigma still gets a visible bar
        return bottom - (0.06 + 0.94 * (math.log10(sigma) - low) / span) * (bottom - top)

    for label_sigma in (max(starts), math.sqrt(max(starts) * min(starts)), min(starts)):
        y = y_of(label_sigma)
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((6, y - s(8)), f"{label_sigma:.3g}", fill=FOREGROUND, font=_font(s(13)))
    bar = (right - left) / len(starts)
    for step, (sigma, stage) in enumerate(zip(starts, stage_of_step)):
        x0 = left + step * bar
        draw.rectangle([*_bar_span(x0, bar, y_of(sigma)), bottom], fill=stage_color(stage, len(legend)))
    _draw_steps_axis_and_legend(draw, left, right, bottom, len(starts), legend, scale)
    return image


def _draw_steps_axis_and_legend(draw, left: float, right: float, bottom: float, steps: int,
                                legend: list[str], scale: float = 1.0) -> None:
    """The first and last step under the bars, then one coloured line per model."""
    s = lambda value: round(value * scale)
    font = _font(s(13))
    draw.text((left, bottom + s(4)), "step 1", fill=FOREGROUND, font=font)
    last = f"step {steps}"
    draw.text((right - max(s(60), draw.textlength(last, font=font)), bottom + s(4)), last, fill=FOREGROUND, font=font)
    _draw_legend(draw, left, bottom + s(26), legend, s(15), s(22))


def _draw_legend(draw, left: float, top: float, legend: list[str], size: int = 15, line: int = 22) -> None:
    """One line per model from ``top``, each after a box in the model's colour."""
    box = round(size * 14 / 15)
    for index, text in enumerate(legend):
        y = top + line * index
        pad = (size - box) // 2 + 2
        draw.rectangle([left, y + pad, left + box, y + pad + box], fill=stage_color(index, len(legend)))
        draw.text((left + box + 8, y), text, fill=FOREGROUND, font=_font(size))


# the example thumbnails' card: twice the template browser's picture (about 270 x 175 pixels in frontend 1.49.6)
CARD_SIZE = (560, 360)
CARD_FONTS = {"title": 30, "count": 30, "row": 26, "legend": 26}  # pixels at CARD_SIZE: 12 and more on the card


def draw_step_strips(rows: list[tuple[str, list[int]]], legend: list[str], title: str,
                     size: tuple[int, int] = CARD_SIZE) -> Image.Image:
    """Who runs which step, big enough for a small card: one strip of bars a step per row (labelled when there are
    several), each bar coloured by the model that runs it (-1: no model decided yet, drawn as an outline), each
    model's step count written on its run when one strip is drawn; a legend line per model below."""
    fonts = CARD_FONTS
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    margin = 20
    draw.text((margin, 14), title, fill=FOREGROUND, font=_font(fonts["title"]))
    legend_line = round(fonts["legend"] * 1.4)
    top, bottom = 14 + round(fonts["title"] * 1.6), height - margin - legend_line * len(legend)
    labelled = len(rows) > 1
    left = margin + (round(fonts["row"] * 2.6) if labelled else 0)
    right = width - margin
    row_height = (bottom - top) / len(rows)
    for index, (label, stages) in enumerate(rows):
        y0, y1 = top + index * row_height, top + (index + 1) * row_height - (6 if labelled else 10)
        if labelled:
            draw.text((margin, (y0 + y1) / 2 - fonts["row"] * 0.6), label, fill=FOREGROUND, font=_font(fonts["row"]))
        bar = (right - left) / len(stages)
        for step, stage in enumerate(stages):
            x0, _, x1 = _bar_span(left + step * bar, bar, y0)
            if stage < 0:
                draw.rectangle([x0, y0, x1, y1], outline=GRID, width=2)
            else:
                draw.rectangle([x0, y0, x1, y1], fill=stage_color(stage, len(legend)))
        if not labelled:  # each model's count on its run of steps, where it fits
            for stage, first, count in _runs(stages):
                text, font = str(count), _font(fonts["count"])
                text_width = draw.textlength(text, font=font)
                if stage >= 0 and count * bar >= text_width + 6:
                    x = left + (first + count / 2) * bar - text_width / 2
                    draw.text((x, (y0 + y1) / 2 - fonts["count"] * 0.6), text, fill=BACKGROUND, font=font)
    _draw_legend(draw, margin, bottom + 6, legend, fonts["legend"], legend_line)
    return image


def _runs(stages: list[int]) -> list[tuple[int, int, int]]:
    """(stage, first step, steps) of each run of steps one stage takes in a row."""
    runs = []
    for step, stage in enumerate(stages):
        if runs and runs[-1][0] == stage:
            runs[-1][2] += 1
        else:
            runs.append([stage, step, 1])
    return [tuple(run) for run in runs]


def draw_grid(images: torch.Tensor, captions: list[str], columns: int, on_tile=None) -> Image.Image:
    """``images`` (IMAGE, [N, H, W, 3]) in a grid, ``columns`` wide, each with its caption above it; ``on_tile(i)``
    is called after tile i (for progress, and to stop on Cancel)."""
    count, height, width = images.shape[:3]
    caption = 26
    rows = math.ceil(count / columns)
    grid = Image.new("RGB", (columns * width, rows * (height + caption)), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    tiles = (images.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    for index, (tile, text) in enumerate(zip(tiles, captions)):
        x, y = (index % columns) * width, (index // columns) * (height + caption)
        grid.paste(Image.fromarray(tile), (x, y + caption))
        draw.text((x + 6, y + 4), text, fill=FOREGROUND, font=_font(16))
        if on_tile is not None:
            on_tile(index)
    return grid


def draw_tradeoff(points: list[tuple[float, float, float]], title: str, width: int = 768,
                  height: int = 432) -> Image.Image:
    """Speedup (x) against SSIM to the large model alone (y), one labelled point per (fraction, speedup, ssim),
    joined in fraction order: the speed/quality curve of one pair and prompt."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = 64, width - 32, 44, height - 48
    draw.text((left, 12), title, fill=FOREGROUND, font=_font(18))
    speedups, ssims = [p[1] for p in points], [p[2] for p in points]
    x_low, x_high = min(1.0, *speedups), max(1.0, *speedups)
    y_low, y_high = min(0.0, *ssims), 1.0
    x_span, y_span = max(x_high - x_low, 1e-6), max(y_high - y_low, 1e-6)

    def at(speed, ssim):
        return (left + (speed - x_low) / x_span * (right - left), bottom - (ssim - y_low) / y_span * (bottom - top))

    for i in range(5):  # SSIM grid lines
        value = y_low + y_span * i / 4
        y = at(x_low, value)[1]
        draw.line([left, y, right, y], fill=GRID)
        draw.text((8, y - 8), f"{value:.2f}", fill=FOREGROUND, font=_font(13))
    draw.text((left, bottom + 8), f"{x_low:.2f}x", fill=FOREGROUND, font=_font(13))
    draw.text((right - 40, bottom + 8), f"{x_high:.2f}x", fill=FOREGROUND, font=_font(13))
    draw.text(((left + right) / 2 - 120, bottom + 26), "speedup over the large model alone", fill=FOREGROUND,
              font=_font(13))
    ordered = sorted(points)
    xy = [at(speed, ssim) for _, speed, ssim in ordered]
    if len(xy) > 1:
        draw.line(xy, fill=STAGE_COLORS[0], width=2)
    for (fraction, _, _), (x, y) in zip(ordered, xy):
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=STAGE_COLORS[-1])
        draw.text((x + 8, y - 18), f"{fraction:g}", fill=FOREGROUND, font=_font(13))
    return image


def draw_agreement(cosines: list[list[float]], handovers: list[int], legend: list[str], min_agreement: float,
                   title: str, width: int = 768, height: int = 432, window: tuple[int, int] | None = None,
                   window_label: str = "", scale: float = 1.0) -> Image.Image:
    """Each model's cosine agreement with the large model at every step, with the threshold as a line. One model:
    a bar per step, coloured by the model the suggested split gives that step; more (a nested pair): a curve per
    model in its colour, over a strip coloured by the model the suggested split gives each step. ``window``
    (first step, end step excluded; 0-based), when not empty, is bracketed in white over the steps it spans, and
    ``window_label``, when given, is a last legend line with a white outline box. ``scale`` multiplies text and
    margins."""
    s = lambda value: round(value * scale)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    left, right, top = s(64), width - s(24), s(44)
    bottom = height - s(28) - s(22) * (len(legend) + bool(window_label))
    draw.text((left, s(12)), title, fill=FOREGROUND, font=_font(s(18)))
    # from the lowest cosine, or a little under the threshold where all lie above it: good pairs agree to within
    # a few hundredths, which an axis from 0 would flatten into the top line
    low = max(-1.0, min(min_agreement - 2 * (1.0 - min_agreement) - 0.01,
                        *(c for stage in cosines for c in stage if math.isfinite(c))))
    span = 1.0 - low
    steps = len(cosines[0])

    def y_of(value):
        return bottom - (value - low) / span * (bottom - top)

    for value in (low, (low + 1) / 2, 1.0):
        draw.line([left, y_of(value), right, y_of(value)], fill=GRID)
        draw.text((8, y_of(value) - s(8)), f"{value:.3f}", fill=FOREGROUND, font=_font(s(13)))
    bar = (right - left) / steps
    model_of_step = [sum(step >= handover for handover in handovers) for step in range(steps)]
    if len(cosines) == 1:
        for step, cosine in enumerate(cosines[0]):
            x = left + step * bar
            if math.isfinite(cosine):
                draw.rectangle([*_bar_span(x, bar, min(y_of(cosine), bottom - 2)), bottom],
                               fill=stage_color(model_of_step[step], len(legend)))
    else:
        for index, stage in enumerate(cosines):
            points = [(left + (step + 0.5) * bar, y_of(cosine)) for step, cosine in enumerate(stage)]
            color = stage_color(index, len(legend))
            for run in _finite_runs(points):  # a NaN step breaks the curve
                if len(run) > 1:
                    draw.line(run, fill=color, width=3)
                for x, y in run:
                    draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color)
    for step in range(steps):  # no agreement to draw: a prediction was NaN or inf
        if not all(math.isfinite(stage[step]) for stage in cosines):
            draw.text((left + (step + 0.5) * bar - s(12), bottom - s(24)), "NaN", fill=NAN_COLOR, font=_font(s(13)))
    for step, model in enumerate(model_of_step):  # after the curves, so that none hides it
        x = left + step * bar
        draw.rectangle([*_bar_span(x, bar, bottom - s(6)), bottom], fill=stage_color(model, len(legend)))
    threshold = y_of(min_agreement)
    for x in range(left, right, 12):  # dashed
        draw.line([x, threshold, min(x + 6, right), threshold], fill=FOREGROUND, width=2)
    label = f"min_agreement {min_agreement:g}"
    draw.text((right - max(150, draw.textlength(label, font=_font(s(13))) + 4), threshold - s(18)), label,
              fill=FOREGROUND, font=_font(s(13)))
    _draw_steps_axis_and_legend(draw, left, right, bottom, steps, legend, scale)
    if window and window[1] > window[0]:  # a bracket: down each side of the window's bars, joined above them
        x_start, x_end, y = left + window[0] * bar, left + window[1] * bar, top - s(4)
        draw.line([(x_start, bottom), (x_start, y), (x_end, y), (x_end, bottom)], fill=WINDOW_COLOR, width=2)
    if window_label:
        y = bottom + s(26) + s(22) * len(legend)
        draw.rectangle([left, y + s(2), left + s(14), y + s(16)], outline=WINDOW_COLOR, width=2)
        draw.text((left + s(22), y), window_label, fill=FOREGROUND, font=_font(s(15)))
    return image


def _bar_span(x: float, bar: float, top: float) -> tuple[float, float, float]:
    """(left, top, right) of a step's bar: a pixel apart from the next, unless bars are under 3 pixels wide
    (thousands of steps), where PIL would refuse a right edge left of the left one."""
    inset = 1 if bar >= 3 else 0
    return x + inset, top, x + bar - inset


def _finite_runs(points: list[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    runs = [[]]
    for point in points:
        if math.isfinite(point[1]):
            runs[-1].append(point)
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]
