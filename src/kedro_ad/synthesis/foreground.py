"""Where an object is: a foreground estimate from the image's own background.

Synthetic defects belong on the object, not on the tray it lies on. DiffusionAD
reads foreground masks made offline by a saliency network; here the estimate is
computed from the image alone: the border strip is taken as background, a pixel
whose (smoothed) colour lies far from the border's colour distribution is
foreground, and morphology cleans the result up. Texture classes are all foreground.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)

# MVTec AD textures, DAGM's ten classes (all textures), the embedded synthetic
# textures and Magnetic Tile. DiffusionAD's list also holds "zipper", an object here.
DEFAULT_TEXTURE_CLASSES = (
    "carpet",
    "grid",
    "leather",
    "tile",
    "wood",
    *(f"Class{i}" for i in range(1, 11)),
    "fabric",
    "brushed_metal",
    "magnetic_tile",
)


def texture_rows(classes: np.ndarray, texture_classes: Iterable[str]) -> np.ndarray:
    """Bool per row: whether its class is a texture (whole image is foreground)."""
    names = {str(name) for name in texture_classes}
    return np.array([str(c) in names for c in np.asarray(classes)], dtype=bool)


def _border(images: np.ndarray, width: int) -> np.ndarray:
    """Pixels of the outer ``width``-pixel frame, ``(n, pixels, channels)``."""
    n, _, _, c = images.shape
    parts = (
        images[:, :width].reshape(n, -1, c),
        images[:, -width:].reshape(n, -1, c),
        images[:, width:-width, :width].reshape(n, -1, c),
        images[:, width:-width, -width:].reshape(n, -1, c),
    )
    return np.concatenate(parts, axis=1)


def _planar(structure_2d: np.ndarray) -> np.ndarray:
    """A 3-D structuring element acting within each image of a batch only."""
    out = np.zeros((3, *structure_2d.shape), dtype=bool)
    out[1] = structure_2d
    return out


def _outliers(x: np.ndarray, frame: int, threshold: float) -> np.ndarray:
    """Pixels whose colour is far from the border frame's: robust per-channel
    distance (median, 1.4826 MAD floored at 2 levels) above ``threshold`` and
    above the 99th percentile of the frame's own distances."""
    ring = _border(x, frame)
    median = np.median(ring, axis=1)  # (m, 3)
    spread = 1.4826 * np.median(np.abs(ring - median[:, None]), axis=1)
    spread = np.maximum(spread, 2.0)
    ring_distance = np.sqrt((((ring - median[:, None]) / spread[:, None]) ** 2).sum(-1))
    bar = np.maximum(threshold, np.percentile(ring_distance, 99, axis=1))
    distance = np.sqrt(
        (((x - median[:, None, None]) / spread[:, None, None]) ** 2).sum(axis=-1)
    )
    return distance > bar[:, None, None]


def foreground_masks(
    images: np.ndarray,
    is_texture: np.ndarray,
    *,
    border_fraction: float = 0.04,
    smoothing_sigma: float = 1.5,
    distance_threshold: float = 6.0,
    min_component_fraction: float = 0.002,
    max_hole_fraction: float = 0.02,
) -> np.ndarray:
    """Foreground estimate ``(B, H, W)`` bool for uint8 RGB ``images`` ``(B, H, W, 3)``.

    Rows where ``is_texture`` is True are all foreground. For the others: the
    outer frame (``border_fraction`` of the side wide) is the background sample,
    summarised per channel by its median and a robust spread (1.4826 MAD, floored at
    2 levels); a pixel is foreground when its normalised distance to that median
    exceeds ``distance_threshold`` and the 99th percentile of the frame's own
    distances (so a textured tray raises its own bar), both in the image and in its
    Gaussian-smoothed copy (``smoothing_sigma`` px). Then a closing bridges thin
    lines, holes smaller than ``max_hole_fraction`` are filled (a washer's centre
    stays out), an opening removes specks and thin rims, and components under
    ``min_component_fraction`` of the image are dropped. An image whose estimate
    covers under 1 % or over 97 % of it (the object fills the frame, or nothing
    stands out) gets the whole image: a defect may then land anywhere, as on a
    texture.
    """
    images = np.asarray(images)
    is_texture = np.asarray(is_texture, dtype=bool)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got {images.shape}")
    n, height, width, _ = images.shape
    if is_texture.shape != (n,):
        raise ValueError(f"is_texture must be ({n},), got {is_texture.shape}")
    out = np.ones((n, height, width), dtype=bool)
    rows = np.flatnonzero(~is_texture)
    if rows.size == 0:
        return out
    raw = images[rows].astype(np.float32)
    frame = max(1, round(border_fraction * min(height, width)))
    mask = _outliers(raw, frame, distance_threshold)
    if smoothing_sigma > 0:
        # The smoothed image decides where noise is not an object; the raw image
        # keeps the blur from spreading a high-contrast object's outline outwards.
        smooth = ndimage.gaussian_filter(
            raw, sigma=(0, smoothing_sigma, smoothing_sigma, 0), mode="nearest"
        )
        mask &= _outliers(smooth, frame, distance_threshold)

    plane = _planar(np.ones((3, 3), dtype=bool))
    # Bridge thin lines of background colour on the object (print, outlines), then
    # fill small holes, then drop specks and thin rims (shadows) and small pieces.
    padded = np.pad(mask, ((0, 0), (2, 2), (2, 2)))  # closing must not eat the edge
    mask = ndimage.binary_closing(padded, structure=plane, iterations=2)[:, 2:-2, 2:-2]
    filled = ndimage.binary_fill_holes(mask, structure=plane)
    holes, count = ndimage.label(filled & ~mask, structure=plane)
    if count:
        sizes = np.bincount(holes.ravel(), minlength=count + 1)
        small = sizes < max_hole_fraction * height * width
        small[0] = False
        mask |= small[holes]
    mask = ndimage.binary_opening(mask, structure=plane, iterations=2)
    labels, count = ndimage.label(mask, structure=plane)
    if count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        keep = sizes >= min_component_fraction * height * width
        keep[0] = False
        mask = keep[labels]
    coverage = mask.reshape(rows.size, -1).mean(axis=1)
    unusable = (coverage < 0.01) | (coverage > 0.97)
    if unusable.any():
        logger.debug(
            "foreground estimate unusable for %d of %d images; using whole images",
            int(unusable.sum()),
            rows.size,
        )
        mask[unusable] = True
    out[rows] = mask
    return out
