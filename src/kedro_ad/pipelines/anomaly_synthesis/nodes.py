"""Nodes of the anomaly_synthesis pipeline (see kedro_ad.synthesis)."""

from __future__ import annotations

import logging

import numpy as np

from kedro_ad.synthesis import (
    build_synthetic_set,
    foreground_masks,
    load_textures,
    texture_rows,
)
from kedro_ad.visualization import samples_figure

logger = logging.getLogger(__name__)


def build_synthetic_validation(
    arrays: dict[str, np.ndarray], params: dict
) -> dict[str, np.ndarray]:
    """Every validation image untouched (label 0) and with a synthetic defect
    (label 1, ``anomalous_copies`` times); ``source_index`` points at the rows of
    ``dataset_arrays`` used. Only the validation split is read."""
    val = np.flatnonzero(arrays["splits"] == "val")
    if val.size == 0:
        raise ValueError(
            "dataset_arrays has no validation rows (splits == 'val'); "
            "set data.val_fraction above 0"
        )
    images = arrays["images"][val]
    textures = load_textures(params.get("texture_dir"), max(images.shape[1:3]))
    result = build_synthetic_set(
        images,
        arrays["classes"][val],
        val,
        int(params["seed"]),
        texture_classes=params["texture_classes"],
        textures=textures,
        copies=int(params.get("anomalous_copies", 1)),
        foreground=params.get("foreground"),
        **params.get("synthesis", {}),
    )
    anomalous = result["labels"] == 1
    logger.info(
        "Synthetic validation: %d normal + %d anomalous rows from %d validation "
        "images; defect area %.1f %% on average; sources %s",
        int((~anomalous).sum()),
        int(anomalous.sum()),
        val.size,
        100 * float(result["masks"][anomalous].mean()) if anomalous.any() else 0.0,
        {
            str(name): int(count)
            for name, count in zip(
                *np.unique(result["anomaly_sources"][anomalous], return_counts=True),
                strict=True,
            )
        },
    )
    return result


def synthesis_preview_figure(synthetic: dict[str, np.ndarray], params: dict):
    """One row per class: a validation image with its foreground estimate, then
    synthetic anomalies with their masks outlined."""
    per_class = int(params.get("preview", {}).get("per_class", 5))
    labels, classes = synthetic["labels"], synthetic["classes"]
    rows = []
    for cls in sorted(set(classes.tolist())):
        normal = np.flatnonzero((classes == cls) & (labels == 0))[:1]
        anomalous = np.flatnonzero((classes == cls) & (labels == 1))[:per_class]
        row = []
        if normal.size:
            image = synthetic["images"][normal]
            is_texture = texture_rows(classes[normal], params["texture_classes"])
            fg = foreground_masks(image, is_texture, **(params.get("foreground") or {}))
            where = "whole image" if is_texture[0] else "foreground estimate"
            row.append((image[0], fg[0], f"{cls}\n{where}"))
        for i in anomalous:
            caption = (
                f"{synthetic['anomaly_sources'][i]}, beta {synthetic['betas'][i]:.2f}"
                if "betas" in synthetic and "anomaly_sources" in synthetic
                else "synthetic"
            )
            row.append((synthetic["images"][i], synthetic["masks"][i], caption))
        rows.append(row)
    source = params.get("texture_dir") or "none (self-augmentation only)"
    return samples_figure(
        rows,
        title=f"anomaly_synthesis: first column the region defects may cover, then "
        f"synthetic defects on validation images (mask in red); texture_dir: "
        f"{source}",
    )
