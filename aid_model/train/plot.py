"""A loss-curve PNG drawn with PIL (no plotting library needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from aid_model.atomic import atomic_path


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Debiased exponential moving average (as TensorBoard's smoothing)."""
    out, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight**i))
    return out


def draw_loss_curve(steps: Sequence[int], losses: Sequence[float], path: str | Path,
                    title: str = "training loss", size: tuple[int, int] = (900, 450)) -> Path:
    """Writes a PNG of the per-step loss (light) and its smoothed curve (dark).

    The y range covers the smoothed curve and the raw values up to their 98th percentile,
    so a few huge low-σ losses do not flatten the plot.
    """
    path = Path(path)
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, right, top, bottom = 70, 20, 35, 45
    draw.text((left, 10), title, fill="black", font=font)
    pairs = [(s, v) for s, v in zip(steps, losses, strict=True) if math.isfinite(v)]
    if not pairs:
        draw.text((left, height // 2), "no finite loss values", fill="black", font=font)
        with atomic_path(path) as temporary:
            image.save(temporary, format="PNG")
        return path
    xs = [s for s, _ in pairs]
    ys = [v for _, v in pairs]
    smoothed = smooth(ys, 0.9 if len(ys) < 200 else 0.98)
    ordered = sorted(ys)
    y_high = max(max(smoothed), ordered[min(len(ordered) - 1, int(0.98 * len(ordered)))])
    y_low = min(min(smoothed), ordered[0])
    if y_high <= y_low:
        y_high = y_low + 1.0
    x_low, x_high = xs[0], max(xs[-1], xs[0] + 1)

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        px = left + (x - x_low) / (x_high - x_low) * (width - left - right)
        clipped = min(max(y, y_low), y_high)
        py = height - bottom - (clipped - y_low) / (y_high - y_low) * (height - top - bottom)
        return px, py

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        y_value = y_low + fraction * (y_high - y_low)
        _, py = to_pixel(x_low, y_value)
        draw.line([left - 4, py, left, py], fill="black")
        draw.text((4, py - 6), f"{y_value:.4g}", fill="black", font=font)
        x_value = x_low + fraction * (x_high - x_low)
        px, _ = to_pixel(x_value, y_low)
        draw.line([px, height - bottom, px, height - bottom + 4], fill="black")
        draw.text((px - 12, height - bottom + 8), f"{x_value:.0f}", fill="black", font=font)
    draw.text((width // 2 - 15, height - 18), "step", fill="black", font=font)
    if len(pairs) > 1:
        draw.line([to_pixel(x, y) for x, y in zip(xs, ys, strict=True)], fill=(180, 190, 220))
        draw.line([to_pixel(x, y) for x, y in zip(xs, smoothed, strict=True)],
                  fill=(20, 40, 160), width=2)
    else:
        px, py = to_pixel(xs[0], ys[0])
        draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=(20, 40, 160))
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG")
    return path
