"""The labelling loop behind the page: photos, their annotations, a memory edited stroke by stroke, predictions.

A :class:`Labeller` owns a :class:`hummingbird.Segmenter` whose memory starts empty
(:meth:`~hummingbird.Segmenter.empty`). Storing an image's annotation writes it to the state folder and
replaces that image's rows in the memory (:meth:`~hummingbird.Segmenter.set_example`); the other images'
predictions are then computed from their cached features (:mod:`hummingbird.app.features`) — a neighbour
search, no forward pass. On start the stored annotations (and ``--annotations`` for images that have none)
rebuild the memory, so a restart resumes exactly.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PIL import Image

from hummingbird.app.features import FeatureCache, pipeline_digest
from hummingbird.app.indexpng import decode_index_png
from hummingbird.app.state import IGNORE, LabelState, list_photos
from hummingbird.errors import ConfigError


class NothingAnnotated(ConfigError):
    """A prediction asked for while the memory is empty."""


class Labeller:
    """A photo folder being labelled: its images, annotations, classes and the memory built from them.

    ``class_names``: the starting classes (the state folder's own list wins, extended by new names);
    ``state_dir``: default ``photos_dir/.hummingbird``; ``annotations``: a COCO JSON whose masks become the
    starting annotations of images that have none; keywords: :meth:`hummingbird.Segmenter.empty`'s.
    """

    def __init__(self, photos_dir: str | Path, class_names=None, *, state_dir: str | Path | None = None,
                 annotations: str | Path | None = None, first_pass: bool = True, **keywords):
        from hummingbird import Segmenter
        from hummingbird.datasets.imageio import read_rgb

        self.photos_dir = Path(photos_dir)
        self.photos = list_photos(self.photos_dir)
        self._read_rgb = read_rgb
        self.id_of = {name: path.stem for name, path in self.photos.items()}
        self.name_of = {image_id: name for name, image_id in self.id_of.items()}
        self.state = LabelState(Path(state_dir) if state_dir else self.photos_dir / ".hummingbird")
        starting = _starting_annotations(annotations, self.photos) if annotations else None
        names = self._class_names(list(class_names or []), starting[0] if starting else [])
        self.segmenter = Segmenter.empty(names, **keywords)
        self.lock = threading.RLock()
        self.memory_version = 0
        self._sizes: dict[str, tuple[int, int]] = {}
        self._predictions: dict[str, tuple[int, np.ndarray, float]] = {}
        digest = pipeline_digest(self.segmenter.pipeline.metadata())
        self.features = FeatureCache(self.state.root / "features" / digest,
                                     lambda image_id: self.segmenter.encode(self.image(self.name_of[image_id]),
                                                                            image_id))
        if starting:
            self._import(starting)
        for image_id in self.state.annotated():
            if image_id in self.name_of:
                self._add_to_memory(image_id, self.state.read(image_id))
        ordered = self.state.annotated() + [i for i in self.name_of if i not in self.state.annotated()]
        if first_pass:
            self.features.start_first_pass([i for i in ordered if i in self.name_of])

    # ------------------------------------------------------------------ classes

    def _class_names(self, listed: list[str], imported: list[str]) -> list[str]:
        """The state's classes (renamed and added in the page), then the lines of ``--classes`` beyond them
        (classes added to the file since), then the ``--annotations`` categories not among them."""
        from hummingbird.datasets.palettes import palette_for

        stored = self.state.read_classes()
        names, colours = stored if stored else ([], [])
        names = list(dict.fromkeys(names + [str(n) for n in listed[len(names):]] + [str(n) for n in imported]))
        if not names:
            raise ConfigError("no classes: give --classes FILE (one class name per line) or --annotations FILE.json")
        colours = colours + palette_for("folder", len(names), names)[len(colours):len(names)].tolist()
        self.class_names, self.colours = names, colours
        self.state.write_classes(names, colours)
        return names

    @property
    def palette(self) -> np.ndarray:
        palette = np.zeros((256, 3), np.uint8)
        palette[:len(self.colours)] = self.colours
        palette[IGNORE] = 255
        return palette

    def classes(self) -> list[dict]:
        return [{"index": i, "name": n, "colour": "#{:02x}{:02x}{:02x}".format(*c)}
                for i, (n, c) in enumerate(zip(self.class_names, self.colours))]

    def set_classes(self, names: list[str], colours: list | None = None) -> list[dict]:
        """Rename classes and append new ones (``colours``: ``#rrggbb`` per class, optional)."""
        from hummingbird.datasets.palettes import checked_palette, palette_for

        names = [str(n).strip() for n in names]
        if len(names) < len(self.class_names) or len(names) > 255 or not all(names) or len(set(names)) != len(names):
            raise ConfigError(f"classes: give {len(self.class_names)} to 255 distinct non-empty names (classes can be "
                              f"renamed and added, not removed)")
        with self.lock:
            if colours is not None:
                chosen = checked_palette(colours, len(names)).tolist()
            else:
                chosen = self.colours + palette_for("folder", len(names), names)[len(self.colours):len(names)].tolist()
            self.segmenter.set_class_names(names)
            self.class_names, self.colours = names, [list(map(int, c)) for c in chosen]
            self.state.write_classes(self.class_names, self.colours)
            self.memory_version += 1
        return self.classes()

    # ------------------------------------------------------------------ images

    def image(self, name: str) -> Image.Image:
        return self._read_rgb(self.photos[name])

    def size(self, name: str) -> tuple[int, int]:
        """``(width, height)`` of a photo, upright."""
        if name not in self._sizes:
            from hummingbird.datasets.imageio import exif_orientation

            try:
                with Image.open(self.photos[name]) as img:  # the header only: the gallery lists hundreds
                    width, height = img.size
                    turned = exif_orientation(img) in (5, 6, 7, 8)
            except (OSError, SyntaxError, ValueError):
                width, height = self.image(name).size  # says what is wrong with the file
                turned = False
            self._sizes[name] = (height, width) if turned else (width, height)
        return self._sizes[name]

    def status(self, name: str) -> str:
        image_id = self.id_of[name]
        if self.state.version(image_id) and image_id in self.segmenter.bank.metadata.get("image_ids", []):
            return "annotated"
        if len(self.segmenter.bank) and self.features.cached(image_id):
            return "predicted"
        return "unlabelled"

    def images(self, confidence: bool = False) -> list[dict]:
        out = []
        for name in self.photos:
            width, height = self.size(name)
            entry = {"name": name, "id": self.id_of[name], "width": width, "height": height,
                     "status": self.status(name), "version": self.state.version(self.id_of[name])}
            if confidence and entry["status"] == "predicted":
                entry["confidence"] = round(self.prediction(name)[1], 4)
            out.append(entry)
        return out

    # ------------------------------------------------------------------ annotations and memory

    def annotation(self, name: str) -> tuple[np.ndarray | None, int]:
        image_id = self.id_of[name]
        return self.state.read(image_id), self.state.version(image_id)

    def put_annotation(self, name: str, png: bytes, expected_version: int | None = None) -> dict:
        """Store an index PNG as ``name``'s annotation and update the memory (its rows replaced)."""
        values = decode_index_png(png, name, self.size(name), len(self.class_names))
        image_id = self.id_of[name]
        self.features.get(image_id)  # outside the lock: a forward pass at most, never the whole first pass
        with self.lock:
            version = self.state.write(image_id, values, self.palette, expected_version)
            self._add_to_memory(image_id, values)
            return {"name": name, "version": version, "memory_version": self.memory_version,
                    "memory_rows": len(self.segmenter.bank), "annotated": self.annotated_count()}

    def _add_to_memory(self, image_id: str, values: np.ndarray) -> None:
        name = self.name_of[image_id]
        with self.lock:
            if (values != IGNORE).any():
                self.segmenter.set_example(image_id, self.image(name), values, features=self.features.get(image_id),
                                           file=self.photos[name])
            else:
                self.segmenter.remove_example(image_id)
            self.memory_version += 1

    def annotated_count(self) -> int:
        return len(self.segmenter.bank.metadata.get("image_ids", []))

    # ------------------------------------------------------------------ predictions

    def prediction(self, name: str) -> tuple[np.ndarray, float, np.ndarray]:
        """``(labels (H, W) uint8, mean confidence, per-pixel confidence (H, W) uint8 0..255)`` of ``name``
        with the current memory (cached until the memory changes)."""
        import torch

        image_id = self.id_of[name]
        feats = self.features.get(image_id)
        with self.lock:
            cached = self._predictions.get(name)
            if cached is not None and cached[0] == self.memory_version:
                return cached[1], cached[2], cached[3]
            if len(self.segmenter.bank) == 0:
                raise NothingAnnotated("nothing is annotated yet: paint an image first, then predictions follow")
            width, height = self.size(name)
            labels, dists = self.segmenter.segment_features(feats, (height, width), return_probs=True)
            top = dists.max(-1).values  # (h, w) the winning class's probability on the patch grid
            up = torch.nn.functional.interpolate(top[None, None], size=(height, width), mode="bilinear",
                                                 align_corners=False)[0, 0]
            confidence = (up.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            result = (labels.astype(np.uint8), float(top.mean()), confidence)
            self._predictions[name] = (self.memory_version, *result)
            return result

    def neighbours(self, name: str, x: float, y: float, k: int = 8) -> dict:
        """The ``k`` nearest memory patches of the patch under pixel ``(x, y)`` of ``name``."""
        from hummingbird.visual.geometry import patch_box_in_source, point_to_patch

        width, height = self.size(name)
        feats = self.features.get(self.id_of[name])
        size, p = self.segmenter.input_size, self.segmenter.pipeline.patch_size
        try:
            row, col = point_to_patch(x, y, (width, height), p, size)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
        with self.lock:
            if len(self.segmenter.bank) == 0:
                raise NothingAnnotated("nothing is annotated yet: the memory has no patches to show")
            found = self.segmenter.neighbours_of_features(feats, row, col, k)
        box = patch_box_in_source([0, 0, height, width, 0], row, col, p, size)
        return {"image": name, "patch": [row, col], "query_box": [round(v, 2) for v in box],
                "neighbours": [{"image": self.name_of.get(n.image_id, n.image_id), "label": n.label,
                                "label_name": n.label_name, "similarity": round(n.similarity, 4),
                                "box": [round(v, 2) for v in n.box], "memory_row": n.memory_row} for n in found]}

    def _import(self, starting) -> None:
        """Write the starting annotations of images that have none yet."""
        names, masks = starting
        lookup = {n: i for i, n in enumerate(self.class_names)}
        for name, mask in masks.items():
            image_id = self.id_of[name]
            if self.state.version(image_id):
                continue
            remap = np.full(256, IGNORE, np.uint8)
            for i, n in enumerate(names):
                remap[i] = lookup[n]
            self.state.write(image_id, remap[mask], self.palette)

    def export(self, folder: str | Path) -> dict:
        from hummingbird.app.export import export_labels

        return export_labels(self, folder)

    def close(self) -> None:
        self.features.stop()


def _starting_annotations(path, photos: dict[str, Path]):
    """``(class names, {photo name: mask})`` of a COCO JSON's images that are in the photo folder."""
    from hummingbird.datasets.cocojson import read_coco_json

    names, by_file = read_coco_json(path)
    masks = {}
    for file_name, render in by_file.items():
        name = Path(file_name).name
        if name in photos:
            masks[name] = render()
    return names, masks
