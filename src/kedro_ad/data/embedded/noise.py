"""Numeric helpers of the embedded dataset: pixel grids, smooth noise, curves."""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage

Array = np.ndarray
F32 = np.float32
TAU = 2.0 * math.pi


@functools.lru_cache(maxsize=8)
def pixel_grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates ``(y, x)`` of a square image (cached, read-only)."""
    c = np.arange(size, dtype=F32) + F32(0.5)
    y, x = np.meshgrid(c, c, indexing="ij")
    y.setflags(write=False)
    x.setflags(write=False)
    return y, x


def smoothstep(e0: float, e1: float, x: Array) -> Array:
    """Hermite step from 0 at ``e0`` to 1 at ``e1`` (soft edges and profiles)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def coverage(d: Array, px: float) -> Array:
    """Anti-aliased coverage of the region ``d < 0`` of a signed distance field."""
    return np.clip(0.5 - d / px, 0.0, 1.0)


def lattice_noise(
    rng: np.random.Generator, a: Array, b: Array, sa: float, sb: float, order: int = 3
) -> Array:
    """Smooth value noise at coordinates ``(a, b)`` with feature sizes ``(sa, sb)``.

    Random values on a lattice are interpolated with a cubic spline (``order=1``:
    linearly, 3x cheaper, fine for streaks a few pixels wide); with rotated
    coordinates and unequal feature sizes this gives the anisotropic detail of wood
    grain, brushing marks and thread slubs (value noise, not Perlin noise).
    """
    ca = a / F32(sa)
    cb = b / F32(sb)
    a0 = math.floor(float(ca.min())) - 2
    b0 = math.floor(float(cb.min())) - 2
    na = int(math.ceil(float(ca.max()))) - a0 + 3
    nb = int(math.ceil(float(cb.max()))) - b0 + 3
    grid = rng.standard_normal((na, nb)).astype(F32)
    coords = np.stack([(ca - a0).ravel(), (cb - b0).ravel()])
    out = ndimage.map_coordinates(grid, coords, order=order, mode="nearest", output=F32)
    return out.reshape(a.shape)


def _bspline_matrix(size: int, cell: float, n: int) -> Array:
    """Cubic B-spline weights ``(size, n)`` mapping lattice values to pixel centres."""
    u = (np.arange(size, dtype=np.float64) + 0.5) / cell + 1.5
    j = np.arange(n, dtype=np.float64)
    t = np.abs(u[:, None] - j[None, :])
    w = np.where(t < 1, 2 / 3 - t**2 + t**3 / 2, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))
    return w.astype(F32)


def smooth_field(
    rng: np.random.Generator, size: int, cell: float, cell_x: float | None = None
) -> Array:
    """Axis-aligned smooth value noise with unit std (feature size ``cell`` px).

    Separable cubic B-spline upsampling of a random lattice (two small matrix
    products): the cheap large-scale mottling of belts, trays, cloth and wood.
    ``cell_x`` gives a different feature size along x (anisotropic fields).
    """
    cx = cell if cell_x is None else cell_x
    ny, nx = int(math.ceil(size / cell)) + 4, int(math.ceil(size / cx)) + 4
    grid = rng.standard_normal((ny, nx)).astype(F32)
    out = _bspline_matrix(size, cell, ny) @ grid @ _bspline_matrix(size, cx, nx).T
    return out / F32(max(float(out.std()), 1e-6))


def noise1d(rng: np.random.Generator, t: Array, scale: float) -> Array:
    """Linearly interpolated 1-D value noise of ``t`` (rings, streaks, belt ribs)."""
    u = t / F32(scale)
    lo = math.floor(float(u.min())) - 1
    n = int(math.ceil(float(u.max()))) - lo + 2
    vals = rng.standard_normal(n).astype(F32)
    return np.interp(u - lo, np.arange(n, dtype=F32), vals).astype(F32)


def fine_noise(rng: np.random.Generator, size: int, sigma: float) -> Array:
    """Isotropic fine-grain noise (blurred white noise) with unit standard deviation."""
    n = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(F32), sigma)
    return n / F32(max(float(n.std()), 1e-6))


def shift(a: Array, dy: int, dx: int) -> Array:
    """``b[i, j] = a[i + dy, j + dx]`` with edge clamping (cast-shadow lookups)."""
    h, w = a.shape
    p = max(abs(dy), abs(dx))
    if p == 0:
        return a
    ap = np.pad(a, p, mode="edge")
    return ap[p + dy : p + dy + h, p + dx : p + dx + w]


def px_window(
    size: int, x0: float, y0: float, x1: float, y1: float
) -> tuple[slice, slice] | None:
    """Image slices covering the pixel-space box ``[x0, x1] x [y0, y1]`` (or None)."""
    j0 = max(int(math.floor(x0)), 0)
    j1 = min(int(math.ceil(x1)) + 1, size)
    i0 = max(int(math.floor(y0)), 0)
    i1 = min(int(math.ceil(y1)) + 1, size)
    if i0 >= i1 or j0 >= j1:
        return None
    return slice(i0, i1), slice(j0, j1)


def bezier(p0: Array, p1: Array, p2: Array, p3: Array, n: int) -> Array:
    """``n`` points on the cubic Bezier curve ``p0..p3`` (scratches, fibres)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (
        (1 - t) ** 3 * p0
        + 3 * (1 - t) ** 2 * t * p1
        + 3 * (1 - t) * t**2 * p2
        + t**3 * p3
    )


def polyline_alpha(
    size: int, pts: Array, widths: Array
) -> tuple[tuple[slice, slice], Array] | None:
    """Anti-aliased coverage of a tapered polyline in pixel coordinates.

    ``pts`` is ``(n, 2)`` as ``(x, y)``; ``widths`` the full width at each point.
    Returns the window and its coverage, or None when the line misses the image.
    """
    pad = float(widths.max()) / 2.0 + 1.5
    win = px_window(
        size,
        float(pts[:, 0].min()) - pad,
        float(pts[:, 1].min()) - pad,
        float(pts[:, 0].max()) + pad,
        float(pts[:, 1].max()) + pad,
    )
    if win is None:
        return None
    gy, gx = pixel_grid(size)
    yy = gy[win][..., None]
    xx = gx[win][..., None]
    alpha = np.zeros(yy.shape[:2], F32)
    pts = pts.astype(F32)
    widths = widths.astype(F32)
    for s in range(0, len(pts) - 1, 16):
        a = pts[s : s + 17]
        w = widths[s : s + 17]
        ax, ay = a[:-1, 0], a[:-1, 1]
        dx, dy = a[1:, 0] - ax, a[1:, 1] - ay
        l2 = dx * dx + dy * dy + F32(1e-9)
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / l2, 0.0, 1.0)
        dist = np.hypot(xx - ax - t * dx, yy - ay - t * dy)
        wt = w[:-1] + t * (w[1:] - w[:-1])
        alpha = np.maximum(alpha, np.clip(wt / 2 + 0.5 - dist, 0.0, 1.0).max(-1))
    return win, alpha


def star_radius(
    rng: np.random.Generator, phi: Array, amp: float, kmax: int = 6
) -> Array:
    """Relative radius ``1 + sum_k a_k cos(k phi + p_k)`` of an irregular shape."""
    r = np.ones_like(phi)
    for k in range(2, kmax + 1):
        r = r + F32(rng.uniform(0, amp) / k**0.7) * np.cos(
            k * phi + F32(rng.uniform(0, TAU))
        )
    return r
