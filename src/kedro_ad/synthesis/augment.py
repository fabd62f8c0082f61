"""Batched colour augmentations and the grid shuffle that make anomaly content.

DiffusionAD's self-augmentation applies two operations drawn from {equalize,
sharpness, autocontrast, solarize, posterize, invert, gamma} and then shuffles an
8x8 grid of the image. Every operation takes a uint8 batch ``(n, H, W, 3)`` and
draws its own parameter per image. Their definitions are PIL's ``ImageOps`` /
``ImageEnhance`` (what imgaug's ``pillike`` augmenters call) and imgaug's
``GammaContrast``.

Where ``torchvision.transforms.v2.functional`` computes the same pixels, it is
used; ``tests/test_synthesis.py`` checks every operation bit for bit against PIL
(and that torchvision still differs where it is not used). Measured on random
uint8 batches (narrow and full ranges, dark images, flat channels):

* equalize (2.5 M values), invert, posterize (bits 1-7), solarize: torchvision's
  equal PIL's everywhere: torchvision;
* sharpness (2.5 M values, factors in [0, 2]): torchvision's equals PIL's
  everywhere; the former hand-written blend rounded where PIL truncates and
  differed at 40 % of values: torchvision;
* autocontrast (4.9 M values): torchvision's divides by a float32 scale and
  differs from PIL's at 8.9 % of values; the table below is PIL's own formula in
  float64 and equals it everywhere (7.4 M values): kept;
* gamma (1.9 M values): torchvision's ``adjust_gamma`` scales by 255.999 before
  truncating and differs from the rounded table below at 25 % of values; it also
  takes one gamma for all channels: kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

OPS = (
    "equalize",
    "sharpness",
    "autocontrast",
    "solarize",
    "posterize",
    "invert",
    "gamma",
)
_LEVELS = np.arange(256, dtype=np.float64)


def _torch(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(n, H, W, 3)`` numpy -> ``(n, 3, H, W)`` tensor (a view)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)


def _numpy(images: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())


def _per_value(
    images: np.ndarray, values: np.ndarray, op: Callable[[torch.Tensor, float], Any]
) -> np.ndarray:
    """``op(images, value)`` with one parameter value per image (torchvision's
    functions take one value per call: the images sharing a value go together)."""
    out = np.empty_like(images)
    for value in np.unique(values):
        rows = np.flatnonzero(values == value)
        out[rows] = _numpy(op(_torch(images[rows]), value.item()))
    return out


def apply_luts(images: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Map each channel of each image through its table: ``luts`` ``(n, 3, 256)``."""
    n = images.shape[0]
    offsets = (np.arange(n * 3, dtype=np.intp) * 256).reshape(n, 1, 1, 3)
    return np.take(luts.astype(np.uint8, copy=False).ravel(), images + offsets)


def equalize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Histogram equalisation per channel (``PIL.ImageOps.equalize``)."""
    return _numpy(TF.equalize(_torch(images)))


def autocontrast(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stretch each channel's range to 0..255 (``PIL.ImageOps.autocontrast``).

    PIL's table, ``int(level * scale - low * scale)`` in double precision; see the
    module docstring for why not torchvision's.
    """
    lo = images.min(axis=(1, 2)).astype(np.float64)[..., None]  # (n, 3, 1)
    hi = images.max(axis=(1, 2)).astype(np.float64)[..., None]
    scale = 255.0 / np.maximum(hi - lo, 1.0)
    luts = np.clip(np.trunc(_LEVELS * scale - lo * scale), 0, 255).astype(np.uint8)
    luts = np.where(hi > lo, luts, np.arange(256, dtype=np.uint8))
    return apply_luts(images, luts)


def solarize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invert the levels at or above a threshold drawn in [32, 128] per image."""
    threshold = rng.integers(32, 129, size=images.shape[0])
    return _per_value(images, threshold, TF.solarize)


def posterize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep 1 to 7 high bits per image (imgaug's range, without the no-op 8)."""
    bits = rng.integers(1, 8, size=images.shape[0])
    return _per_value(images, bits, TF.posterize)


def invert(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """255 minus each level."""
    return _numpy(TF.invert(_torch(images)))


def gamma(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma in [0.5, 2] per image and channel (imgaug GammaContrast, per_channel),
    rounded to the nearest level."""
    g = rng.uniform(0.5, 2.0, size=(images.shape[0], 3, 1)).astype(np.float32)
    levels = _LEVELS.astype(np.float32)
    luts = np.rint(255.0 * (levels / 255.0) ** g)
    return apply_luts(images, luts.astype(np.uint8))


def sharpness(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``PIL.ImageEnhance.Sharpness`` with a factor in [0, 2] per image.

    Blends the image with its SMOOTH-filtered copy (3x3 kernel, centre weight 5,
    sum 13; border pixels unfiltered): factor 0 blurs, 1 keeps, 2 sharpens.
    """
    factor = rng.uniform(0.0, 2.0, size=images.shape[0])
    return _per_value(images, factor, TF.adjust_sharpness)


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
