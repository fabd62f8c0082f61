"""DiffusionAD's anomaly synthesis (Sec. 3.3, Eq. 9), vectorised over a batch.

A normal image N becomes a synthetic anomaly S = beta (M * N) + (1 - beta) (M * A)
+ (1 - M) * N, where M is a Perlin-noise mask inside the object's foreground, A is
anomaly content (a texture image, or N itself augmented and grid-shuffled) and
beta is an opacity in [0.2, 0.8]. Half of each batch stays normal.

Where the paper and its public code differ, this module takes:
- two augmentations from the paper's seven (the code draws three from ten that also
  shift hue, brightness and rotate): the paper is the specification;
- textures as the only source for texture classes and a 50/50 choice between
  texture and self-augmentation for objects (the code; the paper leaves it open),
  with self-augmentation for everything when no texture folder is given;
- texture images augmented too (the code, and DRAEM, do; ``augment_textures``);
- the whole image as the foreground of a texture class (the issue; the code uses a
  random precomputed blob mask, which the Perlin mask already is);
- exactly ``anomaly_fraction`` of a batch anomalous (rounded at random when it is
  not a whole number), where the code flips a coin per sample.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from .augment import grid_shuffle, random_augment
from .foreground import foreground_masks, texture_rows
from .perlin import perlin_masks

logger = logging.getLogger(__name__)


def blend(
    normal: np.ndarray, anomaly: np.ndarray, masks: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """Eq. 9: ``beta * N + (1 - beta) * A`` inside ``masks``, ``N`` outside.

    ``normal`` and ``anomaly`` uint8 ``(n, H, W, 3)``, ``masks`` bool ``(n, H, W)``,
    ``beta`` ``(n,)``; returns uint8 (rounded).
    """
    b = np.asarray(beta, dtype=np.float32).reshape(-1, 1, 1, 1)
    mixed = b * normal.astype(np.float32) + (1.0 - b) * anomaly.astype(np.float32)
    mixed = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return np.where(masks[..., None], mixed, normal)


def texture_patches(
    textures: np.ndarray, n: int, height: int, width: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` random ``(height, width)`` windows of random textures, randomly
    flipped; a texture smaller than the window is tiled."""
    k_count, tex_h, tex_w = textures.shape[:3]
    k = rng.integers(0, k_count, size=n)
    oy = rng.integers(0, max(tex_h - height, 0) + 1, size=n)
    ox = rng.integers(0, max(tex_w - width, 0) + 1, size=n)
    flips = rng.random((n, 2)) < 0.5
    ys = (oy[:, None] + np.arange(height)) % tex_h
    xs = (ox[:, None] + np.arange(width)) % tex_w
    ys = np.where(flips[:, :1], ys[:, ::-1], ys)
    xs = np.where(flips[:, 1:], xs[:, ::-1], xs)
    return textures[k[:, None, None], ys[:, :, None], xs[:, None, :]]


def _count(rng: np.random.Generator, fraction: float, n: int) -> int:
    """``fraction * n`` rounded up or down at random, so the mean is exact."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"anomaly_fraction must be in [0, 1], got {fraction}")
    expected = fraction * n
    whole = math.floor(expected)
    return whole + int(rng.random() < expected - whole)


def synthesize_batch(
    images: np.ndarray,
    rng: np.random.Generator,
    *,
    textures: np.ndarray | None = None,
    object_mask: np.ndarray | None = None,
    anomaly_fraction: float = 0.5,
    beta_range: tuple[float, float] = (0.2, 0.8),
    perlin_scale_range: tuple[int, int] = (0, 6),
    threshold: float = 0.5,
    is_texture: np.ndarray | None = None,
    self_augment_probability: float = 0.5,
    augment_textures: bool = True,
    n_ops: int = 2,
    grid: int = 8,
    return_details: bool = False,
) -> (
    tuple[np.ndarray, np.ndarray, np.ndarray]
    | tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]
):
    """Turn about ``anomaly_fraction`` of a uint8 batch ``(B, H, W, 3)`` into
    synthetic anomalies; returns ``(images uint8, masks bool (B, H, W), labels int
    (B,))`` with ``labels == 1`` exactly where a mask is non-empty.

    ``object_mask`` (bool ``(B, H, W)``, e.g. from :func:`foreground_masks`) limits
    defects to the object; None allows the whole image. ``textures`` (uint8
    ``(K, h, w, 3)``, see :func:`load_textures`) is the anomaly source for texture
    rows and, with probability ``1 - self_augment_probability``, for object rows;
    without it every row uses self-augmentation (``n_ops`` random colour operations,
    then a ``grid x grid`` shuffle). ``is_texture`` (bool ``(B,)``) says which rows
    are texture classes; when None, a row is a texture when its ``object_mask`` is
    None or covers the whole image. Deterministic for a given ``rng`` state.
    ``return_details`` adds a dict: ``rows`` (anomalous rows), ``beta``, ``source``
    ("texture" / "self" per anomalous row) and ``anomaly`` (the content A).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 (B, H, W, 3), got {images.dtype} {images.shape}"
        )
    b, height, width, _ = images.shape
    if object_mask is not None:
        object_mask = np.asarray(object_mask, dtype=bool)
        if object_mask.shape != (b, height, width):
            raise ValueError(
                f"object_mask must be ({b}, {height}, {width}), got {object_mask.shape}"
            )
    if textures is not None:
        textures = np.asarray(textures)
        if textures.ndim != 4 or textures.shape[-1] != 3 or textures.dtype != np.uint8:
            raise ValueError(
                "textures must be uint8 (K, h, w, 3), got "
                f"{textures.dtype} {textures.shape}"
            )
    if is_texture is None:
        is_texture = (
            np.ones(b, dtype=bool)
            if object_mask is None
            else object_mask.reshape(b, -1).all(axis=1)
        )
    is_texture = np.asarray(is_texture, dtype=bool)
    lo, hi = (float(v) for v in beta_range)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"beta_range must lie in [0, 1], got {beta_range}")

    rows = np.sort(rng.permutation(b)[: _count(rng, anomaly_fraction, b)])
    n = rows.size
    out = images.copy()
    masks = np.zeros((b, height, width), dtype=bool)
    labels = np.zeros(b, dtype=np.int64)
    if n:
        foreground = (
            np.ones((n, height, width), dtype=bool)
            if object_mask is None
            else object_mask[rows]
        )
        masks[rows] = perlin_masks(rng, foreground, perlin_scale_range, threshold)
        labels[rows] = 1
        coin = rng.random(n)
        use_texture = np.zeros(n, dtype=bool)
        if textures is not None and len(textures):
            use_texture = is_texture[rows] | (coin >= self_augment_probability)
        anomaly = images[rows].copy()
        if use_texture.any():
            anomaly[use_texture] = texture_patches(
                textures, int(use_texture.sum()), height, width, rng
            )
        augmented = ~use_texture | bool(augment_textures)
        anomaly[augmented] = random_augment(anomaly[augmented], rng, n_ops)
        anomaly[~use_texture] = grid_shuffle(anomaly[~use_texture], rng, grid)
        beta = rng.uniform(lo, hi, size=n)
        out[rows] = blend(images[rows], anomaly, masks[rows], beta)
    if not return_details:
        return out, masks, labels
    details: dict[str, Any] = {"rows": rows}
    if n:
        details.update(
            beta=beta,
            source=np.where(use_texture, "texture", "self"),
            anomaly=anomaly,
        )
    else:
        details.update(
            beta=np.zeros(0),
            source=np.zeros(0, dtype="<U7"),
            anomaly=images[:0].copy(),
        )
    return out, masks, labels, details


def build_synthetic_set(
    images: np.ndarray,
    classes: np.ndarray,
    source_index: np.ndarray,
    seed: int,
    *,
    texture_classes: tuple[str, ...] | list[str],
    textures: np.ndarray | None = None,
    copies: int = 1,
    chunk_size: int = 64,
    foreground: dict[str, float] | None = None,
    **synthesis: Any,
) -> dict[str, np.ndarray]:
    """A labelled set from normal images: each image once untouched (label 0), then
    ``copies`` times with a synthetic defect (label 1).

    Returns ``images``, ``masks``, ``labels``, ``classes``, ``source_index`` (the
    ``source_index`` entry of the image each row came from), ``anomaly_sources``
    ("" for normal rows, else "texture" / "self") and ``betas`` (NaN for normal
    rows). ``foreground`` holds keyword arguments of :func:`foreground_masks`;
    ``synthesis`` those of :func:`synthesize_batch`. Deterministic in ``seed``.
    """
    images = np.asarray(images, dtype=np.uint8)
    classes = np.asarray(classes)
    source_index = np.asarray(source_index)
    n = images.shape[0]
    is_texture = texture_rows(classes, texture_classes)
    objects = foreground_masks(images, is_texture, **(foreground or {}))
    rng = np.random.default_rng(seed)
    parts_images, parts_masks = [images], [np.zeros_like(objects)]
    sources = [np.full(n, "", dtype="<U7")]
    betas = [np.full(n, np.nan, dtype=np.float32)]
    for _ in range(int(copies)):
        for start in range(0, n, chunk_size):
            chunk = slice(start, start + chunk_size)
            made, masks, _, details = synthesize_batch(
                images[chunk],
                rng,
                textures=textures,
                object_mask=objects[chunk],
                is_texture=is_texture[chunk],
                anomaly_fraction=1.0,
                return_details=True,
                **synthesis,
            )
            parts_images.append(made)
            parts_masks.append(masks)
            sources.append(details["source"].astype("<U7"))
            betas.append(details["beta"].astype(np.float32))
    total = n * (1 + int(copies))
    return {
        "images": np.concatenate(parts_images),
        "masks": np.concatenate(parts_masks),
        "labels": np.repeat(np.array([0, 1]), [n, total - n]).astype(np.int64),
        "classes": np.tile(classes, 1 + int(copies)),
        "source_index": np.tile(source_index, 1 + int(copies)),
        "anomaly_sources": np.concatenate(sources),
        "betas": np.concatenate(betas),
    }
