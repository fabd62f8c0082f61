"""Batched colour augmentations and the grid shuffle that make anomaly content.

DiffusionAD's self-augmentation applies two operations drawn from {equalize,
sharpness, autocontrast, solarize, posterize, invert, gamma} and then shuffles an
8x8 grid of the image. Every operation here works on a uint8 batch ``(n, H, W, 3)``
at once; all but sharpness are per-(image, channel) lookup tables, and their
definitions follow PIL's ``ImageOps`` / ``ImageEnhance`` (what imgaug's ``pillike``
augmenters call).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

OPS = (
    "equalize",
    "sharpness",
    "autocontrast",
    "solarize",
    "posterize",
    "invert",
    "gamma",
)
_LEVELS = np.arange(256, dtype=np.float32)


def apply_luts(images: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Map each channel of each image through its table: ``luts`` ``(n, 3, 256)``."""
    n = images.shape[0]
    offsets = (np.arange(n * 3, dtype=np.intp) * 256).reshape(n, 1, 1, 3)
    return np.take(luts.astype(np.uint8, copy=False).ravel(), images + offsets)


def _histograms(images: np.ndarray) -> np.ndarray:
    """Per image and channel histograms ``(n, 3, 256)``."""
    n = images.shape[0]
    offsets = (np.arange(n * 3, dtype=np.intp) * 256).reshape(n, 1, 1, 3)
    counts = np.bincount((images + offsets).ravel(), minlength=n * 3 * 256)
    return counts.reshape(n, 3, 256)


def equalize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Histogram equalisation per channel, as ``PIL.ImageOps.equalize``."""
    hist = _histograms(images)
    # PIL: step = (pixels - count of the highest level present) // 255
    last = 255 - np.argmax(hist[..., ::-1] > 0, axis=-1)
    top = np.take_along_axis(hist, last[..., None], axis=-1)[..., 0]
    step = (hist.sum(axis=-1) - top) // 255
    below = np.cumsum(hist, axis=-1) - hist
    safe = np.maximum(step, 1)[..., None]
    luts = np.minimum((below + safe // 2) // safe, 255)
    luts = np.where(step[..., None] > 0, luts, np.arange(256))
    return apply_luts(images, luts)


def autocontrast(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stretch each channel's range to 0..255, as ``PIL.ImageOps.autocontrast``."""
    lo = images.min(axis=(1, 2)).astype(np.float32)[..., None]  # (n, 3, 1)
    hi = images.max(axis=(1, 2)).astype(np.float32)[..., None]
    scale = 255.0 / np.maximum(hi - lo, 1.0)
    luts = np.clip((_LEVELS - lo) * scale, 0, 255).astype(np.uint8)
    luts = np.where(hi > lo, luts, np.arange(256, dtype=np.uint8))
    return apply_luts(images, luts)


def solarize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invert the levels at or above a threshold drawn in [32, 128] per image."""
    threshold = rng.integers(32, 129, size=(images.shape[0], 1, 1))
    levels = np.arange(256)
    luts = np.where(levels >= threshold, 255 - levels, levels)
    return apply_luts(images, np.broadcast_to(luts, (images.shape[0], 3, 256)))


def posterize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep 1 to 7 high bits per image (imgaug's range, without the no-op 8)."""
    bits = rng.integers(1, 8, size=(images.shape[0], 1, 1, 1))
    keep = (0xFF << (8 - bits)) & 0xFF
    return images & keep.astype(np.uint8)


def invert(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """255 minus each level."""
    return 255 - images


def gamma(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma in [0.5, 2] per image and channel (imgaug GammaContrast, per_channel)."""
    g = rng.uniform(0.5, 2.0, size=(images.shape[0], 3, 1)).astype(np.float32)
    luts = np.rint(255.0 * (_LEVELS / 255.0) ** g)
    return apply_luts(images, luts.astype(np.uint8))


def sharpness(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``PIL.ImageEnhance.Sharpness`` with a factor in [0, 2] per image.

    Blends the image with PIL's SMOOTH-filtered copy (3x3 kernel, centre weight 5,
    sum 13; border pixels unfiltered): factor 0 blurs, 1 keeps, 2 sharpens.
    """
    factor = rng.uniform(0.0, 2.0, size=(images.shape[0], 1, 1, 1))
    x = images.astype(np.float32)
    smooth = x.copy()
    inner = 4.0 * x[:, 1:-1, 1:-1]
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            inner += x[:, dy : dy + x.shape[1] - 2, dx : dx + x.shape[2] - 2]
    smooth[:, 1:-1, 1:-1] = np.rint(inner / 13.0)
    out = smooth + factor.astype(np.float32) * (x - smooth)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


_FUNCTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "equalize": equalize,
    "sharpness": sharpness,
    "autocontrast": autocontrast,
    "solarize": solarize,
    "posterize": posterize,
    "invert": invert,
    "gamma": gamma,
}


def random_augment(
    images: np.ndarray, rng: np.random.Generator, n_ops: int = 2
) -> np.ndarray:
    """Apply ``n_ops`` distinct operations from :data:`OPS`, drawn per image, in
    the drawn order. Each operation runs once per position on the images that drew
    it, so the cost is a few batched passes, not one per image."""
    images = np.asarray(images, dtype=np.uint8)
    n = images.shape[0]
    if n == 0 or n_ops == 0:
        return images.copy()
    chosen = np.argsort(rng.random((n, len(OPS))), axis=1)[:, :n_ops]
    out = images.copy()
    for position in range(n_ops):
        for k, name in enumerate(OPS):
            rows = np.flatnonzero(chosen[:, position] == k)
            if rows.size:
                out[rows] = _FUNCTIONS[name](out[rows], rng)
    return out


def grid_shuffle(
    images: np.ndarray, rng: np.random.Generator, grid: int = 8
) -> np.ndarray:
    """Cut each image into ``grid x grid`` cells and put them back in a random order.

    Rows and columns beyond the largest multiple of ``grid`` stay where they are.
    """
    images = np.asarray(images)
    n, height, width = images.shape[:3]
    ch, cw = height // grid, width // grid
    out = images.copy()
    if n == 0 or ch == 0 or cw == 0:
        return out
    h, w = ch * grid, cw * grid
    cells = images[:, :h, :w].reshape(n, grid, ch, grid, cw, -1)
    cells = cells.transpose(0, 1, 3, 2, 4, 5).reshape(n, grid * grid, ch, cw, -1)
    order = np.argsort(rng.random((n, grid * grid)), axis=1)
    cells = cells[np.arange(n)[:, None], order]
    cells = cells.reshape(n, grid, grid, ch, cw, -1).transpose(0, 1, 3, 2, 4, 5)
    out[:, :h, :w] = cells.reshape(n, h, w, -1)
    return out
