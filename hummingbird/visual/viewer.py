"""A static, offline HTML page to explore patch neighbours: hover or click a patch of a query image
to see its k nearest memory patches (source crops, labels, similarities); toggle the label map.

The folder holds ``index.html`` (no server, no external resources), ``data.js`` (the precomputed
neighbours as one JSON object assigned to ``window.HBIRD_VIEWER``; ``<script src>`` works from
``file://`` where ``fetch`` does not), and the query/source images under ``images/``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from hummingbird.files.atomic import make_folder, save_image, write_text
from hummingbird.memory.bank import MemoryBank
from hummingbird.visual.neighbours import QueryResult, SourceImages, describe_row
from hummingbird.visual.render import colour_labels

DATA_PREFIX = "window.HBIRD_VIEWER = "
SOURCE_MAX_SIDE = 640


def write_viewer_data(path: str | Path, data: dict) -> None:
    write_text(path, DATA_PREFIX + json.dumps(data, separators=(",", ":")) + ";\n")


def read_viewer_data(path: str | Path) -> dict:
    text = Path(path).read_text()
    if not text.startswith(DATA_PREFIX):
        raise ValueError(f"{path}: not a viewer data file")
    return json.loads(text[len(DATA_PREFIX):].rstrip().rstrip(";"))


def build_viewer_data(bank: MemoryBank, queries: Sequence[tuple[str, QueryResult]], sources: SourceImages,
                      palette: np.ndarray, out_dir: Path, decoder_k: int | None = None) -> dict:
    """Write the images of the page under ``out_dir/images`` and return its data object.

    Data layout: ``k`` neighbours shown per patch, ``decoder_k`` (the decoder's k behind the label maps),
    ``classes`` [{name, colour}], ``memory`` rows referenced by any neighbour
    ``[source, x0, y0, x1, y1, label]`` (boxes in the stored source image's pixels), ``sources``
    [{file, id}], and per query ``{file, labels_file, width, height, grid: [h, w], legend: [[class,
    share], ...] (classes of the label map, largest first), neighbours: [h*w*k memory-table indices],
    similarities: [h*w*k] (3 decimals)}``.
    """
    images = make_folder(out_dir / "images")
    table: dict[int, int] = {}
    memory_rows, source_files, source_slot, source_scale = [], [], {}, {}
    out_queries = []
    for q, (name, result) in enumerate(queries):
        stem = f"query{q:03d}"
        save_image(result.image, images / f"{stem}.jpg", quality=90)
        save_image(Image.fromarray(colour_labels(result.labels, palette)), images / f"{stem}_labels.png")
        h, w, k = result.rows.shape
        flat_rows, flat_sims = result.rows.reshape(-1), result.similarities.reshape(-1)
        refs = []
        for row in flat_rows.tolist():
            if row not in table:
                n = describe_row(bank, row)
                if n.image_index not in source_slot:
                    img = sources.open(n.image_index)
                    scale = min(1.0, SOURCE_MAX_SIDE / max(img.size))
                    save_image(img.resize((round(img.width * scale), round(img.height * scale)), Image.BILINEAR),
                               images / f"source{len(source_files):05d}.jpg", quality=88)
                    source_slot[n.image_index] = len(source_files)
                    source_scale[n.image_index] = scale
                    source_files.append({"file": f"images/source{len(source_files):05d}.jpg", "id": n.image_id})
                s = source_scale[n.image_index]
                table[row] = len(memory_rows)
                memory_rows.append([source_slot[n.image_index], *[round(v * s, 1) for v in n.box], n.label])
            refs.append(table[row])
        out_queries.append({"name": name, "file": f"images/{stem}.jpg", "labels_file": f"images/{stem}_labels.png",
                            "width": result.image.width, "height": result.image.height, "grid": [h, w],
                            "legend": class_shares(result.labels, len(bank.class_names)),
                            "neighbours": refs, "similarities": [round(float(v), 3) for v in flat_sims]})
    return {"k": int(queries[0][1].rows.shape[-1]) if queries else 0, "decoder_k": decoder_k,
            "classes": [{"name": n, "colour": "#%02x%02x%02x" % tuple(int(v) for v in palette[i])}
                        for i, n in enumerate(bank.class_names)],
            "memory": memory_rows, "sources": source_files, "queries": out_queries,
            "bank": {k: bank.metadata.get(k) for k in ("backbone", "feature_kind", "dataset", "input_size",
                                                        "num_patches")}}


def class_shares(labels: np.ndarray, num_classes: int) -> list[list]:
    """``[[class, share of the pixels], ...]`` of the classes present in ``labels (H, W)``, largest first
    (shares rounded to 4 decimals)."""
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=num_classes)[:num_classes]
    present = sorted(np.nonzero(counts)[0].tolist(), key=lambda c: (-counts[c], c))
    return [[int(c), round(float(counts[c] / labels.size), 4)] for c in present]


def write_viewer(out_dir: str | Path, data: dict) -> Path:
    """Write ``index.html`` and ``data.js`` into ``out_dir``; returns the page's path."""
    out_dir = make_folder(out_dir)
    write_viewer_data(out_dir / "data.js", data)
    write_text(out_dir / "index.html", resources.files("hummingbird.visual").joinpath("viewer.html").read_text())
    return out_dir / "index.html"
