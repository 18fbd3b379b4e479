"""The app's Export: a VOC-layout dataset of the annotated images, predictions of the others, a COCO JSON and
the memory bank itself.

``<dir>/JPEGImages/<id>.jpg`` (JPEG photos copied byte for byte, others converted),
``SegmentationClass/<id>.png`` (palette PNGs of the annotations), ``ImageSets/Segmentation/train.txt`` (the
annotated ids), ``classes.txt``: what ``hummingbird check-dataset --dataset voc`` accepts and ``build-memory
--dataset voc --split train`` builds from. Beside them ``predictions/<id>.png`` (the other images' predicted
masks), ``annotations.json`` (COCO, one RLE mask per image and class) and ``bank.safetensors``: the app's own
memory, which ``hummingbird segment --bank <dir>/bank.safetensors --resize-mode square`` queries with the
same labels as the page shows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from hummingbird.errors import ConfigError
from hummingbird.files.atomic import atomic_path, make_folder, write_json, write_text

PLAIN_JPEG = (".jpg", ".jpeg")


def _write_png(path: Path, values: np.ndarray, palette: np.ndarray) -> None:
    from hummingbird.app.indexpng import encode_index_png

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(encode_index_png(values, palette))


def _copy_photo(source: Path, image: Image.Image, target: Path) -> None:
    from hummingbird.datasets.imageio import stored_image

    if source.suffix.lower() in PLAIN_JPEG and not stored_image(source).turned:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    else:
        with atomic_path(target) as tmp:
            image.save(tmp, format="JPEG", quality=95)


def _remove_stale(out: Path, annotated: list[str], ids) -> None:
    """Files an earlier export into ``out`` wrote for these photos that this one replaces: the prediction of an
    image annotated since, the annotation and photo of an image no longer annotated."""
    keep = set(annotated)
    for image_id in ids:
        stale = [out / "predictions" / f"{image_id}.png"] if image_id in keep else [
            out / "SegmentationClass" / f"{image_id}.png", out / "JPEGImages" / f"{image_id}.jpg"]
        for path in stale:
            path.unlink(missing_ok=True)


def coco_json(labeller, annotated: list[str]) -> dict:
    """COCO instances-style JSON of the annotations: one RLE mask per (image, class present)."""
    from pycocotools import mask as mask_utils

    images, annotations = [], []
    for number, image_id in enumerate(annotated, start=1):
        values = labeller.state.read(image_id)
        images.append({"id": number, "file_name": f"{image_id}.jpg", "height": int(values.shape[0]),
                       "width": int(values.shape[1])})
        for cls in np.unique(values[values != 255]).tolist():
            rle = mask_utils.encode(np.asfortranarray((values == cls).astype(np.uint8)))
            annotations.append({"id": len(annotations) + 1, "image_id": number, "category_id": int(cls) + 1,
                                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                                "area": float(mask_utils.area(rle)), "bbox": mask_utils.toBbox(rle).tolist(),
                                "iscrowd": 0})
    categories = [{"id": i + 1, "name": n, "supercategory": n} for i, n in enumerate(labeller.class_names)]
    return {"info": {"description": "exported by hummingbird label"}, "images": images, "annotations": annotations,
            "categories": categories}


def export_labels(labeller, folder: str | Path) -> dict:
    """Write the export into ``folder`` (created; files of an earlier export replaced). Returns what was
    written: ``data_root``, ``bank``, ``coco``, ``predictions``, ``annotated`` and ``predicted`` ids."""
    from hummingbird import Segmenter
    from hummingbird.memory.bank import MemoryBank

    out = Path(folder).expanduser()
    if not out.is_absolute():
        raise ConfigError(f"export dir {folder!r}: give an absolute path")
    photos = labeller.photos_dir.resolve()
    if out.resolve() == photos or out.resolve() == labeller.state.root.resolve():
        raise ConfigError(f"export dir {out}: choose a folder other than the photo folder and its state")
    with labeller.lock:
        bank = labeller.segmenter.memory_bank()
        annotated = list(bank.metadata.get("image_ids", []))
        if not annotated:
            raise ConfigError("nothing is annotated yet: nothing to export")
        palette = labeller.palette
        make_folder(out)
        for image_id in annotated:
            name = labeller.name_of[image_id]
            _copy_photo(labeller.photos[name], labeller.image(name), out / "JPEGImages" / f"{image_id}.jpg")
            _write_png(out / "SegmentationClass" / f"{image_id}.png", labeller.state.read(image_id), palette)
        write_text(out / "ImageSets" / "Segmentation" / "train.txt", "".join(f"{i}\n" for i in annotated))
        write_text(out / "classes.txt", "".join(f"{n}\n" for n in labeller.class_names))
        _remove_stale(out, annotated, labeller.id_of.values())
        predicted = []
        for name, image_id in labeller.id_of.items():
            if image_id not in annotated:
                labels = labeller.prediction(name)[0]
                _write_png(out / "predictions" / f"{image_id}.png", labels, palette)
                predicted.append(image_id)
        coco = out / "annotations.json"
        with atomic_path(coco) as tmp, open(tmp, "w") as handle:
            json.dump(coco_json(labeller, annotated), handle)
        meta = {k: v for k, v in bank.metadata.items() if k not in ("image_files", "checksum")}
        meta.update(dataset="voc", dataset_root=str(out), split="train", palette=[list(c) for c in labeller.colours],
                    class_names=list(labeller.class_names))
        saved = MemoryBank(bank.features.clone(), bank.labels.clone(), bank.sources.clone(), bank.views.clone(), meta)
        segmenter = Segmenter(saved, labeller.segmenter.pipeline, labeller.segmenter.search)
        bank_path = segmenter.save(out / "bank.safetensors")
    result = {"data_root": str(out), "bank": str(bank_path), "coco": str(coco), "predictions": str(out / "predictions"),
              "annotated": annotated, "predicted": predicted, "classes": list(labeller.class_names),
              "resize_mode": "square"}
    write_json(out / "export.json", result)
    return result
