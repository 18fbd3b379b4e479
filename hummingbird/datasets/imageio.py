"""Reading images of any pixel format as 8-bit RGB, without clipping high-bit-depth data.

Pillow's ``convert("RGB")`` clips 16-bit and 32-bit single-channel images to 255 (a 16-bit PNG turns
white). Here they are scaled instead:

* ``I;16*`` (16-bit grayscale PNG/TIFF): ``value / 257`` (65535 → 255);
* ``I`` (32-bit integers): values within 0..255 are taken as 8-bit, within 0..65535 as 16-bit
  (``/ 257``); anything else is refused;
* ``F`` (32-bit float): values within [0, 1] are scaled by 255, within [0, 255] taken as they are;
  anything else (negative, larger, NaN) is refused.

16-bit RGB(A) PNGs are already reduced to 8 bits per channel by Pillow; grayscale, palette, CMYK and
RGBA images are converted by Pillow (alpha dropped).

Photos are read upright: an EXIF orientation (a phone photo stored sideways, tagged "rotate 90°") is
applied, as image viewers, OpenCV's ``imread`` and mmsegmentation do, so the image has the size and
content its user sees and its mask (stored as displayed, read as stored) lines up with it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from hummingbird.errors import DatasetError, HummingbirdError


def is_high_bit_depth(mode: str) -> bool:
    """Whether Pillow ``mode`` holds more than 8 bits per pixel in one channel (16/32-bit int, float)."""
    return mode.startswith("I;16") or mode in ("I", "F")


def _eight_bit_scale(values: np.ndarray, mode: str, path: str | Path, advice: str = "save it as an 8- or 16-bit image"
                     ) -> float:
    """Factor mapping ``values`` of a high-bit-depth image onto 0..255, or raise naming the file (``advice``:
    what to do instead)."""
    if mode.startswith("I;16"):
        return 1 / 257
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode == "F":
        if not np.isfinite(values).all():
            raise DatasetError(f"{path}: float image holds NaN or infinite values; cannot read it as a photo")
        if low >= 0 and high <= 1:
            return 255.0
        if low >= 0 and high <= 255:
            return 1.0
        raise DatasetError(f"{path}: float image with values in [{low:g}, {high:g}], neither [0, 1] nor [0, 255]; "
                           f"{advice}")
    if low >= 0 and high <= 255:
        return 1.0
    if low >= 0 and high <= 65535:
        return 1 / 257
    raise DatasetError(f"{path}: integer image with values in [{low:g}, {high:g}], outside 0..65535; {advice}")


def array_to_rgb8(values: np.ndarray, what: str = "image") -> Image.Image:
    """An image held in an array → 8-bit ``RGB`` by the rules image files are read with: ``(H, W, 3)`` or
    ``(3, H, W)`` (channels last or first, told from the shape), ``(H, W)`` grayscale, 1 or 4 channels (alpha
    dropped); uint8 as it is, 16-bit / larger integers and floats scaled as in :func:`to_rgb8` ([0, 1] × 255
    or [0, 255] as it is). Anything else raises :class:`DatasetError` naming ``what``."""
    array = np.asarray(values)
    shape = tuple(array.shape)
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # channels first (a torch layout) → channels last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)) or 0 in array.shape:
        raise DatasetError(f"{what}: an array of shape {shape} is not an image; expected (H, W, 3) or (3, H, W) "
                           f"RGB, (H, W) grayscale, or 4 channels (RGBA, alpha dropped)")
    if array.ndim == 3:
        array = array[..., :3]
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype.kind in "fiu":
        if array.dtype.kind == "f":
            mode = "F"
        else:
            mode = "I;16" if array.dtype == np.uint16 else "I"
        advice = ("give the image before normalisation (values in [0, 1] or [0, 255])" if mode == "F"
                  else "give 8-bit or 16-bit values")
        scale = _eight_bit_scale(array, mode, f"{what} ({array.dtype} array)", advice)
        pixels = np.clip(np.round(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    else:
        raise DatasetError(f"{what}: a {array.dtype} array is not an image; expected uint8, 16-bit integers or "
                           f"floats in [0, 1] or [0, 255]")
    return Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")


def to_rgb8(image: Image.Image, path: str | Path = "image") -> Image.Image:
    """Any Pillow image → 8-bit ``RGB``, high-bit-depth single-channel data scaled (not clipped)."""
    if is_high_bit_depth(image.mode):
        values = np.asarray(image)
        scale = _eight_bit_scale(values, image.mode, path)
        gray = np.clip(np.round(values.astype(np.float64) * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return image.convert("RGB")


EXIF_ORIENTATION = 0x0112
ORIENTATION_WORDS = {2: "mirrored", 3: "rotated 180°", 4: "mirrored upside down", 5: "mirrored and rotated 90°",
                     6: "rotated 90° clockwise", 7: "mirrored and rotated 90°", 8: "rotated 90° counter-clockwise"}


@dataclass(frozen=True)
class StoredImage:
    """What the file holds before reading: Pillow ``mode`` and EXIF ``orientation`` (1: upright)."""

    mode: str
    orientation: int = 1

    @property
    def turned(self) -> bool:
        return self.orientation in ORIENTATION_WORDS


def exif_orientation(image: Image.Image) -> int:
    """EXIF orientation of an open image, 1 (as stored) when absent or unreadable."""
    try:
        value = int(image.getexif().get(EXIF_ORIENTATION, 1))
    except (OSError, ValueError, TypeError, KeyError, SyntaxError, struct.error):  # malformed EXIF: ignored,
        return 1  # as viewers do
    return value if value in ORIENTATION_WORDS else 1


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says (unchanged when it has none)."""
    return ImageOps.exif_transpose(image) if exif_orientation(image) != 1 else image


def read_rgb_stored(path: str | Path, error: type[HummingbirdError] = DatasetError
                    ) -> tuple[Image.Image, StoredImage]:
    """``path`` as upright 8-bit RGB (see :func:`to_rgb8`, :func:`upright`) and what the file held;
    problems raise ``error`` naming the file. The one image reader of datasets, ``segment``,
    ``neighbours``, the viewer and source crops."""
    try:
        with Image.open(path) as img:
            stored = StoredImage(img.mode, exif_orientation(img))
            return to_rgb8(upright(img), path), stored
    except HummingbirdError as exc:
        raise error(str(exc)) from exc
    except FileNotFoundError:
        raise error(f"{path}: image file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not an image file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise error(f"{path}: cannot read image, unreadable or truncated ({exc})") from exc


def read_rgb(path: str | Path, error: type[HummingbirdError] = DatasetError) -> Image.Image:
    """``path`` as upright 8-bit RGB; problems raise ``error`` naming the file (:func:`read_rgb_stored`)."""
    return read_rgb_stored(path, error)[0]


def stored_image(path: str | Path) -> StoredImage:
    """Mode and EXIF orientation of an image file, from its header (no pixels decoded)."""
    with Image.open(path) as img:
        return StoredImage(img.mode, exif_orientation(img))
