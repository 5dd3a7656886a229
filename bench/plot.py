"""The speedup plot, drawn with PIL (ComfyUI's own dependency, as the pack's preview nodes draw)."""

from __future__ import annotations

import itertools
import math

from PIL import Image, ImageDraw, ImageFont

from .report import Table

WIDTH, HEIGHT = 900, 560
LEFT, RIGHT, TOP, BOTTOM = 96, 24, 52, 96  # margins around the plot area
# Okabe-Ito colours, told apart with colour-blindness too
STITCHED_COLOR, CHAINED_COLOR, IDEAL_COLOR = (0, 114, 178), (230, 159, 0), (110, 110, 110)
TEXT, GRID = (20, 20, 20), (222, 222, 222)
TICK_STEPS = (0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0)
DASH = 8  # pixels


def _font(size: int):
    return ImageFont.load_default(size=size)


def tick_values(low: float, high: float, most: int = 8) -> list[float]:
    step = next((s for s in TICK_STEPS if (high - low) / s <= most), TICK_STEPS[-1])
    first = math.ceil(low / step - 1e-9)
    return [round(i * step, 6) for i in range(first, math.floor(high / step + 1e-9) + 1)]


def draw_dashed(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], fill, width: int) -> None:
    for (xa, ya), (xb, yb) in itertools.pairwise(points):
        dashes = max(1, int(math.hypot(xb - xa, yb - ya) / DASH))
        for i in range(0, dashes, 2):
            start, end = i / dashes, min(i + 1, dashes) / dashes
            draw.line([(xa + (xb - xa) * start, ya + (yb - ya) * start), (xa + (xb - xa) * end, ya + (yb - ya) * end)],
                      fill=fill, width=width)


def paste_vertical_text(image: Image.Image, text: str, center: tuple[float, float], size: int) -> None:
    font = _font(size)
    label = Image.new("RGB", (int(ImageDraw.Draw(image).textlength(text, font=font)) + 4, size + 6), "white")
    ImageDraw.Draw(label).text((2, 2), text, fill=TEXT, font=font)
    label = label.rotate(90, expand=True)
    image.paste(label, (int(center[0] - label.width / 2), int(center[1] - label.height / 2)))


def draw_speedup(table: Table, title: str) -> Image.Image:
    """Speedup over the large model alone vs small_fraction: stitched (min-max whiskers), ideal, chained."""
    whiskers = [(table.large.median / r.stitched.high, table.large.median / r.stitched.low) for r in table.rows]
    values = [1.0] + [r.ideal_speedup for r in table.rows] + [r.chained_speedup for r in table.rows]
    values += [v for pair in whiskers for v in pair]
    pad = 0.05 * max(max(values) - min(values), 0.1)
    low, high = min(values) - pad, max(values) + pad
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM

    def point(fraction: float, speedup: float) -> tuple[float, float]:
        return x0 + fraction * (x1 - x0), y1 - (speedup - low) / (high - low) * (y1 - y0)

    for value in tick_values(low, high):
        y = point(0, value)[1]
        draw.line([(x0, y), (x1, y)], fill=(170, 170, 170) if value == 1 else GRID)
        draw.text((x0 - 8, y), f"{value:g}x", fill=TEXT, font=_font(13), anchor="rm")
    for tenth in range(11):
        x = point(tenth / 10, low)[0]
        draw.line([(x, y0), (x, y1)], fill=GRID)
        draw.text((x, y1 + 8), f"{tenth / 10:g}", fill=TEXT, font=_font(13), anchor="ma")
    draw.rectangle([x0, y0, x1, y1], outline=TEXT)
    draw.text((x0, 16), title, fill=TEXT, font=_font(18))
    draw.text(((x0 + x1) / 2, y1 + 30), "small_fraction (share of the steps the small model runs)", fill=TEXT,
              font=_font(14), anchor="ma")
    paste_vertical_text(image, "speedup over the large model alone", (22, (y0 + y1) / 2), 14)

    draw_dashed(draw, [point(r.fraction, r.ideal_speedup) for r in table.rows], IDEAL_COLOR, 2)
    draw.line([point(r.fraction, r.speedup) for r in table.rows], fill=STITCHED_COLOR, width=3)
    for row, (slowest, fastest) in zip(table.rows, whiskers, strict=True):
        (x, bottom), (_, top) = point(row.fraction, slowest), point(row.fraction, fastest)
        draw.line([(x, bottom), (x, top)], fill=STITCHED_COLOR, width=2)
        for y in (bottom, top):
            draw.line([(x - 5, y), (x + 5, y)], fill=STITCHED_COLOR, width=2)
        x, y = point(row.fraction, row.speedup)
        draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=STITCHED_COLOR)
        x, y = point(row.fraction, row.chained_speedup)
        draw.rectangle([x - 4, y - 4, x + 4, y + 4], outline=CHAINED_COLOR, width=2)
    legend = [("T-Stitch pair + KSampler (median, min-max)", STITCHED_COLOR),
              ("ideal: k small + (N-k) large steps", IDEAL_COLOR), ("two chained KSamplerAdvanced", CHAINED_COLOR)]
    x = x0
    for label, color in legend:
        draw.rectangle([x, HEIGHT - 30, x + 14, HEIGHT - 16], fill=color)
        draw.text((x + 20, HEIGHT - 23), label, fill=TEXT, font=_font(13), anchor="lm")
        x += 34 + draw.textlength(label, font=_font(13))
    return image
