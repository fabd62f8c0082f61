"""The camera model: illumination, optics blur and sensor noise, quantised to uint8."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from .noise import F32, TAU, Array, pixel_grid


def sample_look(rng: np.random.Generator) -> dict[str, float]:
    """Per-image lighting / camera jitter of an inspection station."""
    return {
        "light_az": -0.75 * math.pi + rng.normal(0, 0.2),  # from the upper left
        "light_el": rng.uniform(0.8, 1.0),
        "gain": rng.uniform(0.9, 1.1),
        "grad_amp": rng.uniform(0.0, 0.12),
        "grad_dir": rng.uniform(0, TAU),
        "vignette": rng.uniform(0.05, 0.15),
        "colour_temp": rng.uniform(-1, 1),
        "read_noise": rng.uniform(0.004, 0.007),
        "shot_noise": rng.uniform(1.5e-5, 4e-5),
        "blur": rng.uniform(0.45, 0.65),
    }


def finish(surface: Array, look: dict[str, Any], noise: Array, gray: bool) -> Array:
    """Illuminate, blur, add sensor noise and quantise a surface to uint8 RGB."""
    size = surface.shape[0]
    y, x = pixel_grid(size)
    u, v = x / F32(size) - 0.5, y / F32(size) - 0.5
    g = math.cos(look["grad_dir"]), math.sin(look["grad_dir"])
    field = (
        look["gain"]
        * (1 + 2 * look["grad_amp"] * (u * g[0] + v * g[1]))
        * (1 - 2 * look["vignette"] * (u * u + v * v))
    )
    ct = 0.035 * look["colour_temp"]
    img = surface * field[..., None] * np.array([1 + ct, 1.0, 1 - ct], F32)
    b = look["blur"]
    img = ndimage.gaussian_filter(img, sigma=(b, b, 0))
    if gray:
        img = img @ np.array([0.299, 0.587, 0.114], F32)
        img = img[..., None]
    sigma = np.sqrt(
        look["read_noise"] ** 2 + look["shot_noise"] * np.clip(img, 0, None)
    )
    img = img + noise[..., : img.shape[-1]] * sigma
    out = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    if gray:
        out = np.repeat(out, 3, axis=-1)
    return out


def sensor_noise(rng: np.random.Generator, size: int) -> Array:
    """Unit-variance sensor noise: per-pixel luminance plus 2x2-block chroma noise.

    Chroma noise of demosaiced colour sensors is coarser than luminance noise; it
    is drawn at half resolution (also halves the cost of this function).
    """
    luma = rng.standard_normal((size, size, 1), dtype=F32)
    half = (size + 1) // 2
    chroma = rng.standard_normal((half, half, 3), dtype=F32)
    chroma = chroma.repeat(2, axis=0).repeat(2, axis=1)[:size, :size]
    return luma * F32(0.9) + chroma * F32(0.44)
