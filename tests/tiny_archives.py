"""Tiny archives in the official layouts of the datasets ``prepare-data`` handles, and a loopback HTTP
server (with HTTP Range, and connections it can drop mid-stream) that serves them under official paths."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

from hummingbird.datasets.palettes import voc_palette

# VOC ids: official train / val lists of the tiny VOC tar; SBD ids and lists of the tiny SBD tgz.
VOC_TRAIN, VOC_VAL = ["2007_000032", "2007_000039"], ["2007_000033", "2007_000042"]
SBD_TRAIN, SBD_VAL = ["2008_000002", "2007_000033"], ["2008_000003", "2007_000032"]
VOC_EXTRA_IMAGES = ["2008_000002"]  # JPEGImages without a VOC mask (SBD annotates it)
TRAINAUG = sorted({*VOC_TRAIN, *SBD_TRAIN, *SBD_VAL} - set(VOC_VAL))  # 2007_000032, 2007_000039, 2008_000002/3
VOC_CLASS, SBD_CLASS = 15, 3  # VOC masks: person on top; SBD masks: bird on top
H, W = 24, 32


def _png(array: np.ndarray, palette: bool = False) -> bytes:
    image = Image.fromarray(array.astype(np.uint8), mode="P" if palette else None)
    if palette:
        image.putpalette(voc_palette().flatten().tolist())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _top_half(value: int, boundary: bool = False) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[: H // 2] = value
    if boundary:
        mask[H // 2] = 255
    return mask


def _tar(files: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def voc_tar() -> bytes:
    """``VOCtrainval_11-May-2012.tar``: VOCdevkit/VOC2012 with JPEGImages, palette SegmentationClass, lists."""
    base = "VOCdevkit/VOC2012/"
    files = {f"{base}JPEGImages/{i}.jpg": _jpeg(n) for n, i in enumerate(VOC_TRAIN + VOC_VAL + VOC_EXTRA_IMAGES)}
    files.update({f"{base}SegmentationClass/{i}.png": _png(_top_half(VOC_CLASS, boundary=True), palette=True)
                  for i in VOC_TRAIN + VOC_VAL})
    for split, ids in (("train", VOC_TRAIN), ("val", VOC_VAL), ("trainval", VOC_TRAIN + VOC_VAL)):
        files[f"{base}ImageSets/Segmentation/{split}.txt"] = ("\n".join(ids) + "\n").encode()
    return _tar(files, "w")


def sbd_tgz() -> bytes:
    """``benchmark.tgz``: benchmark_RELEASE/dataset/{cls/*.mat (GTcls.Segmentation), img/, train.txt, val.txt}."""
    from scipy.io import savemat

    base = "benchmark_RELEASE/dataset/"
    files = {}
    for n, i in enumerate(SBD_TRAIN + SBD_VAL):
        buffer = io.BytesIO()
        savemat(buffer, {"GTcls": {"Segmentation": _top_half(SBD_CLASS), "Boundaries": np.zeros((1, 1)),
                                   "CategoriesPresent": np.array([SBD_CLASS], np.uint8)}})
        files[f"{base}cls/{i}.mat"] = buffer.getvalue()
        files[f"{base}img/{i}.jpg"] = _jpeg(100 + n)
    files[f"{base}train.txt"] = ("\n".join(SBD_TRAIN) + "\n").encode()
    files[f"{base}val.txt"] = ("\n".join(SBD_VAL) + "\n").encode()
    return _tar(files, "w:gz")


def ade20k_zip() -> bytes:
    """``ADEChallengeData2016.zip``: images/ and annotations/ (raw labels 0..150) for training and validation."""
    files = {}
    for split, prefix in (("training", "ADE_train"), ("validation", "ADE_val")):
        for n in (1, 2):
            files[f"ADEChallengeData2016/images/{split}/{prefix}_{n:08d}.jpg"] = _jpeg(n)
            files[f"ADEChallengeData2016/annotations/{split}/{prefix}_{n:08d}.png"] = _png(_top_half(150))
    files["ADEChallengeData2016/objectInfo150.txt"] = b"Idx\tRatio\tTrain\tVal\tName\n"
    return _zip(files)


# COCO-Stuff: categories (id, name, supercategory) and the ids in each pixel map.
COCO_STUFF_CATEGORIES = [(92, "banner", "textile"), (93, "blanket", "textile"), (124, "grass", "plant"),
                         (183, "other", "other")]
COCO_IMAGES = {"train": [9, 25], "val": [139]}


def coco_archives() -> dict[str, bytes]:
    """``{train,val}2017.zip`` and ``stuff_annotations_trainval2017.zip`` (json + nested pixel-map zips)."""
    out, stuff = {}, {}
    categories = [{"id": i, "name": n, "supercategory": s} for i, n, s in COCO_STUFF_CATEGORIES]
    for split, ids in COCO_IMAGES.items():
        out[f"{split}2017.zip"] = _zip({f"{split}2017/{i:012d}.jpg": _jpeg(i) for i in ids})
        images = [{"id": i, "file_name": f"{i:012d}.jpg", "height": H, "width": W} for i in ids]
        stuff[f"annotations/stuff_{split}2017.json"] = json.dumps(
            {"images": images, "annotations": [], "categories": categories}).encode()
        pixelmap = np.zeros((H, W), np.uint8)  # 0: things / unlabelled
        pixelmap[:6], pixelmap[6:12], pixelmap[12:18] = 92, 124, 183
        stuff[f"annotations/stuff_{split}2017_pixelmaps.zip"] = _zip(
            {f"stuff_{split}2017_pixelmaps/{i:012d}.png": _png(pixelmap) for i in ids})
    out["stuff_annotations_trainval2017.zip"] = _zip(stuff)
    return out


def cityscapes_archives() -> dict[str, bytes]:
    """``gtFine_trainvaltest.zip`` (labelIds, colour maps) and ``leftImg8bit_trainvaltest.zip``."""
    gt, images = {}, {}
    for split, city in (("train", "aachen"), ("val", "frankfurt"), ("test", "berlin")):
        stem = f"{city}_000000_000019"
        labels = np.full((H, W), 7, np.uint8)  # road
        labels[: H // 2] = 26  # car
        labels[0] = 1  # ego vehicle: ignored
        gt[f"gtFine/{split}/{city}/{stem}_gtFine_labelIds.png"] = _png(labels)
        gt[f"gtFine/{split}/{city}/{stem}_gtFine_color.png"] = _png(labels)
        images[f"leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png"] = _png(np.zeros((H, W, 3), np.uint8))
    return {"gtFine_trainvaltest.zip": _zip(gt), "leftImg8bit_trainvaltest.zip": _zip(images)}


def md5sums(files: dict[str, bytes]) -> str:
    """``md5sum`` output for archives held in memory."""
    return "".join(f"{hashlib.md5(data).hexdigest()}  {name}\n" for name, data in files.items())


class LoopbackServer:
    """Serves ``files`` (URL path → bytes) on 127.0.0.1 with HTTP Range support. Paths in ``drop_once``
    lose their connection half-way through the first response; paths in ``drop_always`` on every one.
    ``requests`` records (path, Range header) per request."""

    def __init__(self, files: dict[str, bytes], drop_once=(), drop_always=()):
        self.files, self.drop_once, self.drop_always = dict(files), set(drop_once), set(drop_always)
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                body = data[start:]
                if self.path in server.drop_once or self.path in server.drop_always:
                    first = self.path in server.drop_once
                    server.drop_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2] if first else b"")
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def official_paths(archives: dict[str, bytes]) -> dict[str, bytes]:
    """The archives under the URL paths of their official URLs (what ``--mirror`` asks a mirror for)."""
    from urllib.parse import urlsplit

    from hummingbird.datasets.prepare.archives import ARCHIVES

    return {urlsplit(ARCHIVES[name].url).path: data for name, data in archives.items()}


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder
