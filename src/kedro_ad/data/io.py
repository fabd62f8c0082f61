"""The one home for image IO: reading images and masks, and describing files.

Everything that turns a file on disk into pixels goes through here, so every part of
the project agrees on colour conversion, resizing, mask thresholds and on how a
broken file is reported (:class:`ImageReadError`, one line naming the file).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageFile, UnidentifiedImageError
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

# Columns that describe_files adds, with the value a row gets when there is no file.
DESCRIBE_COLUMNS = {
    "width": -1,
    "height": -1,
    "mode": "",
    "sha256": "",
    "image_ok": False,
    "image_error": "",
    "mask_width": -1,
    "mask_height": -1,
    "mask_binary": True,
    "mask_fraction": 0.0,
    "mask_error": "",
}
_PROGRESS_MIN_FILES = 200  # fewer files than this finish too fast for a bar
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
# Leading bytes of the formats datasets use: a file that starts like one of them but
# that PIL cannot identify was cut short, rather than being some other kind of file.
_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")


class ImageReadError(ValueError):
    """A file could not be read as an image; the message names the file."""


def _problem(exc: BaseException, data: bytes = b"") -> str:
    """Short description of why PIL could not read a file (``data``: its bytes)."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, UnidentifiedImageError):
        if data.startswith(_SIGNATURES):
            return f"truncated (only {len(data)} bytes, the header is incomplete)"
        return "not an image file" if data else "not an image file (empty)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "truncated" in text.lower():
        return f"truncated ({text})"
    return f"cannot decode image ({type(exc).__name__}: {text})"


def _decode(data: bytes) -> Image.Image:
    """Fully decode image bytes so that a truncated file fails here, not later."""
    image = Image.open(io.BytesIO(data))
    image.load()
    # PIL stops reading a PNG after its last pixel row, so a file cut off in its
    # final chunks still loads; a PNG without its end chunk was cut off anyway.
    if image.format == "PNG" and b"IEND" not in data[-12:]:
        raise OSError("image file is truncated (PNG end chunk missing)")
    return image


def _load(path: PathLike) -> tuple[Image.Image, bytes]:
    """Read and decode one file; raise ImageReadError naming it on any problem."""
    data = b""
    try:
        data = Path(path).read_bytes()
        return _decode(data), data
    except Exception as exc:  # PIL raises many types for corrupt files
        raise ImageReadError(f"{path}: {_problem(exc, data)}") from exc


def _to_rgb(image: Image.Image, path: PathLike) -> Image.Image:
    if image.mode == "RGB":
        return image
    logger.debug("%s: converting mode %s to RGB", path, image.mode)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        # 16-bit grayscale: keep the top 8 bits, for every image alike (a per-image
        # rule would put images of one dataset on two brightness scales). Plain
        # 32-bit "I" has no declared depth: values above 255 are taken as 16-bit.
        arr = np.asarray(image, dtype=np.int64)
        sixteen = image.mode in _SIXTEEN_BIT_MODES or arr.max() > 255
        arr = np.clip(arr >> 8 if sixteen else arr, 0, 255).astype(np.uint8)
        image = Image.fromarray(arr, mode="L")
    elif image.mode == "F":
        arr = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        image = Image.fromarray(arr, mode="L")
    return image.convert("RGB")


def read_image(path: PathLike, size: int | None = None) -> np.ndarray:
    """Read an image as uint8 RGB ``[H, W, 3]``, resized to ``size x size`` if given.

    Grayscale, palette, RGBA and 16-bit images are converted to RGB. Resizing uses
    PIL's bilinear filter, which widens its support when shrinking (antialiased,
    close to area averaging). Raises :class:`ImageReadError` for a missing,
    truncated or undecodable file.
    """
    image, _ = _load(path)
    if image.mode == "L" and size is not None:
        # Same result as converting first (L -> RGB copies the channel), 3x cheaper.
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    image = _to_rgb(image, path)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _mask_levels(image: Image.Image) -> np.ndarray:
    """Mask pixels as a 2-D uint8 array of gray levels."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        arr = np.asarray(image)
        return (arr > 0).astype(np.uint8) * 255
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.uint8)


def _foreground(levels: np.ndarray) -> np.ndarray:
    """Defect pixels of a mask.

    0/255 masks (MVTec AD) are thresholded at 127. A mask whose values never exceed
    127 but are not all zero stores small label ids (VisA's release masks do), so
    every nonzero pixel is a defect there.
    """
    peak = int(levels.max()) if levels.size else 0
    if 0 < peak <= 127:
        return levels > 0
    return levels > 127


def read_mask(path: PathLike, size: int | None = None) -> np.ndarray:
    """Read a defect mask as bool ``[H, W]``, resized (nearest) to ``size x size``.

    Foreground is gray level > 127; for label-id masks whose values are all <= 127
    (such as VisA's) it is every nonzero pixel. Raises :class:`ImageReadError` for
    a missing or undecodable file.
    """
    image, _ = _load(path)
    levels = _mask_levels(image)
    if size is not None and levels.shape != (size, size):
        levels = np.asarray(
            Image.fromarray(levels).resize((size, size), Image.Resampling.NEAREST)
        )
    return _foreground(levels)


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (identical content, identical digest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_binary(levels: np.ndarray) -> bool:
    """Whether a mask holds only background 0 and one foreground level.

    Label-id masks (all values <= 127, e.g. VisA's) count as binary too: each id is
    a defect, and :func:`read_mask` reads every nonzero pixel as foreground.
    """
    values = np.unique(levels)
    if values.size <= 1:
        return True
    if values.size == 2 and values[0] == 0:
        return True
    return bool(values[0] == 0 and values[-1] <= 127)


def _is_path(value: Any) -> bool:
    return isinstance(value, str | os.PathLike) and str(value) != ""


def _describe_one(image_path: Any, mask_path: Any) -> dict[str, Any]:
    """Describe one image (and its mask); never raises for a bad file."""
    out = dict(DESCRIBE_COLUMNS)
    if not _is_path(image_path):
        out["image_error"] = "no image path"
    else:
        data = b""
        try:
            data = Path(image_path).read_bytes()
            out["sha256"] = hashlib.sha256(data).hexdigest()
            image = _decode(data)
            out["width"], out["height"] = image.size
            out["mode"] = image.mode
            out["image_ok"] = True
        except Exception as exc:  # recorded, validation reports it
            out["image_error"] = _problem(exc, data)
            logger.debug("%s: %s", image_path, out["image_error"])
    if _is_path(mask_path):
        data = b""
        try:
            data = Path(mask_path).read_bytes()
            levels = _mask_levels(_decode(data))
            out["mask_height"], out["mask_width"] = levels.shape
            out["mask_binary"] = _is_binary(levels)
            out["mask_fraction"] = float(_foreground(levels).mean())
        except Exception as exc:
            out["mask_error"] = _problem(exc, data)
            logger.debug("%s: %s", mask_path, out["mask_error"])
    return out


@contextmanager
def _strict_truncation() -> Iterator[None]:
    """Make PIL raise on truncated files while describing them."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    if previous:
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES was True; turning it off while "
            "describing files so truncated images are caught"
        )
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def describe_files(rows: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """Add per-file facts to a samples table, decoding every image and mask fully.

    Adds ``width``, ``height`` (-1 when unreadable), ``mode`` (PIL mode, "" when
    unreadable), ``sha256``, ``image_ok``, ``image_error`` ("" when ok),
    ``mask_width``, ``mask_height`` (-1 without a readable mask), ``mask_binary``
    (True without a mask), ``mask_fraction`` (defect share of the mask's pixels,
    0.0 without a mask) and ``mask_error``. A bad file never raises: it is recorded
    for the validation step to report. Files are decoded by a few threads (PIL
    releases the GIL while decoding).
    """
    if "image_path" not in rows.columns:
        raise ValueError("describe_files needs an 'image_path' column")
    images = rows["image_path"].tolist()
    masks = (
        rows["mask_path"].tolist()
        if "mask_path" in rows.columns
        else [None] * len(rows)
    )
    workers = min(8, (os.cpu_count() or 1) + 1)
    with _strict_truncation(), ThreadPoolExecutor(max_workers=workers) as pool:
        described = list(
            tqdm(
                pool.map(_describe_one, images, masks),
                total=len(images),
                desc="Describing files",
                unit="file",
                disable=not progress or len(images) < _PROGRESS_MIN_FILES,
            )
        )
    facts = pd.DataFrame(described, columns=list(DESCRIBE_COLUMNS))
    out = rows.drop(columns=[c for c in DESCRIBE_COLUMNS if c in rows.columns])
    for column in DESCRIBE_COLUMNS:  # positional: the index may repeat labels
        out[column] = facts[column].to_numpy()
    for column in ("width", "height", "mask_width", "mask_height"):
        out[column] = out[column].astype("int64")
    for column in ("image_ok", "mask_binary"):
        out[column] = out[column].astype(bool)
    out["mask_fraction"] = out["mask_fraction"].astype("float64")
    n_bad = int((~out["image_ok"]).sum() + (out["mask_error"] != "").sum())
    logger.info("Described %d files (%d unreadable)", len(out), n_bad)
    return out
