"""Nodes of PatchCore (see kedro_ad.models.patchcore): fit per class, score, serve.

anomalib's model gives the scores and maps; what is the project's: the data, the
splits, one memory bank per class, and the validation statistics that put the
classes on one scale (the test split is never read to choose anything).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from kedro_ad.metrics.checkpoint import NO_CHECKPOINT
from kedro_ad.models.patchcore import (
    PatchcoreSet,
    patchcore_from_parts,
    patchcore_to_parts,
)
from kedro_ad.pipelines.evaluation.nodes import make_predictions
from kedro_ad.serving import as_image_batch, served_output

logger = logging.getLogger(__name__)


def _normalised(
    model: PatchcoreSet, parts: dict, images: Any, ids: torch.Tensor, bs: int
) -> tuple[np.ndarray, np.ndarray]:
    """anomalib's scores and maps as z-scores against the class's validation
    normals (maps: all their pixels; scores: their image scores)."""
    scores, maps = model(images, ids, bs)
    index = ids.numpy()

    def z(values: np.ndarray, name: str) -> np.ndarray:
        mean = np.asarray(parts[f"val_{name}_mean"])[index]
        std = np.asarray(parts[f"val_{name}_std"])[index]
        shape = (-1,) + (1,) * (values.ndim - 1)
        return ((values - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)

    return z(scores.numpy(), "score"), z(maps.numpy(), "map")


def fit_patchcore(arrays: dict[str, np.ndarray], params: dict) -> dict[str, Any]:
    """A coreset memory bank per class from the train split (anomalib's PatchCore).

    The validation split (normal images only) gives each class's mean and
    standard deviation of the map and of the image score, which scoring uses to put
    classes on one scale.
    """
    started = time.perf_counter()
    train, val = arrays["splits"] == "train", arrays["splits"] == "val"
    classes = sorted(set(arrays["classes"][train].tolist()))
    model = PatchcoreSet(
        params["backbone"],
        classes,
        int(arrays["images"].shape[1]),
        num_neighbors=int(params["num_neighbors"]),
    )
    bs = int(params["batch_size"])
    model.fit(
        [arrays["images"][train & (arrays["classes"] == c)] for c in classes],
        coreset_ratio=float(params["coreset_sampling_ratio"]),
        batch_size=bs,
        seed=int(params["seed"]),
    )
    stats: dict[str, list[float]] = {
        f"val_{k}": [] for k in ("map_mean", "map_std", "score_mean", "score_std")
    }
    for cls in classes:
        rows = val & (arrays["classes"] == cls)
        if rows.sum() < 2:
            raise ValueError(f"patchcore: class {cls} has < 2 validation images")
        ids = model.class_ids([cls] * int(rows.sum()), 0)
        scores, maps = model(arrays["images"][rows], ids, bs)
        for name, values in (("map", maps), ("score", scores)):
            stats[f"val_{name}_mean"].append(float(values.mean()))
            stats[f"val_{name}_std"].append(float(values.std()) + 1e-6)
    seconds = time.perf_counter() - started
    logger.info("PatchCore: %d classes fitted in %.1f s", len(classes), seconds)
    return patchcore_to_parts(
        model,
        {
            **{k: np.asarray(v, dtype=np.float32) for k, v in stats.items()},
            "train_seconds": float(seconds),
        },
    )


def score_patchcore(
    model: dict[str, Any], arrays: dict[str, np.ndarray], params: dict
) -> dict[str, np.ndarray]:
    """Scores and maps of the test split (predictions format of the evaluation)."""
    patchcore = patchcore_from_parts(model)
    started = time.perf_counter()
    index = np.flatnonzero(arrays["splits"] == "test")
    ids = patchcore.class_ids(arrays["classes"][index], len(index))
    scores, maps = _normalised(
        patchcore, model, arrays["images"][index], ids, int(params["batch_size"])
    )
    config = model["config"]
    backbone = config["backbone"]
    return make_predictions(
        arrays,
        index,
        scores,
        maps,
        "patchcore",
        f"PatchCore: anomalib's PatchcoreModel (torch model, k-center-greedy "
        f"coreset {params['coreset_sampling_ratio']:g}, {config['num_neighbors']} "
        f"neighbours) on {backbone.get('name')} layers "
        f"{tuple(backbone.get('layers', ()))} with ImageNet weights from "
        f"{config['weights_source']} (not anomalib's default Wide-ResNet-50, which "
        "cannot be downloaded here); one memory bank per class; scores and maps "
        "z-normalised per class on validation",
        NO_CHECKPOINT,
        train_seconds=model.get("train_seconds", np.nan),
        score_seconds=time.perf_counter() - started,
    )


def predict_patchcore(model: dict[str, Any], images: Any, params: dict) -> dict:
    """What the served model returns: ``{"scores": (N,), "maps": (N, H, W)}``.

    ``images``: uint8 ``(N, H, W, 3)`` of any size, or ``{"images": ...,
    "classes": ...}``; classes are required when the model holds several.
    """
    patchcore = patchcore_from_parts(model)
    batch, classes = as_image_batch(images, patchcore.image_size)
    ids = patchcore.class_ids(classes, len(batch))
    scores, maps = _normalised(patchcore, model, batch, ids, int(params["batch_size"]))
    return served_output(scores, maps, images)
