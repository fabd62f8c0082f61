"""Anomaly-source textures: a folder of images (e.g. a DTD subset) read once."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kedro_ad.data.io import ImageReadError, read_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


class TextureFolderError(ValueError):
    """The texture folder is missing or holds no readable image."""


def _read_or_none(path: Path, size: int) -> np.ndarray | None:
    try:
        return read_image(path, size)
    except ImageReadError as exc:
        logger.warning("Skipping texture %s", exc)
        return None


def load_textures(folder: str | os.PathLike | None, size: int) -> np.ndarray | None:
    """Every image under ``folder`` (searched recursively, sorted by path) as uint8
    RGB ``(K, size, size, 3)``, or None when ``folder`` is None (self-augmentation
    is then the only anomaly source).

    Unreadable files are skipped with a warning; a folder that does not exist or
    holds no readable image raises :class:`TextureFolderError` naming it.
    """
    if folder is None or str(folder) == "":
        return None
    root = Path(folder)
    if not root.is_dir():
        raise TextureFolderError(
            f"texture folder {root} does not exist (set texture_dir to a folder of "
            "images, or to null for self-augmentation only)"
        )
    paths = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    workers = min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL releases the GIL
        images = [
            image
            for image in pool.map(lambda p: _read_or_none(p, size), paths)
            if image is not None
        ]
    if not images:
        raise TextureFolderError(
            f"texture folder {root} holds no readable image "
            f"({len(paths)} files with an image suffix)"
        )
    logger.info("Loaded %d textures from %s at %dpx", len(images), root, size)
    return np.stack(images)
