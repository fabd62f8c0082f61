"""The mean-image baseline: per-pixel z-distance to the class's mean training image.

A trivial, honest scorer (no learning beyond a mean and a standard deviation), used
to show the evaluation working and as the floor every method must beat. Pure numpy.
Normalisation statistics come from the validation split only.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def _raw_maps(images: np.ndarray, mean: np.ndarray, std: np.ndarray, sigma: float):
    x = images.astype(np.float32) / 255.0
    maps = (np.abs(x - mean) / std).mean(axis=-1)
    if sigma > 0:
        maps = gaussian_filter(maps, sigma=(0, sigma, sigma))
    return maps.astype(np.float32)


def fit(
    train_images: np.ndarray,
    train_classes: np.ndarray,
    val_images: np.ndarray,
    val_classes: np.ndarray,
    smoothing_sigma: float = 2.0,
    std_floor: float = 0.02,
) -> dict[str, np.ndarray]:
    """Per class: mean and std image from train, map mean/std from validation."""
    model: dict[str, np.ndarray] = {"sigma": np.float32(smoothing_sigma)}
    classes = sorted(set(train_classes.tolist()))
    for cls in classes:
        x = train_images[train_classes == cls].astype(np.float32) / 255.0
        mean = x.mean(axis=0)
        std = x.std(axis=0) + std_floor
        val = val_images[val_classes == cls]
        if len(val) == 0:
            raise ValueError(f"class {cls}: no validation images to normalise with")
        val_maps = _raw_maps(val, mean, std, smoothing_sigma)
        model[f"{cls}/mean"] = mean
        model[f"{cls}/std"] = std
        model[f"{cls}/map_mu"] = np.float32(val_maps.mean())
        model[f"{cls}/map_sd"] = np.float32(val_maps.std() + 1e-6)
    model["classes"] = np.asarray(classes, dtype=str)
    model["image_size"] = np.asarray(train_images.shape[1])
    return model


def predict(
    model: dict[str, np.ndarray], images: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Image scores (max of the map) and maps, normalised per class by validation."""
    maps = np.zeros(images.shape[:3], dtype=np.float32)
    sigma = float(model["sigma"])
    for cls in sorted(set(classes.tolist())):
        if f"{cls}/mean" not in model:
            raise ValueError(f"class {cls}: not in the fitted model")
        sel = classes == cls
        raw = _raw_maps(images[sel], model[f"{cls}/mean"], model[f"{cls}/std"], sigma)
        maps[sel] = (raw - model[f"{cls}/map_mu"]) / model[f"{cls}/map_sd"]
    scores = maps.reshape(len(maps), -1).max(axis=1)
    return scores, maps
