"""One sample of the embedded dataset: scene, defect, camera, and its exact mask."""

from __future__ import annotations

import logging
import math
import zlib

import numpy as np

from .camera import finish, sample_look, sensor_noise
from .classes import SPECS
from .defects import OVERLAYS, Ctx, composite
from .noise import Array

logger = logging.getLogger(__name__)


#: A pixel belongs to the defect when some channel changed by more than this (8 bit).
MASK_TOLERANCE = 4
#: Defects are redrawn until their mask covers this fraction of the image ...
MIN_MASK_FRACTION = 0.002
#: ... and no more than this.
MAX_MASK_FRACTION = 0.25
_MAX_DEFECT_TRIES = 16


def _key(text: str) -> int:
    """Stable integer for a name (used in SeedSequence spawn keys)."""
    return zlib.crc32(text.encode("utf-8"))


def render_sample(
    class_name: str,
    index: int,
    split: str = "train",
    defect: str | None = None,
    seed: int = 0,
    image_size: int = 256,
) -> tuple[Array, Array, Array]:
    """Render one sample of the embedded dataset exactly as the generator writes it.

    Returns ``(image, mask, clean)``: uint8 RGB ``(H, W, 3)`` image, uint8 mask
    ``(H, W)`` with values {0, 255} (all zero for good samples) and the same scene
    rendered without the defect. Pixels outside the mask are identical in ``image``
    and ``clean``; ``mask == 255`` exactly where they differ. The random stream
    depends only on (seed, class, split, defect, index), not on dataset counts.
    """
    if class_name not in SPECS:
        raise ValueError(f"unknown embedded class {class_name!r}; known: {list(SPECS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    spec = SPECS[class_name]
    defect = None if defect in (None, "good") else defect
    if defect is not None and (split != "test" or defect not in spec.defects):
        raise ValueError(
            f"defect {defect!r} not available for {class_name!r}/{split}; "
            f"defects are {spec.defects} (test split only)"
        )
    size = int(image_size)
    ss = np.random.SeedSequence(
        int(seed),
        spawn_key=(_key(class_name), _key(split), _key(defect or "good"), int(index)),
    )
    scene_ss, defect_ss, sensor_ss = ss.spawn(3)
    rng = np.random.default_rng(scene_ss)
    params = spec.sample(rng, size)
    params.update(sample_look(rng))
    noise = sensor_noise(np.random.default_rng(sensor_ss), size)
    surface, support = spec.draw(params, size)
    clean = finish(surface, params, noise, spec.gray)
    if defect is None:
        return clean, np.zeros((size, size), np.uint8), clean.copy()

    drng = np.random.default_rng(defect_ss)
    min_px = MIN_MASK_FRACTION * size * size
    max_px = MAX_MASK_FRACTION * size * size
    best: tuple[float, Array, Array] | None = None
    for _ in range(_MAX_DEFECT_TRIES):
        if defect in OVERLAYS:
            ctx = Ctx(drng, surface, support, size, params["light_az"], spec.style)
            dsurface = composite(surface, support, OVERLAYS[defect](ctx))
        else:
            assert spec.mutate is not None
            dsurface, _ = spec.draw(spec.mutate(params, drng, defect), size)
        img = finish(dsurface, params, noise, spec.gray)
        diff = np.abs(img.astype(np.int16) - clean.astype(np.int16)).max(-1)
        changed = diff > MASK_TOLERANCE
        area = float(changed.sum())
        if min_px <= area <= max_px:
            best = (area, img, changed)
            break
        if area > 0 and (
            best is None
            or abs(math.log(area / min_px)) < abs(math.log(best[0] / min_px))
        ):
            best = (area, img, changed)
    if best is None:
        raise RuntimeError(
            f"could not draw a visible {defect} on {class_name}[{index}]"
        )
    if not (min_px <= best[0] <= max_px):
        logger.warning(
            "embedded %s/%s/%d: defect covers %.3f%% of the image",
            class_name, defect, index, 100 * best[0] / (size * size),
        )  # fmt: skip
    _, img, changed = best
    image = np.where(changed[..., None], img, clean)
    mask = changed.astype(np.uint8) * np.uint8(255)
    return image, mask, clean
