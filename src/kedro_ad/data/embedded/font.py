"""A stroke font for the pill imprint and the PCB silkscreen."""

from __future__ import annotations

import math

_Seg = tuple[tuple[float, float], tuple[float, float]]
_GLYPHS: dict[str, list[_Seg]] = {
    "U": [((0, 1), (0, 0.2)), ((0, 0.2), (0.2, 0)), ((0.2, 0), (0.5, 0)),
          ((0.5, 0), (0.7, 0.2)), ((0.7, 0.2), (0.7, 1))],
    "1": [((0.15, 0.8), (0.4, 1)), ((0.4, 1), (0.4, 0))],
    "2": [((0, 0.8), (0.15, 1)), ((0.15, 1), (0.55, 1)), ((0.55, 1), (0.7, 0.8)),
          ((0.7, 0.8), (0.7, 0.62)), ((0.7, 0.62), (0, 0)), ((0, 0), (0.7, 0))],
    "R": [((0, 0), (0, 1)), ((0, 1), (0.5, 1)), ((0.5, 1), (0.7, 0.85)),
          ((0.7, 0.85), (0.7, 0.65)), ((0.7, 0.65), (0.5, 0.5)), ((0.5, 0.5), (0, 0.5)),
          ((0.35, 0.5), (0.7, 0))],
    "C": [((0.7, 0.85), (0.55, 1)), ((0.55, 1), (0.15, 1)), ((0.15, 1), (0, 0.85)),
          ((0, 0.85), (0, 0.15)), ((0, 0.15), (0.15, 0)), ((0.15, 0), (0.55, 0)),
          ((0.55, 0), (0.7, 0.15))],
    "E": [((0.7, 1), (0, 1)), ((0, 1), (0, 0)), ((0, 0), (0.7, 0)),
          ((0, 0.5), (0.5, 0.5))],
    "J": [((0.7, 1), (0.7, 0.2)), ((0.7, 0.2), (0.5, 0)), ((0.5, 0), (0.2, 0)),
          ((0.2, 0), (0, 0.2))],
    "K": [((0, 0), (0, 1)), ((0.7, 1), (0, 0.4)), ((0.22, 0.6), (0.7, 0))],
    "7": [((0, 1), (0.7, 1)), ((0.7, 1), (0.25, 0))],
    "V": [((0, 1), (0.35, 0)), ((0.35, 0), (0.7, 1))],
}  # fmt: skip


def text_segments(
    text: str, x: float, y: float, h: float, angle: float = 0.0
) -> list[tuple[float, float, float, float]]:
    """Segments ``(ax, ay, bx, by)`` of ``text`` (height ``h``) centred at (x, y)."""
    cw, gap = 0.7 * h, 0.35 * h
    total = len(text) * cw + (len(text) - 1) * gap
    ca, sa = math.cos(angle), math.sin(angle)
    segs = []
    for n, ch in enumerate(text):
        ox = -total / 2 + n * (cw + gap)
        for (x0, y0), (x1, y1) in _GLYPHS[ch]:
            pts = []
            for gx, gy in ((x0, y0), (x1, y1)):
                u, v = ox + gx * h, (0.5 - gy) * h
                pts += [x + ca * u - sa * v, y + sa * u + ca * v]
            segs.append((pts[0], pts[1], pts[2], pts[3]))
    return segs
