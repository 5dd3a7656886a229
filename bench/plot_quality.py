"""The quality curve's plot, drawn with PIL like the speedup plot: three panels over small_fraction (class
accuracy, Frechet distance, speedup), each seed a dot, their mean a line, the large model's figure plus and
minus the seed-to-seed spread shaded."""

from __future__ import annotations

from PIL import Image, ImageDraw

from .plot import GRID, TEXT, _font, paste_vertical_text, tick_values

WIDTH, PANEL_HEIGHT, TITLE_HEIGHT = 900, 230, 44
LEFT, RIGHT, TOP, BOTTOM = 96, 24, 18, 40
LINE, DOT, BAND = (0, 114, 178), (86, 180, 233), (214, 230, 244)  # Okabe-Ito blues


def _panel(draw, image, top: int, fractions, means, per_seed, band, label: str, low=None, high=None):
    values = [v for vs in per_seed for v in vs] + list(means) + ([*band] if band else [])
    low = min(values) if low is None else low
    high = max(values) if high is None else high
    pad = (high - low) * 0.08 or 0.1
    low, high = low - pad, high + pad
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, top + TOP, top + PANEL_HEIGHT - BOTTOM

    def x(f):
        return x0 + (x1 - x0) * f

    def y(v):
        return y1 - (y1 - y0) * (v - low) / (high - low)

    font = _font(14)
    if band:
        draw.rectangle([x0, y(band[1]), x1, y(band[0])], fill=BAND)
    for tick in tick_values(low, high, 5):
        draw.line([(x0, y(tick)), (x1, y(tick))], fill=GRID)
        draw.text((x0 - 8, y(tick)), f"{tick:g}", fill=TEXT, font=font, anchor="rm")
    for f in [i / 10 for i in range(11)]:
        draw.text((x(f), y1 + 6), f"{f:g}", fill=TEXT, font=font, anchor="mt")
    draw.rectangle([x0, y0, x1, y1], outline=TEXT)
    draw.line([(x(f), y(m)) for f, m in zip(fractions, means)], fill=LINE, width=3)
    for f, vs in zip(fractions, per_seed):
        for v in vs:
            draw.ellipse([x(f) - 4, y(v) - 4, x(f) + 4, y(v) + 4], fill=DOT, outline=LINE)
    paste_vertical_text(image, label, (24, (y0 + y1) / 2), 15)


def draw_quality(rows, title: str, bands=(None, None)) -> Image.Image:
    """``rows``: bench.quality.Row, by fraction; ``bands``: (low, high) shaded on the accuracy and Frechet panels."""
    image = Image.new("RGB", (WIDTH, TITLE_HEIGHT + 3 * PANEL_HEIGHT + 30), "white")
    draw = ImageDraw.Draw(image)
    draw.text((WIDTH / 2, 22), title, fill=TEXT, font=_font(18), anchor="mm")
    fractions = [r.fraction for r in rows]
    top = TITLE_HEIGHT
    _panel(draw, image, top, fractions, [r.accuracy_mean for r in rows], [r.accuracy for r in rows], bands[0],
           "class accuracy (higher is better)")
    top += PANEL_HEIGHT
    _panel(draw, image, top, fractions, [r.frechet_mean for r in rows], [r.frechet for r in rows], bands[1],
           "Frechet distance (lower)", low=0)
    top += PANEL_HEIGHT
    _panel(draw, image, top, fractions, [r.speedup for r in rows], [[r.speedup] for r in rows], None,
           "speedup over large", low=0)
    draw.text((WIDTH / 2, top + PANEL_HEIGHT + 6), "small_fraction (0: the large model alone, 1: the small one)",
              fill=TEXT, font=_font(15), anchor="mt")
    return image
