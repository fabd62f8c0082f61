"""Nodes of PaDiM (see kedro_ad.models.padim): fit per class, score, serve."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from kedro_ad.metrics.checkpoint import NO_CHECKPOINT
from kedro_ad.models.maps import to_unit_images
from kedro_ad.models.padim import (
    PadimModel,
    build_padim,
    padim_from_arrays,
    padim_to_arrays,
)
from kedro_ad.pipelines.evaluation.nodes import make_predictions
from kedro_ad.serving import as_image_batch, served_output

logger = logging.getLogger(__name__)


def _maps(
    model: PadimModel, images: torch.Tensor, class_ids: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Raw (unnormalised) anomaly maps, in batches."""
    out = []
    for start in range(0, len(images), batch_size):
        stop = start + batch_size
        out.append(model(images[start:stop], class_ids[start:stop])[1])
    return torch.cat(out) if out else torch.empty(0, *images.shape[-2:])


def _normalised(
    model: PadimModel, arrays: dict, images: torch.Tensor, ids: torch.Tensor, bs: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and maps z-normalised by the class's validation statistics."""
    maps = _maps(model, images, ids, bs).numpy()
    mean = np.asarray(arrays["val_map_mean"])[ids.numpy()][:, None, None]
    std = np.asarray(arrays["val_map_std"])[ids.numpy()][:, None, None]
    maps = ((maps - mean) / std).astype(np.float32)
    return maps.reshape(len(maps), -1).max(axis=1), maps


def fit_padim(arrays: dict[str, np.ndarray], params: dict) -> dict[str, Any]:
    """One Gaussian per position per class from the train split.

    The validation split (normal images only) gives each class's mean and standard
    deviation of the map, which scoring uses to put classes on one scale; the test
    split is never read.
    """
    started = time.perf_counter()
    train, val = arrays["splits"] == "train", arrays["splits"] == "val"
    classes = sorted(set(arrays["classes"][train].tolist()))
    size = int(arrays["images"].shape[1])
    model = build_padim(
        params["backbone"],
        n_features=int(params["n_features"]),
        class_names=classes,
        image_size=size,
        sigma=float(params["smoothing_sigma"]),
        eps=float(params["covariance_eps"]),
        seed=int(params["seed"]),
    )
    bs = int(params["batch_size"])
    model.fit(
        [arrays["images"][train & (arrays["classes"] == c)] for c in classes],
        batch_size=bs,
    )
    val_mean, val_std = [], []
    for cls in classes:
        rows = val & (arrays["classes"] == cls)
        if not rows.any():
            raise ValueError(f"padim: class {cls} has no validation images")
        images = to_unit_images(arrays["images"][rows], size)
        maps = _maps(model, images, model.class_ids([cls] * len(images), 0), bs)
        val_mean.append(float(maps.mean()))
        val_std.append(float(maps.std()) + 1e-6)
    seconds = time.perf_counter() - started
    logger.info(
        "PaDiM: %d classes fitted in %.1f s (d=%d of %d channels, %d positions)",
        len(classes),
        seconds,
        model.n_features,
        sum(model.extractor.out_channels),
        model.mean.shape[1],
    )
    return padim_to_arrays(
        model,
        {
            "val_map_mean": np.asarray(val_mean, dtype=np.float32),
            "val_map_std": np.asarray(val_std, dtype=np.float32),
            "train_seconds": float(seconds),
        },
    )


def score_padim(
    model: dict[str, Any], arrays: dict[str, np.ndarray], params: dict
) -> dict[str, np.ndarray]:
    """Scores and maps of the test split (predictions format of the evaluation)."""
    padim = padim_from_arrays(model)
    started = time.perf_counter()
    index = np.flatnonzero(arrays["splits"] == "test")
    images = to_unit_images(arrays["images"][index], padim.image_size)
    ids = padim.class_ids(arrays["classes"][index], len(index))
    scores, maps = _normalised(padim, model, images, ids, int(params["batch_size"]))
    return make_predictions(
        arrays,
        index,
        scores,
        maps,
        "padim",
        f"PaDiM: a Gaussian per stride-4 position per class over "
        f"{padim.backbone_settings.get('name', 'tf_efficientnet_lite0')} layers "
        f"{tuple(padim.extractor.layers)}, d={padim.n_features} random channels, "
        f"Mahalanobis map smoothed with sigma {padim.sigma:g}, "
        "z-normalised per class on validation",
        NO_CHECKPOINT,
        train_seconds=model.get("train_seconds", np.nan),
        score_seconds=time.perf_counter() - started,
    )


def predict_padim(model: dict[str, Any], images: Any, params: dict) -> dict:
    """What the served model returns: ``{"scores": (N,), "maps": (N, H, W)}``.

    ``images``: uint8 ``(N, H, W, 3)`` of any size, or ``{"images": ...,
    "classes": ...}``; classes are required when the model holds several. Maps
    come back at the input size.
    """
    padim = padim_from_arrays(model)
    batch, classes = as_image_batch(images, padim.image_size)
    ids = padim.class_ids(classes, len(batch))
    scores, maps = _normalised(padim, model, batch, ids, int(params["batch_size"]))
    return served_output(scores, maps, images)
