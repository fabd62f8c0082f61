"""The object canvas: pose, signed-distance shapes, height-map shading."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .noise import F32, Array, coverage, pixel_grid, px_window, shift


@dataclass(frozen=True)
class Pose:
    """Similarity transform from object-local units to image pixels."""

    cx: float
    cy: float
    angle: float
    scale: float

    def to_local(self, x: Array, y: Array) -> tuple[Array, Array]:
        """Image pixel coordinates -> object-local coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = x - F32(self.cx), y - F32(self.cy)
        inv = F32(1.0 / self.scale)
        return (c * dx + s * dy) * inv, (-s * dx + c * dy) * inv

    def to_image(self, lx: Array, ly: Array) -> tuple[Array, Array]:
        """Object-local coordinates -> image pixel coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return (
            self.cx + self.scale * (c * lx - s * ly),
            self.cy + self.scale * (s * lx + c * ly),
        )


class Canvas:
    """Layered render target for one object scene (albedo, height, gloss, coverage).

    Shapes are painted in object-local coordinates as anti-aliased signed distance
    fields restricted to the image window that their local bounding box maps to.
    """

    def __init__(self, size: int, pose: Pose, background: Array) -> None:
        self.size = size
        self.pose = pose
        y, x = pixel_grid(size)
        self.lx, self.ly = pose.to_local(x, y)
        self.px = 1.0 / pose.scale
        self.albedo = background.astype(F32, copy=True)
        self.height = np.zeros((size, size), F32)
        self.gloss = np.zeros((size, size), F32)
        self.cover = np.zeros((size, size), F32)

    def window(
        self, x0: float, y0: float, x1: float, y1: float
    ) -> tuple[slice, slice] | None:
        """Image window covering the local box ``[x0, x1] x [y0, y1]``."""
        ix, iy = self.pose.to_image(
            np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1])
        )
        return px_window(
            self.size, ix.min() - 2, iy.min() - 2, ix.max() + 2, iy.max() + 2
        )

    def paint(
        self,
        win: tuple[slice, slice],
        cov: Array,
        color: Array | Sequence[float],
        *,
        height: Array | float | None = None,
        gloss: Array | float | None = None,
        solid: bool = True,
    ) -> None:
        """Blend ``color`` (and optionally height / gloss) into ``win`` by ``cov``."""
        a = cov[..., None]
        col = np.asarray(color, F32)
        self.albedo[win] = self.albedo[win] * (1 - a) + col * a
        if height is not None:
            self.height[win] = self.height[win] * (1 - cov) + height * cov
        if gloss is not None:
            self.gloss[win] = self.gloss[win] * (1 - cov) + gloss * cov
        if solid:
            self.cover[win] = np.maximum(self.cover[win], cov)

    def rect(
        self,
        cx: float,
        cy: float,
        hw: float,
        hh: float,
        rot: float = 0.0,
        radius: float = 0.0,
        win: tuple[slice, slice] | None = None,
    ) -> tuple[tuple[slice, slice], Array] | None:
        """Coverage of a (rotated, rounded) rectangle in local units (in ``win``)."""
        if win is None:
            r = math.hypot(hw, hh) + 2 * self.px
            win = self.window(cx - r, cy - r, cx + r, cy + r)
        if win is None:
            return None
        lx, ly = self.lx[win] - F32(cx), self.ly[win] - F32(cy)
        c, s = math.cos(rot), math.sin(rot)
        u, v = np.abs(c * lx + s * ly), np.abs(-s * lx + c * ly)
        qx, qy = u - (hw - radius), v - (hh - radius)
        d = (
            np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
            + np.minimum(np.maximum(qx, qy), 0)
            - radius
        )
        return win, coverage(d, self.px)

    def circle(
        self, cx: float, cy: float, r: float
    ) -> tuple[tuple[slice, slice], Array, Array] | None:
        """Coverage of a disc in local units, plus the distance to its centre."""
        win = self.window(cx - r, cy - r, cx + r, cy + r)
        if win is None:
            return None
        d = np.hypot(self.lx[win] - F32(cx), self.ly[win] - F32(cy))
        return win, coverage(d - r, self.px), d

    def strokes(
        self, segs: list[tuple[float, float, float, float]], width: float
    ) -> tuple[tuple[slice, slice], Array] | None:
        """Coverage of round-capped line segments of ``width`` in local units."""
        arr = np.asarray(segs, np.float64)
        m = width
        win = self.window(
            min(arr[:, 0].min(), arr[:, 2].min()) - m,
            min(arr[:, 1].min(), arr[:, 3].min()) - m,
            max(arr[:, 0].max(), arr[:, 2].max()) + m,
            max(arr[:, 1].max(), arr[:, 3].max()) + m,
        )
        if win is None:
            return None
        lx, ly = self.lx[win], self.ly[win]
        dmin = np.full(lx.shape, np.inf, F32)
        for ax, ay, bx, by in segs:
            dx, dy = bx - ax, by - ay
            l2 = max(dx * dx + dy * dy, 1e-12)
            t = np.clip(((lx - ax) * dx + (ly - ay) * dy) / F32(l2), 0.0, 1.0)
            dmin = np.minimum(dmin, np.hypot(lx - ax - t * dx, ly - ay - t * dy))
        return win, coverage(dmin - width / 2, self.px)

    def shade(
        self, light_az: float, light_el: float, relief: float, shadow: float = 0.5
    ) -> Array:
        """Lambert + Blinn shading of the height map, with a soft cast shadow.

        ``relief`` is the class's nominal height range in pixels; it sets the cast
        shadow length and must not depend on the scene (a missing part would
        otherwise move every other shadow and leak into the defect mask).
        """
        h = ndimage.gaussian_filter(self.height, 0.7)
        gy, gx = np.gradient(h)
        nz = 1.0 / np.sqrt(1.0 + gx * gx + gy * gy)
        nx, ny = -gx * nz, -gy * nz
        lx = math.cos(light_az) * math.cos(light_el)
        ly = math.sin(light_az) * math.cos(light_el)
        lz = math.sin(light_el)
        lam = np.clip(nx * lx + ny * ly + nz * lz, 0.0, None)
        amb = 0.3
        diffuse = amb + (1 - amb) * lam / lz
        hn = math.sqrt(lx * lx + ly * ly + (lz + 1) ** 2)
        ndh = np.clip((nx * lx + ny * ly + nz * (lz + 1)) / hn, 0.0, 1.0)
        spec = self.gloss * ndh**40
        # Cast shadow: a pixel is shadowed when the surface towards the light is higher.
        tan_el = math.tan(light_el)
        occ = np.zeros_like(h)
        hmax = float(relief)
        if hmax > 0.5:
            for frac in (0.35, 0.7, 1.0):
                dist = frac * hmax / tan_el
                dy = int(round(math.sin(light_az) * dist))
                dx = int(round(math.cos(light_az) * dist))
                occ = np.maximum(occ, shift(h, dy, dx) - h - frac * hmax * 0.25)
            occ = ndimage.gaussian_filter(np.clip(occ / (0.3 * hmax), 0, 1), 1.5)
        img = self.albedo * (diffuse * (1 - shadow * occ))[..., None] + spec[..., None]
        return img.astype(F32)
