"""Geometric synthetic defects: a second family, distinct from the Perlin one.

Ellipses (spots, holes, stains), thin bent strokes (scratches, cracks) and
rectangles (misplaced or foreign parts), each filled with the image's own content
moved elsewhere and colour-shifted (CutPaste, Li et al. 2021), a flat colour or a
noisy colour, and blended with an opacity. Edges are anti-aliased over one pixel.

Why a second family: a method that trains on synthetic defects must not choose its
checkpoint on the same family, or the validation score measures how well it learnt
the synthesis, not defects. :func:`~kedro_ad.synthesis.synthesize_batch` (Perlin
masks, DiffusionAD's Eq. 9) builds ``synthetic_validation``; DiAD's SG network
trains on these shapes, so its checkpoint choice stays a held-out test.

Pure numpy; deterministic for a given ``numpy.random.Generator`` state.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shape_defects"]

SHAPES = ("ellipse", "stroke", "rectangle")
FILLS = ("moved", "flat", "noise")


def _alpha(
    kind: str, height: int, width: int, rng: np.random.Generator, scale: float
) -> np.ndarray:
    """Soft coverage in ``[0, 1]`` of one shape at a random place and angle."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = rng.uniform(0, height), rng.uniform(0, width)
    angle = rng.uniform(0, np.pi)
    ca, sa = np.cos(angle), np.sin(angle)
    u = (xx - cx) * ca + (yy - cy) * sa
    v = -(xx - cx) * sa + (yy - cy) * ca
    side = min(height, width)
    if kind == "ellipse":
        ra, rb = 1.5 + rng.uniform(0, scale * side, size=2)
        d = np.sqrt((u / ra) ** 2 + (v / rb) ** 2)
        # one pixel of anti-aliasing along the edge, whatever the radius
        return np.clip((1.0 - d) * min(ra, rb) + 0.5, 0, 1)
    if kind == "stroke":
        length = side * rng.uniform(0.1, 0.45)
        half_width = rng.uniform(0.4, 1.6) * side / 64
        bend = rng.uniform(-0.02, 0.02) * 64 / side
        v = v - bend * u**2
        return np.clip(half_width + 0.5 - np.abs(v), 0, 1) * np.clip(
            length / 2 + 0.5 - np.abs(u), 0, 1
        )
    if kind == "rectangle":
        ra, rb = 1.5 + rng.uniform(0, 0.8 * scale * side, size=2)
        return np.clip(ra + 0.5 - np.abs(u), 0, 1) * np.clip(rb + 0.5 - np.abs(v), 0, 1)
    raise ValueError(f"unknown shape {kind!r}; known: {SHAPES}")


def _fill(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Float ``(H, W, 3)`` content in ``[0, 255]`` painted inside the shape."""
    height, width = image.shape[:2]
    if kind == "moved":  # CutPaste: the image's own content, moved and recoloured
        dy = int(rng.integers(height // 4, height - height // 4 + 1))
        dx = int(rng.integers(width // 4, width - width // 4 + 1))
        moved = np.roll(image.astype(np.float32), (dy, dx), axis=(0, 1))
        return np.clip(moved * rng.uniform(0.6, 1.4, size=3), 0, 255)
    colour = rng.uniform(0, 255, size=3).astype(np.float32)
    if kind == "flat":
        return np.broadcast_to(colour, image.shape).astype(np.float32)
    if kind == "noise":
        noise = rng.normal(0, 40, size=image.shape).astype(np.float32)
        return np.clip(colour + noise, 0, 255)
    raise ValueError(f"unknown fill {kind!r}; known: {FILLS}")


def shape_defects(
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    anomaly_probability: float = 0.5,
    opacity_range: tuple[float, float] = (0.5, 1.0),
    max_size: float = 0.15,
    mask_threshold: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint one geometric defect on each image with ``anomaly_probability``.

    Args:
        images: uint8 ``(B, H, W, 3)``.
        rng: the random source.
        anomaly_probability: chance that an image gets a defect.
        opacity_range: how opaque the defect is (1: the fill replaces the image).
        max_size: largest ellipse radius as a fraction of the image side
            (rectangles up to 0.8 of it; strokes are 10-45 % of the side long).
        mask_threshold: painted coverage from which a pixel counts as defect.

    Returns:
        ``(images uint8, masks bool (B, H, W), labels int (B,))``; ``labels == 1``
        exactly where a mask is non-empty.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 (B, H, W, 3), got {images.dtype} {images.shape}"
        )
    lo, hi = (float(v) for v in opacity_range)
    if not 0.0 < lo <= hi <= 1.0:
        raise ValueError(f"opacity_range must lie in (0, 1], got {opacity_range}")
    b, height, width, _ = images.shape
    out = images.copy()
    masks = np.zeros((b, height, width), dtype=bool)
    for i in range(b):
        if rng.random() >= anomaly_probability:
            continue
        for _ in range(8):  # a shape may fall almost outside the image: redraw
            alpha = _alpha(SHAPES[rng.integers(len(SHAPES))], height, width, rng,
                           max_size)  # fmt: skip
            if (alpha > mask_threshold).any():
                break
        fill = _fill(images[i], FILLS[rng.integers(len(FILLS))], rng)
        a = (alpha * rng.uniform(lo, hi))[..., None]
        mixed = images[i].astype(np.float32) * (1 - a) + fill * a
        out[i] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        masks[i] = alpha > mask_threshold
    labels = masks.reshape(b, -1).any(axis=1).astype(np.int64)
    return out, masks, labels
