"""Scenes of the embedded classes: ``sample_<class>`` draws the parameters of one
scene from the scene random stream; ``draw_<class>`` renders them
(deterministically) into a float surface in [0, ~1.2] and the support where
defects may be placed; ``mutate_<class>`` changes a part (part defects)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .canvas import Canvas, Pose
from .font import text_segments
from .noise import (
    F32,
    TAU,
    Array,
    coverage,
    fine_noise,
    lattice_noise,
    noise1d,
    pixel_grid,
    smooth_field,
    smoothstep,
)


def _rotated(size: int, angle: float) -> tuple[Array, Array]:
    """Pixel coordinates rotated by ``angle``: ``a`` along, ``b`` across it."""
    y, x = pixel_grid(size)
    c, s = F32(math.cos(angle)), F32(math.sin(angle))
    return x * c + y * s, -x * s + y * c


def _ones(size: int) -> Array:
    """Full support (textures: a defect may go anywhere)."""
    return np.ones((size, size), F32)


def sample_fabric(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Pose and dye jitter of a denim-like 2/1 twill weave."""
    k = size / 256
    return {
        "angle": math.radians(rng.uniform(-4, 4)),
        "period": max(3.0, rng.uniform(8.0, 9.5) * k),
        "phase": rng.uniform(0, 3, 2).tolist(),
        "warp": (np.array([0.20, 0.29, 0.48]) * rng.uniform(0.92, 1.08)).tolist(),
        "weft": (np.array([0.72, 0.71, 0.66]) * rng.uniform(0.95, 1.05)).tolist(),
        "noise_seed": int(rng.integers(2**62)),
    }


def draw_fabric(p: dict[str, Any], size: int) -> tuple[Array, Array]:
    """Woven twill: rounded warp/weft threads, per-thread dye, slubs and fuzz."""
    rng = np.random.default_rng(p["noise_seed"])
    ra, rb = _rotated(size, p["angle"])
    a = ra / F32(p["period"]) + F32(p["phase"][0])
    b = rb / F32(p["period"]) + F32(p["phase"][1])
    i, j = np.floor(a), np.floor(b)
    fa, fb = a - i, b - j
    m = np.mod(i - j, 4)
    warp_top = m < 3  # 3/1 twill: each warp float passes over three weft picks
    s_float = np.clip((2 - m + fb) / 3, 0, 1)  # position along the warp float
    prof_w = np.sin(np.pi * fa) ** 0.6 * (0.5 + 0.5 * np.sin(np.pi * s_float) ** 0.5)
    prof_f = np.sin(np.pi * fb) ** 0.6 * (0.45 + 0.55 * np.sin(np.pi * fa) ** 0.5)
    n = 512
    tv_w = (1 + 0.08 * rng.standard_normal(n)).astype(F32)
    tv_f = (1 + 0.05 * rng.standard_normal(n)).astype(F32)
    var_w = tv_w[np.mod(i, n).astype(np.int64)]
    var_f = tv_f[np.mod(j, n).astype(np.int64)]
    slub_w = lattice_noise(rng, a, b, 0.5, 3.0, order=1)
    slub_f = lattice_noise(rng, a, b, 3.0, 0.5, order=1)
    twist_w = np.sin(TAU * (1.6 * b + 0.9 * fa))
    twist_f = np.sin(TAU * (1.6 * a - 0.9 * fb))
    warp = np.asarray(p["warp"], F32)
    weft = np.asarray(p["weft"], F32)
    lw = (0.2 + 0.8 * prof_w) * var_w * (1 + 0.18 * slub_w + 0.07 * twist_w)
    lf = (0.2 + 0.8 * prof_f) * var_f * (1 + 0.06 * slub_f + 0.05 * twist_f)
    lw, lf = lw[..., None] * warp, lf[..., None] * weft
    img = np.where(warp_top[..., None], lw, lf)
    fuzz = fine_noise(rng, size, 0.6) * 0.04
    mottle = smooth_field(rng, size, 48 * size / 256) * 0.035
    return img * (1 + fuzz + mottle)[..., None], _ones(size)


def sample_wood(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Board orientation, ring spacing and tone of a planed wood surface."""
    k = size / 256
    tone = rng.uniform(0.93, 1.07)
    return {
        "angle": math.radians(rng.uniform(-7, 7)),
        "spacing": rng.uniform(15, 24) * k,
        "offset": rng.uniform(0, 1000),
        "light": (np.array([0.82, 0.62, 0.42]) * tone).tolist(),
        "dark": (np.array([0.56, 0.35, 0.19]) * tone).tolist(),
        "noise_seed": int(rng.integers(2**62)),
    }


def draw_wood(p: dict[str, Any], size: int) -> tuple[Array, Array]:
    """Flat-sawn wood: distorted growth rings, fine pores, streaks along the grain."""
    rng = np.random.default_rng(p["noise_seed"])
    k = size / 256
    a, b = _rotated(size, p["angle"])
    # grain runs along x within +-7 degrees: axis-aligned anisotropic fields suffice
    warp = smooth_field(rng, size, 45 * k, 110 * k) * 7 * k
    warp += smooth_field(rng, size, 14 * k, 35 * k) * 1.6 * k
    t = (b + warp + F32(p["offset"])) / F32(p["spacing"])
    t += smooth_field(rng, size, 90 * k, 260 * k) * 0.45  # uneven ring spacing
    f = t - np.floor(t)
    # earlywood brightens slowly into a narrow dark latewood band, then drops
    late = 0.35 * f**2 + 0.65 * smoothstep(0.72, 0.93, f)
    late = late * (1 - smoothstep(0.95, 1.0, f))
    light = np.asarray(p["light"], F32)
    dark = np.asarray(p["dark"], F32)
    img = light + (dark - light) * (0.9 * late)[..., None]
    pores = lattice_noise(rng, a, b, 14 * k, 0.8 * k, order=1)
    streak = lattice_noise(rng, a, b, 70 * k, 3.0 * k, order=1)
    tone = 1 - 0.18 * np.clip(pores - 0.8, 0, None) + 0.035 * streak
    tone += fine_noise(rng, size, 0.5) * 0.015
    tone += smooth_field(rng, size, 120 * k) * 0.03
    return img * tone[..., None], _ones(size)


def sample_metal(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Brushing direction, sheen band and grey level of a brushed steel sheet."""
    return {
        "angle": math.radians(rng.uniform(-5, 5)),
        "base": rng.uniform(0.46, 0.56),
        "sheen_pos": rng.uniform(0.25, 0.75),
        "sheen_width": rng.uniform(0.18, 0.35),
        "sheen_amp": rng.uniform(0.12, 0.25),
        "noise_seed": int(rng.integers(2**62)),
    }


def draw_metal(p: dict[str, Any], size: int) -> tuple[Array, Array]:
    """Brushed metal: fine and coarse brushing streaks plus an anisotropic sheen."""
    rng = np.random.default_rng(p["noise_seed"])
    k = size / 256
    a, b = _rotated(size, p["angle"])
    s1 = lattice_noise(rng, a, b, 90 * k, max(0.9, 0.9 * k), order=1)
    s2 = lattice_noise(rng, a, b, 45 * k, 2.5 * k, order=1)
    s3 = lattice_noise(rng, a, b, 200 * k, 12 * k)
    s0 = noise1d(rng, b, max(0.8, 0.8 * k)) * (0.7 + 0.3 * s3)  # long fine lines
    u = a / F32(size)
    sheen = np.exp(-(((u - F32(p["sheen_pos"])) / F32(p["sheen_width"])) ** 2))
    tone = p["base"] * (1 + 0.035 * s0 + 0.035 * s1 + 0.03 * s2 + 0.03 * s3)
    tone = tone + p["sheen_amp"] * sheen * (1 + 0.5 * s1)
    tone += fine_noise(rng, size, 0.5) * 0.01
    img = tone[..., None] * np.array([0.98, 1.0, 1.03], F32)
    return img, _ones(size)


def _belt(rng: np.random.Generator, size: int, base: Sequence[float]) -> Array:
    """Dark rubber conveyor belt: fine grain, longitudinal ribs and mottling."""
    k = size / 256
    y, x = pixel_grid(size)
    grain = fine_noise(rng, size, 0.8) * 0.035
    ribs = noise1d(rng, y, 2.5 * k) * 0.025 + noise1d(rng, y, 9 * k) * 0.02
    mottle = smooth_field(rng, size, 60 * k) * 0.05
    tone = 1 + grain + ribs + mottle
    return tone[..., None] * np.asarray(base, F32)


def _tray(rng: np.random.Generator, size: int, base: Sequence[float]) -> Array:
    """Light matte inspection tray: powder-coat grain and gentle mottling."""
    k = size / 256
    grain = fine_noise(rng, size, 0.7) * 0.02
    mottle = smooth_field(rng, size, 40 * k) * 0.02
    return (1 + grain + mottle)[..., None] * np.asarray(base, F32)


def _object_pose(
    rng: np.random.Generator,
    size: int,
    scale: float,
    angle_sd: float,
    full_turn: bool = False,
) -> dict[str, float]:
    """Pose jitter: translation (~3 % of the frame), rotation and +-4 % scale."""
    angle = rng.uniform(0, TAU) if full_turn else rng.normal(0, angle_sd)
    return {
        "cx": size / 2 + float(np.clip(rng.normal(0, 0.03), -0.06, 0.06)) * size,
        "cy": size / 2 + float(np.clip(rng.normal(0, 0.03), -0.06, 0.06)) * size,
        "angle": float(angle),
        "scale": scale * size * rng.uniform(0.96, 1.04),
    }


def _pose(p: dict[str, Any]) -> Pose:
    """The pose stored in a scene's parameters."""
    return Pose(p["cx"], p["cy"], p["angle"], p["scale"])


# ---- washer (flange washer with four bolt holes, on a conveyor belt) ---------------

_WASHER_R_IN, _WASHER_R_BOLT, _WASHER_R_HOLE = 0.40, 0.70, 0.085


def sample_washer(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Pose, steel tint and hole layout of a turned flange washer."""
    return {
        **_object_pose(rng, size, 0.36, 0.0, full_turn=True),
        "holes": [True, True, True, True],
        "hole_offsets": [[0.0, 0.0]] * 4,
        "tint": (np.array([0.62, 0.63, 0.65]) * rng.uniform(0.93, 1.07)).tolist(),
        "noise_seed": int(rng.integers(2**62)),
    }


def draw_washer(p: dict[str, Any], size: int) -> tuple[Array, Array]:
    """Turned steel washer: chamfered edges, lathe rings, radial sheen, bolt holes."""
    rng = np.random.default_rng(p["noise_seed"])
    bg = _belt(rng, size, (0.15, 0.155, 0.16))
    pose = _pose(p)
    cv = Canvas(size, pose, bg)
    lx, ly, px = cv.lx, cv.ly, cv.px
    r = np.hypot(lx, ly)
    body = coverage(r - 1.0, px) * coverage(_WASHER_R_IN - r, px)
    c = 0.07
    prof = smoothstep(0, c, 1.0 - r) * smoothstep(0, c, r - _WASHER_R_IN)
    for n in range(4):
        if not p["holes"][n]:
            continue
        th = n * math.pi / 2 + math.pi / 4
        hx = _WASHER_R_BOLT * math.cos(th) + p["hole_offsets"][n][0]
        hy = _WASHER_R_BOLT * math.sin(th) + p["hole_offsets"][n][1]
        dh = np.hypot(lx - F32(hx), ly - F32(hy))
        body = body * coverage(_WASHER_R_HOLE - dh, px)
        prof = prof * smoothstep(0, 0.05, dh - _WASHER_R_HOLE)
    k = pose.scale
    rings = noise1d(rng, r * F32(k), 0.9) * 0.05 + noise1d(rng, r * F32(k), 4) * 0.03
    phi = np.arctan2(ly, lx) + F32(pose.angle) - F32(p["light_az"])
    sheen = np.exp(-(np.sin(phi) ** 2) / 0.05) * smoothstep(0.1, 1.0, prof)
    tone = (1 + rings) * (0.9 + 0.4 * sheen)
    col = tone[..., None] * np.asarray(p["tint"], F32)
    full = (slice(0, size), slice(0, size))
    cv.paint(full, body, col, height=prof * F32(0.06 * k), gloss=0.55)
    relief = 0.06 * k
    return cv.shade(p["light_az"], p["light_el"], relief, shadow=0.6), cv.cover


def mutate_washer(
    p: dict[str, Any], rng: np.random.Generator, defect: str
) -> dict[str, Any]:
    """``missing_hole``: one of the four bolt holes was not punched."""
    q = dict(p)
    holes = list(p["holes"])
    holes[int(rng.integers(4))] = False
    q["holes"] = holes
    return q


# ---- pill (coated oblong tablet with speckles and an imprint, on a dark belt) ------

_PILL_A, _PILL_B = 0.55, 0.42


def sample_pill(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Pose, coating tint, speckle positions and imprint placement of a tablet."""
    speck = []
    while len(speck) < 26:
        x, y = rng.uniform(-0.95, 0.95), rng.uniform(-0.38, 0.38)
        if math.hypot(max(abs(x) - _PILL_A, 0), y) < _PILL_B - 0.06:
            speck.append([x, y, rng.uniform(0.008, 0.02), rng.uniform(0.4, 0.9)])
    return {
        **_object_pose(rng, size, 0.35, 0.07),
        "tint": (np.array([0.93, 0.91, 0.86]) * rng.uniform(0.96, 1.03)).tolist(),
        "speckles": speck,
        "print_xy": [0.0, 0.0],
        "print_angle": 0.0,
        "print_glyphs": "K7",
        "noise_seed": int(rng.integers(2**62)),
    }


def draw_pill(p: dict[str, Any], size: int) -> tuple[Array, Array]:
    """Domed white tablet: rounded rim shading, speckles and a red-brown imprint."""
    rng = np.random.default_rng(p["noise_seed"])
    bg = _belt(rng, size, (0.09, 0.10, 0.12))
    cv = Canvas(size, _pose(p), bg)
    lx, ly, px = cv.lx, cv.ly, cv.px
    d = np.hypot(np.maximum(np.abs(lx) - _PILL_A, 0), ly) - _PILL_B
    body = coverage(d, px)
    s = np.clip(-d / 0.3, 0, 1)
    dome = np.sqrt(1 - (1 - s) ** 2)
    powder = fine_noise(rng, size, 0.7) * 0.02
    col = (1 + powder)[..., None] * np.asarray(p["tint"], F32)
    full = (slice(0, size), slice(0, size))
    cv.paint(full, body, col, height=dome * F32(0.2 * p["scale"]), gloss=0.25)
    speck_col = np.array([0.62, 0.28, 0.22], F32)
    for x, y, r, a in p["speckles"]:
        res = cv.circle(x, y, r)
        if res is not None:
            win, cov, _ = res
            cv.paint(win, cov * a * body[win], speck_col, solid=False)
    if p["print_glyphs"]:
        px0, py0 = p["print_xy"]
        segs = text_segments(p["print_glyphs"], px0, py0, 0.34, p["print_angle"])
        res = cv.strokes(segs, 0.05)
        if res is not None:
            win, cov = res
            ink = cov * 0.85 * body[win] * smoothstep(0.0, 0.05, -d[win])
            cv.paint(win, ink, (0.50, 0.17, 0.13), solid=False)
    relief = 0.2 * p["scale"]
    return cv.shade(p["light_az"], p["light_el"], relief, shadow=0.55), cv.cover


def mutate_pill(
    p: dict[str, Any], rng: np.random.Generator, defect: str
) -> dict[str, Any]:
    """``misplaced_print``: the imprint is shifted / rotated, or a glyph is missing."""
    q = dict(p)
    mode = rng.choice(["shift", "shift", "rotate", "glyph"])
    if mode == "glyph":
        q["print_glyphs"] = p["print_glyphs"][int(rng.integers(2))]
        q["print_xy"] = [rng.uniform(-0.2, 0.2), rng.uniform(-0.05, 0.05)]
    elif mode == "rotate":
        q["print_angle"] = float(rng.choice([-1, 1]) * rng.uniform(0.35, 0.8))
    else:
        th = rng.uniform(0, TAU)
        dist = rng.uniform(0.18, 0.35)
        q["print_xy"] = [dist * math.cos(th), 0.45 * dist * math.sin(th)]
    return q


# ---- PCB (small populated board on an inspection tray) -----------------------------

_UX = [-0.57, -0.494, -0.418, -0.342, -0.266, -0.19]
_PCB_COMPONENTS: tuple[tuple[str, str, float, float, float, float, float], ...] = (
    # name, kind, cx, cy, half-width, half-height, rotation
    ("U1", "ic", -0.38, -0.02, 0.24, 0.15, 0.0),
    ("R1", "res", 0.22, -0.38, 0.10, 0.05, 0.0),
    ("R2", "res", 0.22, -0.14, 0.10, 0.05, 0.0),
    ("C1", "cap", 0.22, 0.12, 0.10, 0.05, 0.0),
    ("C2", "cap", 0.56, -0.30, 0.10, 0.05, math.pi / 2),
    ("E1", "can", 0.62, 0.28, 0.15, 0.15, 0.0),
    ("J1", "header", -0.38, 0.46, 0.22, 0.07, 0.0),
)
_PCB_TRACES: tuple[tuple[tuple[float, float], ...], ...] = (
    ((_UX[5], -0.205), (_UX[5], -0.38), (0.135, -0.38)),
    ((_UX[4], -0.205), (_UX[4], -0.30), (0.05, -0.30), (0.05, -0.14), (0.135, -0.14)),
    ((0.305, -0.38), (0.56, -0.38)),
    ((0.305, -0.14), (0.40, -0.14), (0.40, -0.215), (0.56, -0.215)),
    ((_UX[5], 0.165), (_UX[5], 0.26), (0.05, 0.26), (0.05, 0.12), (0.135, 0.12)),
    ((0.305, 0.12), (0.40, 0.12), (0.40, 0.28), (0.49, 0.28)),
    ((_UX[0], 0.165), (_UX[0], 0.30), (-0.53, 0.30), (-0.53, 0.46)),
    ((_UX[1], 0.165), (_UX[1], 0.36), (-0.43, 0.36), (-0.43, 0.46)),
    ((_UX[2], 0.165), (_UX[2], 0.26), (-0.33, 0.26), (-0.33, 0.46)),
    ((0.75, 0.28), (0.86, 0.28), (0.86, -0.52), (_UX[0], -0.52), (_UX[0], -0.205)),
)
_PCB_VIAS = ((0.05, -0.30), (0.40, 0.28), (0.86, -0.52), (-0.53, 0.30))
_PCB_LABELS = (
    ("U1", -0.80, -0.02), ("R1", 0.22, -0.48), ("R2", 0.42, -0.07),
    ("C1", 0.22, 0.265), ("C2", 0.72, -0.30), ("E1", 0.62, 0.52), ("J1", -0.72, 0.46),
    ("REV2", 0.55, -0.58),
)  # fmt: skip
_PCB_HALF = (1.0, 0.66)
_PCB_MOUNT = ((0.90, 0.56), (-0.90, 0.56), (0.90, -0.56), (-0.90, -0.56))


def sample_pcb(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """Pose, solder-mask shade and per-part placement tolerance of the board."""
    comps = [
        {
            "present": True,
            "dx": rng.normal(0, 0.004),
            "dy": rng.normal(0, 0.004),
            "drot": rng.normal(0, 0.01),
        }
        for _ in _PCB_COMPONENTS
    ]
    return {
        **_object_pose(rng, size, 0.41, 0.05),
        "mask": (np.array([0.10, 0.36, 0.19]) * rng.uniform(0.92, 1.08)).tolist(),
        "components": comps,
        "noise_seed": int(rng.integers(2**62)),
    }


def _pcb_pads(name: str, kind: str, hw: float, hh: float) -> list[tuple[float, ...]]:
    """Pads of one footprint as ``(u, v, half-width, half-height)`` in part frame."""
    if kind in ("res", "cap"):
        return [(-hw + 0.02, 0, 0.045, 0.065), (hw - 0.02, 0, 0.045, 0.065)]
    if kind == "ic":
        xs = np.linspace(-0.19, 0.19, 6)
        return [(x, s * (hh + 0.035), 0.02, 0.04) for x in xs for s in (-1, 1)]
    if kind == "can":
        return [(-0.13, 0, 0.05, 0.06), (0.13, 0, 0.05, 0.06)]
    return []


def draw_pcb(p: dict[str, Any], size: int) -> tuple[Array, Array]:
    """Green PCB: traces under the mask, gold pads, silkscreen and SMD parts."""
    rng = np.random.default_rng(p["noise_seed"])
    bg = _tray(rng, size, (0.70, 0.72, 0.74))
    cv = Canvas(size, _pose(p), bg)
    board_h = 0.03 * p["scale"]
    mask_col = np.asarray(p["mask"], F32)
    win, cov = cv.rect(0, 0, _PCB_HALF[0], _PCB_HALF[1], radius=0.05)
    holes = np.ones_like(cov)
    for mx, my in _PCB_MOUNT:
        d = np.hypot(cv.lx[win] - mx, cv.ly[win] - my)
        holes *= 1 - coverage(d - 0.05, cv.px)
    tex = 1 + fine_noise(rng, size, 0.8)[win] * 0.02
    cv.paint(win, cov * holes, tex[..., None] * mask_col, height=board_h, gloss=0.3)
    trace_col = mask_col * np.array([1.35, 1.3, 1.3], F32) + 0.02
    for poly in _PCB_TRACES:
        segs = [(*a, *b) for a, b in zip(poly[:-1], poly[1:], strict=True)]
        res = cv.strokes(segs, 0.035)
        if res is not None:
            cv.paint(res[0], res[1], trace_col)
    gold = (0.86, 0.70, 0.36)
    for mx, my in (*_PCB_MOUNT, *_PCB_VIAS):
        ring = 0.085 if (mx, my) in _PCB_MOUNT else 0.035
        hole = 0.05 if (mx, my) in _PCB_MOUNT else 0.015
        res = cv.circle(mx, my, ring)
        if res is not None:
            w, c, d = res
            cv.paint(w, c * (1 - coverage(d - hole, cv.px)), gold, gloss=0.7)
            if hole < 0.05:
                cv.paint(w, coverage(d - hole, cv.px), (0.08, 0.08, 0.07))
    silk = (0.90, 0.90, 0.86)
    for name, x, y in _PCB_LABELS:
        res = cv.strokes(text_segments(name, x, y, 0.075), 0.014)
        if res is not None:
            cv.paint(res[0], res[1] * 0.9, silk)
    for name, kind, cx, cy, hw, hh, rot in _PCB_COMPONENTS:
        if kind in ("res", "cap", "ic"):
            outer = cv.rect(
                cx, cy, hw + 0.045, hh + 0.045 + (0.06 if kind == "ic" else 0), rot
            )
            if outer is not None:
                inner = cv.rect(
                    cx,
                    cy,
                    hw + 0.033,
                    hh + 0.033 + (0.06 if kind == "ic" else 0),
                    rot,
                    win=outer[0],
                )
                cv.paint(outer[0], outer[1] * (1 - inner[1]) * 0.9, silk)
        c, s = math.cos(rot), math.sin(rot)
        for u, v, phw, phh in _pcb_pads(name, kind, hw, hh):
            res = cv.rect(cx + c * u - s * v, cy + s * u + c * v, phw, phh, rot)
            if res is not None:
                solder = (0.80, 0.80, 0.76)
                cv.paint(res[0], res[1], solder, height=board_h * 1.3, gloss=0.9)
    for (_, kind, cx, cy, hw, hh, rot), cp in zip(
        _PCB_COMPONENTS, p["components"], strict=True
    ):
        if cp["present"]:
            _draw_component(
                cv,
                kind,
                cx + cp["dx"],
                cy + cp["dy"],
                hw,
                hh,
                rot + cp["drot"],
                board_h,
            )
    relief = board_h + 0.25 * p["scale"]  # the electrolytic can is the tallest part
    return cv.shade(p["light_az"], p["light_el"], relief, shadow=0.55), cv.cover


def _draw_component(
    cv: Canvas,
    kind: str,
    cx: float,
    cy: float,
    hw: float,
    hh: float,
    rot: float,
    board_h: float,
) -> None:
    """Paint one SMD part (body, terminations, pins) with its height."""
    sc = cv.pose.scale
    c, s = math.cos(rot), math.sin(rot)

    def at(u: float, v: float) -> tuple[float, float]:
        """Part-frame offset (u, v) -> board-local coordinates."""
        return cx + c * u - s * v, cy + s * u + c * v

    if kind in ("res", "cap"):
        body_col = (0.12, 0.12, 0.12) if kind == "res" else (0.62, 0.47, 0.30)
        h = board_h + 0.035 * sc
        res = cv.rect(cx, cy, hw, hh, rot, radius=0.01)
        if res is not None:
            cv.paint(res[0], res[1], body_col, height=h, gloss=0.15)
        for sgn in (-1, 1):
            res = cv.rect(*at(sgn * (hw - 0.02), 0), 0.022, hh, rot, radius=0.008)
            if res is not None:
                cv.paint(res[0], res[1], (0.78, 0.78, 0.76), height=h, gloss=0.8)
    elif kind == "ic":
        h = board_h + 0.06 * sc
        for x in np.linspace(-0.19, 0.19, 6):
            for sgn in (-1, 1):
                res = cv.rect(*at(float(x), sgn * (hh + 0.03)), 0.014, 0.035, rot)
                if res is not None:
                    cv.paint(
                        res[0],
                        res[1],
                        (0.74, 0.74, 0.74),
                        height=board_h + 0.02 * sc,
                        gloss=0.8,
                    )
        res = cv.rect(cx, cy, hw, hh, rot, radius=0.015)
        if res is not None:
            cv.paint(res[0], res[1], (0.10, 0.10, 0.11), height=h, gloss=0.12)
        res = cv.circle(*at(-hw + 0.05, hh - 0.05), 0.022)
        if res is not None:
            cv.paint(res[0], res[1], (0.05, 0.05, 0.05), solid=False)
    elif kind == "can":
        h = board_h + 0.25 * sc
        res = cv.circle(cx, cy, hw)
        if res is not None:
            win, cov, d = res
            rim = smoothstep(hw - 0.03, hw, d)
            height = h * (1 - 0.5 * rim)
            col = np.where(
                (d > hw - 0.025)[..., None], (0.16, 0.22, 0.50), (0.78, 0.79, 0.8)
            )
            cv.paint(win, cov, col, height=height, gloss=0.7)
        segs = [(*at(-0.08, 0), *at(0.08, 0)), (*at(0, -0.08), *at(0, 0.08))]
        res = cv.strokes(segs, 0.012)
        if res is not None:
            cv.paint(res[0], res[1] * 0.7, (0.45, 0.45, 0.47), solid=False)
    elif kind == "header":
        h = board_h + 0.08 * sc
        res = cv.rect(cx, cy, hw, hh, rot, radius=0.01)
        if res is not None:
            cv.paint(res[0], res[1], (0.86, 0.85, 0.80), height=h, gloss=0.1)
        for x in (-0.15, -0.05, 0.05, 0.15):
            res = cv.rect(*at(x, 0), 0.025, 0.025, rot)
            if res is not None:
                cv.paint(
                    res[0], res[1], (0.88, 0.72, 0.38), height=h + 0.02 * sc, gloss=0.8
                )


def mutate_pcb(
    p: dict[str, Any], rng: np.random.Generator, defect: str
) -> dict[str, Any]:
    """``missing_component`` drops a part, ``misplaced_component`` shifts/turns one."""
    q = dict(p)
    comps = [dict(c) for c in p["components"]]
    n = int(rng.integers(1, len(comps)))  # U1 is never dropped or moved
    if defect == "missing_component":
        comps[n]["present"] = False
    else:
        th = rng.uniform(0, TAU)
        dist = rng.uniform(0.03, 0.07)
        comps[n]["dx"] += dist * math.cos(th)
        comps[n]["dy"] += dist * math.sin(th)
        comps[n]["drot"] += float(rng.choice([-1, 1]) * rng.uniform(0.15, 0.45))
    q["components"] = comps
    return q
