"""Pictures of video label propagation results: per-sequence J and F bars (``evaluate --task video --plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def jf_bars(result: dict, stem: str | Path, title: str = "") -> list[Path]:
    """Bars of J_mean, F_mean and J&F per sequence (and the global means) → ``stem.png``, ``stem.svg``."""
    from hummingbird.visual.plots import _pyplot, _save

    plt = _pyplot()
    rows = dict(result["per_sequence"]) | {"global": result["global"]}
    names = list(rows)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 3.6))
    for i, (key, label) in enumerate((("J_mean", "J (region IoU)"), ("F_mean", "F (boundary)"),
                                      ("JF_mean", "J&F"))):
        bars = ax.bar(x + (i - 1) * 0.27, [rows[n][key] for n in names], 0.27, label=label)
        for j, bar in enumerate(bars):
            bar.set_gid(f"series-{i}.{j}")
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_title(title or f"J&F per sequence, global J&F {result['global']['JF_mean']:.3f}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, Path(stem))
