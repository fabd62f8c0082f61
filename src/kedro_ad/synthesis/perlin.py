"""Batched 2-D Perlin noise and the defect masks thresholded from it.

DRAEM and DiffusionAD draw one noise image per sample (lattice of ``2**a x 2**b``
cells, ``a, b`` uniform in ``[0, 6)``), rotate it by an angle in (-90, 90) degrees
and threshold it at 0.5. Here a whole batch is drawn at once: each sample has its own
gradient lattice, scales and angle, and the rotation is applied to the pixel
coordinates before the lattice lookup (no image resampling, no empty corners).
"""

from __future__ import annotations

import math

import numpy as np

_SQRT2 = math.sqrt(2.0)  # DRAEM's rand_perlin_2d_np scales its noise by sqrt(2)


def _fade(t: np.ndarray) -> np.ndarray:
    """Perlin's quintic fade curve 6t^5 - 15t^4 + 10t^3."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(
    rng: np.random.Generator,
    n: int,
    height: int,
    width: int,
    scale_range: tuple[int, int] = (0, 6),
) -> np.ndarray:
    """``n`` Perlin noise images ``(n, height, width)`` float32, roughly in [-1, 1].

    Each sample gets ``2**a`` lattice cells along its first axis and ``2**b`` along
    its second (``a, b`` integers uniform in ``[scale_range[0], scale_range[1])``),
    a random rotation in (-90, 90) degrees and a random sub-cell offset.
    """
    lo, hi = int(scale_range[0]), int(scale_range[1])
    if not 0 <= lo < hi:
        raise ValueError(f"perlin scale_range must satisfy 0 <= lo < hi, got {lo, hi}")
    if n == 0:
        return np.zeros((0, height, width), np.float32)
    res = 2.0 ** rng.integers(lo, hi, size=(n, 2))
    theta = rng.uniform(-math.pi / 2, math.pi / 2, size=n)
    offset = rng.random((n, 2))
    # Rotated coordinates of a centred unit square stay within 0.71 * res of the
    # centre, so a lattice of 2 * res + 3 gradients per axis always covers them.
    size = int(2 * 2 ** (hi - 1) + 3)
    angles = rng.uniform(0.0, 2 * math.pi, size=(n, size, size)).astype(np.float32)
    # one complex gather per corner fetches both gradient components
    grad_y, grad_x = np.sin(angles).ravel(), np.cos(angles).ravel()

    y = ((np.arange(height, dtype=np.float32) + 0.5) / height - 0.5)[:, None]
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width - 0.5)[None, :]
    cos = np.cos(theta).astype(np.float32)[:, None, None]
    sin = np.sin(theta).astype(np.float32)[:, None, None]
    res32 = res.astype(np.float32)
    u = (cos * y - sin * x) * res32[:, 0, None, None]
    u += (res32[:, 0] + offset[:, 0].astype(np.float32))[:, None, None]
    v = (sin * y + cos * x) * res32[:, 1, None, None]
    v += (res32[:, 1] + offset[:, 1].astype(np.float32))[:, None, None]

    iu = u.astype(np.intp)  # u, v > 0: truncation is floor
    iv = v.astype(np.intp)
    fu = u - iu
    fv = v - iv
    base = iu * size + iv
    base += (np.arange(n, dtype=np.intp) * size * size)[:, None, None]

    def corner(shift: int, du: np.ndarray | float, dv: np.ndarray | float):
        index = base + shift if shift else base
        return grad_y[index] * du + grad_x[index] * dv

    fu1, fv1 = fu - 1.0, fv - 1.0
    n00 = corner(0, fu, fv)
    n01 = corner(1, fu, fv1)
    n10 = corner(size, fu1, fv)
    n11 = corner(size + 1, fu1, fv1)
    wu, wv = _fade(fu), _fade(fv)
    top = n00 + wv * (n01 - n00)
    bottom = n10 + wv * (n11 - n10)
    return (_SQRT2 * (top + wu * (bottom - top))).astype(np.float32, copy=False)


def perlin_masks(
    rng: np.random.Generator,
    foreground: np.ndarray,
    scale_range: tuple[int, int] = (0, 6),
    threshold: float = 0.5,
    max_tries: int = 8,
) -> np.ndarray:
    """Defect masks ``(n, H, W)`` bool: Perlin noise above ``threshold``, inside
    ``foreground`` (bool ``(n, H, W)``), never empty.

    Samples whose mask comes out empty get fresh noise (up to ``max_tries`` draws,
    as DiffusionAD's loader retries); the few still empty then take the brightest
    2 % of their last noise inside the foreground. A sample with an empty
    foreground is given the whole image as foreground.
    """
    foreground = np.asarray(foreground, dtype=bool)
    n, height, width = foreground.shape
    empty_fg = ~foreground.reshape(n, -1).any(axis=1)
    if empty_fg.any():
        foreground = foreground.copy()
        foreground[empty_fg] = True
    masks = np.zeros((n, height, width), dtype=bool)
    todo = np.arange(n)
    noise = np.zeros((0, height, width), np.float32)
    for _ in range(max(1, max_tries)):
        noise = perlin_noise(rng, todo.size, height, width, scale_range)
        masks[todo] = (noise > threshold) & foreground[todo]
        found = masks[todo].reshape(todo.size, -1).any(axis=1)
        todo, noise = todo[~found], noise[~found]
        if todo.size == 0:
            return masks
    for row, values in zip(todo, noise, strict=True):
        inside = values[foreground[row]]
        cut = np.quantile(inside, 0.98)
        masks[row] = (values >= cut) & foreground[row]
    return masks
