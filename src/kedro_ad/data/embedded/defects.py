"""Surface defects: painters return alpha layers composited on the clean surface."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from .noise import (
    F32,
    TAU,
    Array,
    bezier,
    lattice_noise,
    pixel_grid,
    polyline_alpha,
    px_window,
    smoothstep,
    star_radius,
)

Layer = tuple[tuple[slice, slice], Array, Array]


@dataclass
class Ctx:
    """What a defect painter needs to know about the clean sample."""

    rng: np.random.Generator
    surface: Array
    support: Array
    size: int
    light_az: float
    style: dict[str, Any]
    _dist: Array | None = None

    @property
    def k(self) -> float:
        """Pixel scale relative to a 256 px image."""
        return self.size / 256.0

    def pick(self, margin: float) -> tuple[float, float]:
        """A random point (x, y) at least ``margin`` px inside the support."""
        if self._dist is None:
            inside = np.pad(self.support > 0.5, 1)
            self._dist = ndimage.distance_transform_edt(inside)[1:-1, 1:-1]
        ok = self._dist >= margin
        if not ok.any():
            ok = self._dist >= 0.5 * self._dist.max()
        idx = np.flatnonzero(ok)
        y, x = divmod(int(idx[self.rng.integers(idx.size)]), self.size)
        return x + float(self.rng.uniform()), y + float(self.rng.uniform())

    def heading(self, p0: Array, length: float) -> float:
        """A direction from ``p0`` whose end point ``length`` px away is supported.

        Tries a few random directions (lines should mostly stay on the part / in
        the frame); falls back to the last one tried.
        """
        th = 0.0
        for _ in range(8):
            th = float(self.rng.uniform(0, TAU))
            x = int(p0[0] + length * math.cos(th))
            y = int(p0[1] + length * math.sin(th))
            if 0 <= x < self.size and 0 <= y < self.size and self.support[y, x] > 0.5:
                break
        return th


def _line_layers(
    ctx: Ctx, pts: Array, widths: Array, alpha: float, colour: Callable[[Array], Array]
) -> list[Layer]:
    """One polyline layer with colour computed from the clean surface under it."""
    res = polyline_alpha(ctx.size, pts, widths)
    if res is None:
        return []
    win, a = res
    return [(win, a * F32(alpha), colour(ctx.surface[win]))]


def _shadow_offset(ctx: Ctx, dist: float) -> Array:
    """Pixel offset pointing away from the light (where a raised thing casts shade)."""
    return -dist * np.array([math.cos(ctx.light_az), math.sin(ctx.light_az)])


def _defect_scratch(ctx: Ctx) -> list[Layer]:
    """Thin curved scratch: bright (or tinted) tapered line with a dark groove edge."""
    rng, k, size = ctx.rng, ctx.k, ctx.size
    gain, offset, opacity, wscale = ctx.style.get("scratch", (1.3, 0.15, 0.9, 1.0))
    length = rng.uniform(0.22, 0.5) * size
    p0 = np.array(ctx.pick(3 * k))
    th = ctx.heading(p0, length)
    d = np.array([math.cos(th), math.sin(th)])
    nrm = np.array([-d[1], d[0]])
    bend = rng.uniform(-0.25, 0.25) * length
    p1 = p0 + d * length / 3 + nrm * bend
    p2 = p0 + d * 2 * length / 3 + nrm * bend * rng.uniform(0.2, 1.3)
    p3 = p0 + d * length
    n = 40
    pts = bezier(p0, p1, p2, p3, n)
    pts += nrm * np.cumsum(rng.normal(0, 0.12 * k, n))[:, None]
    t = np.linspace(0, 1, n)
    w = max(1.0, rng.uniform(1.1, 2.2) * k * wscale)
    widths = w * (0.35 + 0.65 * np.sin(np.pi * t) ** 0.4)
    layers = _line_layers(
        ctx, pts + _shadow_offset(ctx, 0.8 * w), widths * 1.4, 0.45, lambda s: s * 0.55
    )
    layers += _line_layers(
        ctx, pts, widths, opacity, lambda s: np.clip(s * gain + offset, 0, 1.3)
    )
    return layers


def _defect_crack(ctx: Ctx) -> list[Layer]:
    """Branching jagged crack: dark tapered core with a shaded halo."""
    rng, k, size = ctx.rng, ctx.k, ctx.size
    dark = ctx.style.get("crack_dark", 0.15)
    length = rng.uniform(0.18, 0.4) * size
    step = max(1.5, 3.0 * k)
    n = max(8, int(length / step))
    th = rng.uniform(0, TAU)
    heading = th + np.cumsum(rng.normal(0, 0.18, n))
    ang = heading + rng.normal(0, 0.5, n)
    p0 = np.array(ctx.pick(4 * k))
    steps = step * np.stack([np.cos(ang), np.sin(ang)], 1)
    main = p0 + np.concatenate([[[0.0, 0.0]], np.cumsum(steps, 0)])
    t = np.linspace(0, 1, n + 1)
    w0 = max(1.2, rng.uniform(1.5, 2.8) * k)
    lines = [(main, w0 * (0.3 + 0.7 * np.sin(np.pi * np.clip(t * 1.1, 0, 1)) ** 0.6))]
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(n // 5, max(n // 5 + 1, 4 * n // 5)))
        m = max(4, int(n * rng.uniform(0.25, 0.55)))
        bh = heading[i] + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1)
        bang = bh + np.cumsum(rng.normal(0, 0.15, m)) + rng.normal(0, 0.5, m)
        bsteps = step * np.stack([np.cos(bang), np.sin(bang)], 1)
        bpts = main[i] + np.concatenate([[[0.0, 0.0]], np.cumsum(bsteps, 0)])
        bw = lines[0][1][i] * 0.75 * np.linspace(1, 0.35, m + 1)
        lines.append((bpts, bw))
    layers: list[Layer] = []
    for pts, widths in lines:
        layers += _line_layers(ctx, pts, widths * 1.8 + 1.0, 0.4, lambda s: s * 0.7)
    for pts, widths in lines:
        layers += _line_layers(ctx, pts, widths, 0.95, lambda s: s * dark)
    return layers


def _defect_hole(ctx: Ctx) -> list[Layer]:
    """Dark circular pit with an irregular edge, lit inner wall and raised rim."""
    rng, size = ctx.rng, ctx.size
    st = ctx.style.get("hole", {})
    r = max(2.5, rng.uniform(0.035, 0.07) * size)
    cx, cy = ctx.pick(1.5 * r)
    ext = 1.6 * r + 2
    win = px_window(size, cx - ext, cy - ext, cx + ext, cy + ext)
    if win is None:
        return []
    gy, gx = pixel_grid(size)
    dx, dy = gx[win] - F32(cx), gy[win] - F32(cy)
    d = np.hypot(dx, dy)
    phi = np.arctan2(dy, dx)
    rad = r * star_radius(rng, phi, st.get("jag", 0.12), st.get("kmax", 6))
    if st.get("fray", 0) > 0:
        rad = rad * (1 + st["fray"] * np.cos(23 * phi + rng.uniform(0, TAU)))
    rho = d / rad
    inner = np.clip(rad - d + 0.5, 0, 1)
    facing = np.cos(phi - F32(ctx.light_az))
    lit = np.clip(-facing, 0, 1) * smoothstep(0.45, 1.0, rho)
    surf = ctx.surface[win]
    if "inside" in st:
        in_col = np.asarray(st["inside"], F32) * (0.6 + 0.8 * lit)[..., None]
        in_col = in_col + np.zeros_like(surf)
    else:
        in_col = surf * (0.1 + 0.4 * lit)[..., None]
    rim_w = st.get("rim", 0.12)
    rim_a = np.exp(-(((rho - 1.0 - rim_w * 0.6) / rim_w) ** 2)) * 0.85
    rim_col = surf * (1 + 0.45 * facing)[..., None]
    return [(win, rim_a, rim_col), (win, inner, in_col)]


def _defect_stain(ctx: Ctx) -> list[Layer]:
    """Soft-edged irregular discoloration (oil, rust, dye or coffee-ring stain)."""
    rng, size = ctx.rng, ctx.size
    tints = ctx.style.get("stain", [(0.72, 0.58, 0.42)])
    tint = np.asarray(tints[int(rng.integers(len(tints)))], F32)
    r = rng.uniform(0.05, 0.11) * size
    cx, cy = ctx.pick(0.8 * r)
    aspect = rng.uniform(0.55, 1.0)
    rot = rng.uniform(0, TAU)
    ext = 1.35 * r + 2
    win = px_window(size, cx - ext, cy - ext, cx + ext, cy + ext)
    if win is None:
        return []
    gy, gx = pixel_grid(size)
    dx, dy = gx[win] - F32(cx), gy[win] - F32(cy)
    c, s = F32(math.cos(rot)), F32(math.sin(rot))
    u, v = c * dx + s * dy, (-s * dx + c * dy) / F32(aspect)
    d = np.hypot(u, v)
    phi = np.arctan2(v, u)
    rad = r * star_radius(rng, phi, 0.22, 7)
    edge = rng.uniform(0.12, 0.3) * r
    shape = smoothstep(-edge, edge * 0.4, rad - d)
    ring = 1 + rng.uniform(0, 0.5) * np.exp(-(((d - rad) / (0.25 * r)) ** 2))
    mottle = 1 + 0.15 * lattice_noise(rng, u, v, 0.3 * r, 0.3 * r)
    alpha = np.clip(shape * ring * mottle * rng.uniform(0.55, 0.85), 0, 1)
    return [(win, alpha, ctx.surface[win] * tint)]


def _defect_contamination(ctx: Ctx) -> list[Layer]:
    """Foreign matter: a hair / thread lying on the surface, or a particle cluster."""
    rng, k, size = ctx.rng, ctx.k, ctx.size
    kinds = ctx.style.get("contamination", ("fibre", "particles"))
    kind = kinds[int(rng.integers(len(kinds)))]
    palette = ctx.style.get(
        "particles", [(0.08, 0.07, 0.06), (0.35, 0.30, 0.25), (0.7, 0.7, 0.72)]
    )
    layers: list[Layer] = []
    if kind == "fibre":
        fibres = ctx.style.get(
            "fibres", [(0.08, 0.06, 0.05), (0.75, 0.15, 0.12), (0.15, 0.2, 0.65)]
        )
        col = np.asarray(fibres[int(rng.integers(len(fibres)))], F32)
        length = rng.uniform(0.3, 0.55) * size
        p0 = np.array(ctx.pick(2 * k))
        th = ctx.heading(p0, length)
        d = np.array([math.cos(th), math.sin(th)])
        nrm = np.array([-d[1], d[0]])
        p1 = p0 + d * length / 3 + nrm * rng.uniform(-0.4, 0.4) * length
        p2 = p0 + d * 2 * length / 3 + nrm * rng.uniform(-0.4, 0.4) * length
        pts = bezier(p0, p1, p2, p0 + d * length, 64)
        pts += nrm * (np.sin(np.linspace(0, rng.uniform(6, 20), 64)) * 0.6 * k)[:, None]
        w = max(1.0, rng.uniform(1.0, 1.8) * k)
        widths = np.full(64, w)
        widths[:4] *= np.linspace(0.5, 1, 4)
        widths[-4:] *= np.linspace(1, 0.5, 4)
        layers += _line_layers(
            ctx,
            pts + _shadow_offset(ctx, 1.2 * w),
            widths * 1.5,
            0.3,
            lambda s: s * 0.6,
        )
        layers += _line_layers(ctx, pts, widths, 0.93, lambda s: col + s * 0.0)
        return layers
    cx, cy = ctx.pick(6 * k)
    spread = rng.uniform(0.02, 0.045) * size
    n = int(rng.integers(6, 15))
    gy, gx = pixel_grid(size)
    for _ in range(n):
        x = cx + rng.normal(0, spread)
        y = cy + rng.normal(0, spread)
        r = max(0.9, rng.uniform(1.0, 3.6) * k)
        win = px_window(
            size, x - r * 1.6 - 3, y - r * 1.6 - 3, x + r * 1.6 + 3, y + r * 1.6 + 3
        )
        if win is None:
            continue
        dx, dy = gx[win] - F32(x), gy[win] - F32(y)
        d = np.hypot(dx, dy)
        phi = np.arctan2(dy, dx)
        rad = r * star_radius(rng, phi, 0.35, 4)
        a = np.clip(rad - d + 0.5, 0, 1)
        col = np.asarray(palette[int(rng.integers(len(palette)))], F32)
        facing = np.cos(phi - F32(ctx.light_az)) * np.clip(d / rad, 0, 1)
        shade = (1 + 0.35 * facing)[..., None] * rng.uniform(0.85, 1.1)
        sdx, sdy = _shadow_offset(ctx, 0.6 * r)
        ds = np.hypot(dx - F32(sdx), dy - F32(sdy))
        sh = np.clip(rad * 1.1 - ds + 0.5, 0, 1) * 0.4
        layers.append((win, sh, ctx.surface[win] * 0.5))
        layers.append((win, a, col * shade + np.zeros_like(ctx.surface[win])))
    return layers


OVERLAYS: dict[str, Callable[[Ctx], list[Layer]]] = {
    "scratch": _defect_scratch,
    "crack": _defect_crack,
    "hole": _defect_hole,
    "stain": _defect_stain,
    "contamination": _defect_contamination,
}


def composite(surface: Array, support: Array, layers: list[Layer]) -> Array:
    """Blend defect layers onto a copy of the surface, clipped to the support."""
    out = surface.copy()
    for win, alpha, colour in layers:
        a = (alpha * support[win])[..., None]
        out[win] = out[win] * (1 - a) + colour * a
    return out
