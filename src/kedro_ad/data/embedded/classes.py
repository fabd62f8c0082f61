"""The class registry: how each embedded class is rendered and which defects it gets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .noise import Array
from .scenes import (
    draw_fabric,
    draw_metal,
    draw_pcb,
    draw_pill,
    draw_washer,
    draw_wood,
    mutate_pcb,
    mutate_pill,
    mutate_washer,
    sample_fabric,
    sample_metal,
    sample_pcb,
    sample_pill,
    sample_washer,
    sample_wood,
)

#: Defect types that remove or move a part of an object (not a surface blemish).
PART_DEFECT_TYPES: frozenset[str] = frozenset(
    {"missing_hole", "misplaced_print", "missing_component", "misplaced_component"}
)


@dataclass(frozen=True)
class ClassSpec:
    """How one embedded class is rendered and which defects it gets."""

    kind: str
    sample: Callable[[np.random.Generator, int], dict[str, Any]]
    draw: Callable[[dict[str, Any], int], tuple[Array, Array]]
    defects: tuple[str, ...]
    style: dict[str, Any]
    mutate: Callable[[dict[str, Any], np.random.Generator, str], dict[str, Any]] | None
    gray: bool = False


SPECS: dict[str, ClassSpec] = {
    "fabric": ClassSpec(
        "texture", sample_fabric, draw_fabric,
        ("hole", "stain", "contamination", "scratch"),
        {
            "scratch": (1.6, 0.22, 0.9, 1.6),
            "hole": {"jag": 0.3, "kmax": 9, "fray": 0.06, "inside": (0.05, 0.05, 0.06),
                     "rim": 0.1},
            "stain": [(1.9, 1.75, 1.4), (0.5, 0.45, 0.35), (1.6, 1.1, 0.6)],
            "contamination": ("fibre", "fibre", "particles"),
            "fibres": [(0.85, 0.18, 0.12), (0.9, 0.88, 0.8), (0.08, 0.06, 0.05)],
        },
        None,
    ),
    "wood": ClassSpec(
        "texture", sample_wood, draw_wood,
        ("scratch", "crack", "hole", "stain"),
        {
            "scratch": (1.2, 0.12, 0.8, 1.0),
            "crack_dark": 0.18,
            "hole": {"jag": 0.15, "rim": 0.1},
            "stain": [(0.55, 0.45, 0.38), (0.45, 0.42, 0.42), (0.75, 0.55, 0.4)],
        },
        None,
    ),
    "brushed_metal": ClassSpec(
        "texture", sample_metal, draw_metal,
        ("scratch", "hole", "stain", "contamination"),
        {
            "scratch": (1.35, 0.12, 0.9, 1.0),
            "hole": {"jag": 0.08, "rim": 0.15},
            "stain": [(0.78, 0.55, 0.38), (0.6, 0.6, 0.62), (0.7, 0.68, 0.55)],
            "particles": [(0.1, 0.09, 0.08), (0.3, 0.28, 0.26), (0.85, 0.85, 0.86)],
        },
        None,
        gray=True,
    ),
    "washer": ClassSpec(
        "object", sample_washer, draw_washer,
        ("scratch", "stain", "contamination", "missing_hole"),
        {
            "scratch": (1.4, 0.12, 0.9, 1.0),
            "stain": [(0.75, 0.5, 0.32), (0.5, 0.48, 0.42), (0.62, 0.6, 0.5)],
        },
        mutate_washer,
    ),
    "pill": ClassSpec(
        "object", sample_pill, draw_pill,
        ("crack", "stain", "contamination", "misplaced_print"),
        {
            "crack_dark": 0.3,
            "stain": [(0.95, 0.62, 0.5), (0.95, 0.86, 0.55), (0.75, 0.72, 0.68)],
            "particles": [(0.12, 0.1, 0.09), (0.45, 0.35, 0.25), (0.3, 0.32, 0.4)],
        },
        mutate_pill,
    ),
    "pcb": ClassSpec(
        "object", sample_pcb, draw_pcb,
        ("scratch", "contamination", "missing_component", "misplaced_component"),
        {
            "scratch": (1.5, 0.2, 0.9, 1.0),
            "particles": [(0.8, 0.8, 0.78), (0.1, 0.1, 0.1), (0.5, 0.4, 0.3)],
            "fibres": [(0.08, 0.06, 0.05), (0.9, 0.88, 0.82), (0.2, 0.25, 0.7)],
        },
        mutate_pcb,
    ),
}  # fmt: skip

#: Class name -> "texture" or "object".
EMBEDDED_CLASSES: dict[str, str] = {name: s.kind for name, s in SPECS.items()}
#: Class name -> defect types (test / ground-truth folder names).
EMBEDDED_DEFECTS: dict[str, tuple[str, ...]] = {
    name: s.defects for name, s in SPECS.items()
}
