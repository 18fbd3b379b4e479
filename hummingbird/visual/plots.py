"""Figures of results, written as PNG and SVG side by side (matplotlib, imported when a figure is drawn).

* :func:`evaluation_plots`: one evaluation's per-class IoU bars and its confusion matrix as a heat map
  (rows: ground truth normalised to 1, columns: prediction);
* :func:`table_plots`: a table run's mIoU against memory size and against the fraction of training data
  (mean ± sample std over file-set seeds, one line per backbone and feature kind) and per-class IoU bars.

Each data series of a line or bar chart is an SVG group with id ``series-<n>`` (bars: ``series-<n>.<bar>``),
so a figure can be read back.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

FORMATS = ("png", "svg")
DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` atomically, each with the figure's first title as its ``Title``
    metadata (readable back: PNG text chunk, SVG ``dc:title``); returns their paths."""
    from hummingbird.files.atomic import atomic_path

    stem.parent.mkdir(parents=True, exist_ok=True)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    written = []
    for fmt in FORMATS:
        path = stem.with_name(f"{stem.name}.{fmt}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, metadata={"Title": titles[0]} if titles else None)
        written.append(path)
    _pyplot().close(fig)
    return written


def per_class_bars(series: dict[str, dict[str, float | None]], stem: Path, title: str) -> list[Path]:
    """Grouped bars of per-class IoU (%), one series (colour) per label; ``None`` (class absent) is no bar."""
    plt = _pyplot()
    classes = list(next(iter(series.values())))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.32 * len(classes) * max(1, len(series) ** 0.5) + 1.5), 4.0))
    x = np.arange(len(classes))
    for i, (label, ious) in enumerate(series.items()):
        values = [np.nan if ious.get(c) is None else 100 * ious[c] for c in classes]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label)
        for j, bar in enumerate(bars):
            bar.set_gid(f"series-{i}.{j}")
    ax.set_xticks(x, classes, rotation=90, fontsize=7 if len(classes) > 40 else 8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.6, len(classes) - 0.4)
    ax.set_title(title if len(series) > 1 else f"{title}: {next(iter(series))}", fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)


def confusion_heatmap(matrix: np.ndarray, class_names: Sequence[str], stem: Path, title: str) -> list[Path]:
    """Row-normalised confusion matrix ``(C, C)`` (ground truth × prediction) as a heat map."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = min(16.0, max(5.0, 0.28 * len(class_names) + 2))
    fig, ax = plt.subplots(figsize=(side + 1, side))
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ticks = np.arange(len(class_names))
    size = 7 if len(class_names) <= 40 else 4
    ax.set_xticks(ticks, class_names, rotation=90, fontsize=size)
    ax.set_yticks(ticks, class_names, fontsize=size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the ground-truth class's pixels")
    fig.tight_layout()
    return _save(fig, stem)


def evaluation_title(result: dict) -> str:
    """What an evaluation's figures are of: dataset and split, backbone (and feature kind), memory size, the
    headline number and the image count, e.g. ``voc val · dinov2_vits14 · memory 101,690 patches: mIoU 42.1 %
    (1449 images)``."""
    config, bank = result.get("config", {}), result.get("bank", {})
    backbone = bank.get("backbone") or config.get("backbone") or "?"
    if bank.get("feature_kind") not in (None, "tokens"):
        backbone += f" {bank['feature_kind']}"
    patches = bank.get("num_patches")
    memory = f"memory {patches:,} patches" if isinstance(patches, int) else "memory ?"
    where = f"{config.get('dataset', '')} {config.get('split', '')}".strip() or "?"
    return (f"{where} · {backbone} · {memory}: mIoU {100 * result['mIoU']:.1f} % "
            f"({result.get('num_images', '?')} images)")


def evaluation_plots(result: dict, json_path: str | Path) -> list[Path]:
    """``<json stem>_per_class.{png,svg}`` and ``<json stem>_confusion.{png,svg}`` beside an evaluation's JSON,
    titled by :func:`evaluation_title`."""
    json_path = Path(json_path)
    title = evaluation_title(result)
    names = list(result["per_class_iou"])
    written = per_class_bars({"IoU": result["per_class_iou"]}, json_path.with_name(f"{json_path.stem}_per_class"), title)
    written += confusion_heatmap(np.array(result["confusion_matrix"]), names,
                                 json_path.with_name(f"{json_path.stem}_confusion"), title)
    return written


# ----------------------------------------------------------------------------- table runs

def train_fraction(train_set: str) -> float | None:
    """Share of the full training split a table row's train set holds: ``voc:1/128`` → 1/128, ``full`` → 1."""
    if train_set == "full" or train_set.endswith(":full"):
        return 1.0
    part = train_set.split(":")[1] if train_set.count(":") >= 1 else ""
    try:
        return float(Fraction(part))
    except (ValueError, ZeroDivisionError):
        return None


def _ticks(ax, values: set[float], label) -> None:
    """Major ticks at the plotted x values only, labelled by ``label(value)``."""
    from matplotlib.ticker import NullLocator

    ticks = sorted(values)
    ax.set_xticks(ticks, [label(v) for v in ticks])
    ax.xaxis.set_minor_locator(NullLocator())


def _fraction_label(value: float) -> str:
    return "full" if value == 1 else str(Fraction(value).limit_denominator(4096))


def _curve(ax, points: dict[float, dict], label: str, index: int) -> None:
    xs = sorted(points)
    means = [100 * points[x]["mean"] for x in xs]
    stds = [100 * (points[x]["std"] or 0.0) for x in xs]
    container = ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
    container.lines[0].set_gid(f"series-{index}")


def _line_label(group: dict) -> str:
    kind = "" if group["feature_kind"] == "tokens" else f" {group['feature_kind']}"
    return f"{group['backbone']}{kind}"


def table_plots(aggregates: list[dict], rows: list[dict], out_dir: str | Path, metric: str = "mIoU") -> list[Path]:
    """``miou_vs_memory``, ``miou_vs_fraction`` (when the run varies them) and ``per_class_iou`` figures of a
    table run (``aggregate`` entries of eval/hbird_table.py and its rows) in ``out_dir``."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    written: list[Path] = []
    dataset = rows[0]["dataset"] if rows else ""
    ylabel = "mIoU (%)" if metric == "mIoU" else "mIoU, open-hbird Hungarian (%)"

    by_memory: dict[str, dict[float, dict]] = {}  # one line per backbone (and train set when several)
    train_sets = {g["train_set"] for g in aggregates}
    for g in aggregates:
        label = _line_label(g) + (f" [{g['train_set']}]" if len(train_sets) > 1 else "")
        by_memory.setdefault(label, {})[g["memory_size"]] = g[metric]
    if any(len(points) > 1 for points in by_memory.values()):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, (label, points) in enumerate(by_memory.items()):
            _curve(ax, points, label, i)
        ax.set_xscale("log")
        _ticks(ax, {m for points in by_memory.values() for m in points}, lambda m: f"{m:,.0f}")
        ax.set_xlabel("memory size (patches)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{dataset}: {ylabel.split(' (')[0]} against memory size (mean ± std over seeds)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written += _save(fig, out_dir / "miou_vs_memory")

    by_fraction: dict[str, dict[float, dict]] = {}  # one line per backbone at its largest memory size
    largest = {}
    for g in aggregates:
        largest[_line_label(g)] = max(largest.get(_line_label(g), 0), g["memory_size"])
    for g in aggregates:
        fraction = train_fraction(g["train_set"])
        if fraction is not None and g["memory_size"] == largest[_line_label(g)]:
            by_fraction.setdefault(f"{_line_label(g)} (memory {g['memory_size']:,})", {})[fraction] = g[metric]
    if any(len(points) > 1 for points in by_fraction.values()):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for i, (label, points) in enumerate(by_fraction.items()):
            _curve(ax, points, label, i)
        ax.set_xscale("log", base=2)
        _ticks(ax, {f for points in by_fraction.values() for f in points}, _fraction_label)
        ax.set_xlabel("fraction of the training split")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{dataset}: {ylabel.split(' (')[0]} against training data (mean ± std over seeds)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written += _save(fig, out_dir / "miou_vs_fraction")

    best: dict[str, dict] = {}  # per backbone: its aggregate with the highest mean
    for g in aggregates:
        label = _line_label(g)
        if label not in best or g[metric]["mean"] > best[label][metric]["mean"]:
            best[label] = g
    by_row = {r["row"]: r for r in rows}
    if best and by_row:
        series = {}
        for label, g in best.items():
            members = [by_row[name]["per_class_iou"] for name in g["rows"] if name in by_row]
            if not members:
                continue
            classes = list(members[0])
            series[f"{label} ({g['train_set']}, memory {g['memory_size']:,})"] = {
                c: (None if all(m[c] is None for m in members)
                    else float(np.mean([m[c] for m in members if m[c] is not None]))) for c in classes}
        if series:
            written += per_class_bars(series, out_dir / "per_class_iou", f"{dataset}: per-class IoU")
    return written


CSV_COLUMNS = ("dataset", "backbone", "feature_kind", "protocol_preset", "train_set", "train_fraction", "seeds",
               "memory_size", "mIoU_mean", "mIoU_std", "hungarian_mIoU_mean", "hungarian_mIoU_std")


def write_table_csv(aggregates: list[dict], dataset: str, path: str | Path) -> Path:
    """One line per aggregate (rows differing only in the seed), mIoUs in percent."""
    import csv
    import io

    from hummingbird.files.atomic import atomic_path

    def pct(value):
        return "" if value is None else f"{100 * value:.2f}"

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for g in aggregates:
        fraction = train_fraction(g["train_set"])
        writer.writerow([dataset, g["backbone"], g["feature_kind"], g["protocol_preset"], g["train_set"],
                         "" if fraction is None else f"{fraction:.6g}", g["seeds"], g["memory_size"],
                         pct(g["mIoU"]["mean"]), pct(g["mIoU"]["std"]),
                         pct(g["open_hbird_hungarian_mIoU"]["mean"]), pct(g["open_hbird_hungarian_mIoU"]["std"])])
    with atomic_path(path) as tmp:
        Path(tmp).write_text(buffer.getvalue())
    return Path(path)
