"""Depth pictures: 16-bit millimetre PNGs, colour-mapped depth with a scale bar, error maps and per-image bars.

* :func:`save_depth_png` — depth ``(H, W)`` metres → uint16 PNG of millimetres (0 = no value), the format of
  NYU's and BTS's ground truth, read back by :func:`hummingbird.datasets.depth.read_depth_png`;
* :func:`depth_picture` — the image beside its depth in the ``turbo`` colour map (near blue, far red) and a
  scale bar in metres;
* :func:`error_maps` — per evaluated image: image, ground truth, prediction (one colour scale) and the
  absolute error in metres (invalid ground truth grey);
* :func:`per_image_bars` — one metric per image, decoder beside the constant baseline (PNG and SVG; bars are
  SVG groups ``series-<n>.<bar>``, as in :mod:`hummingbird.visual.plots`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hummingbird.visual.render import _font

COLOUR_MAP = "turbo"


def save_depth_png(depth: np.ndarray, path: str | Path) -> None:
    """Depth ``(H, W)`` metres → uint16 PNG of millimetres at ``path`` (atomic); NaN and ≤ 0 become 0
    (no value), depths above 65.535 m are clipped."""
    from hummingbird.files.atomic import save_image

    depth = np.asarray(depth, dtype=np.float64)
    mm = np.where(np.isfinite(depth) & (depth > 0), np.round(depth * 1000), 0)
    save_image(Image.fromarray(np.clip(mm, 0, 65535).astype(np.uint16)), path, format="PNG")


def colour_depth(depth: np.ndarray, low: float, high: float, cmap: str = COLOUR_MAP) -> np.ndarray:
    """Depth ``(H, W)`` → colours ``(H, W, 3)`` uint8 on ``low``–``high`` metres (NaN: grey)."""
    import matplotlib

    lut = (matplotlib.colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    scaled = (np.asarray(depth, dtype=np.float64) - low) / max(high - low, 1e-9)
    index = np.clip(np.nan_to_num(scaled, nan=0.0) * 255, 0, 255).round().astype(np.int64)
    colours = lut[index]
    colours[~np.isfinite(depth)] = 128
    return colours


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values within ``[low, high]``."""
    step = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(step)) if step > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= step) if step > 0 else 1.0
    first = math.ceil(low / step) * step
    return [round(first + i * step, 6) for i in range(int((high - first) / step + 1e-9) + 1)]


def scale_bar(height: int, low: float, high: float, cmap: str = COLOUR_MAP) -> Image.Image:
    """A vertical colour bar ``height`` pixels tall, far (``high``) at the top, ticks labelled in metres."""
    font = _font(12)
    bar_top, bar_bottom = 16, height - 8
    canvas = Image.new("RGB", (78, height), "white")
    span = max(bar_bottom - bar_top, 2)
    values = high - (high - low) * np.linspace(0, 1, span)[:, None]
    canvas.paste(Image.fromarray(colour_depth(np.repeat(values, 18, 1), low, high, cmap)), (6, bar_top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([6, bar_top, 23, bar_top + span - 1], outline="black")
    draw.text((4, 1), "metres", fill="black", font=font)
    for tick in nice_ticks(low, high):
        y = bar_top + round((high - tick) / max(high - low, 1e-9) * (span - 1))
        draw.line([24, y, 28, y], fill="black")
        draw.text((31, y - 7), f"{tick:g}", fill="black", font=font)
    return canvas


def depth_range(*maps: np.ndarray) -> tuple[float, float]:
    """The 1st–99th percentile range of the finite positive values of ``maps`` (a shared colour scale)."""
    values = np.concatenate([np.asarray(m, dtype=np.float64)[np.isfinite(m) & (np.asarray(m) > 0)] for m in maps])
    if not values.size:
        return 0.0, 1.0
    low, high = np.percentile(values, [1, 99])
    return float(low), float(max(high, low + 1e-3))


def depth_picture(image: Image.Image, depth: np.ndarray, low: float | None = None,
                  high: float | None = None) -> Image.Image:
    """The image, its depth ``(H, W)`` colour-mapped (``low``–``high`` metres, default: its 1st–99th
    percentiles) and a scale bar, side by side."""
    if low is None or high is None:
        low, high = depth_range(depth)
    coloured = Image.fromarray(colour_depth(depth, low, high))
    canvas = Image.new("RGB", (image.width + coloured.width + 86, image.height), "white")
    canvas.paste(image.convert("RGB"), (0, 0))
    canvas.paste(coloured, (image.width + 4, 0))
    canvas.paste(scale_bar(image.height, low, high), (image.width + coloured.width + 8, 0))
    return canvas


def _pyplot():
    from hummingbird.visual.plots import _pyplot

    return _pyplot()


def error_maps(image: Image.Image, gt: np.ndarray, valid: np.ndarray, pred: np.ndarray, path: str | Path,
               title: str = "") -> Path:
    """One PNG at ``path``: the image, ground truth and prediction on one colour scale (metres) and the
    absolute error ``|pred − gt|`` (metres; grey where the ground truth is invalid)."""
    from hummingbird.files.atomic import atomic_path

    plt = _pyplot()
    low, high = depth_range(np.where(valid, gt, np.nan), pred)
    error = np.where(valid, np.abs(pred - gt), np.nan)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    panels = [(np.asarray(image), None, "image"), (np.where(valid, gt, np.nan), "depth (m)", "ground truth"),
              (pred, "depth (m)", "prediction"), (error, "|error| (m)", "absolute error")]
    cmap_bad = plt.get_cmap(COLOUR_MAP).with_extremes(bad=(0.5, 0.5, 0.5))
    heat = plt.get_cmap("magma").with_extremes(bad=(0.5, 0.5, 0.5))
    for ax, (data, label, name) in zip(axes, panels):
        if label is None:
            ax.imshow(data)
        else:
            is_error = name == "absolute error"
            finite = data[np.isfinite(data)]
            shown = ax.imshow(data, cmap=heat if is_error else cmap_bad, vmin=0 if is_error else low,
                              vmax=(float(np.percentile(finite, 99)) if finite.size else 1.0) if is_error else high)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, label=label)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return path


def per_image_bars(decoder: dict[str, float], constant: dict[str, float], stem: str | Path,
                   metric: str = "rmse", title: str = "") -> list[Path]:
    """Bars of one metric per image, the decoder's beside the constant baseline's → ``stem.png``, ``stem.svg``."""
    from hummingbird.visual.plots import _save

    plt = _pyplot()
    ids = list(decoder)
    x = np.arange(len(ids))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(ids) + 2), 3.8))
    for i, (label, values) in enumerate((("decoder", decoder), ("constant (memory-mean depth)", constant))):
        bars = ax.bar(x + (i - 0.5) * 0.4, [values[k] for k in ids], 0.4, label=label)
        for j, bar in enumerate(bars):
            bar.set_gid(f"series-{i}.{j}")
    ax.set_xticks(x, ids, rotation=90, fontsize=7)
    ax.set_ylabel(metric + (" (m)" if metric == "rmse" else ""))
    ax.set_xlim(-0.6, len(ids) - 0.4)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, Path(stem))
