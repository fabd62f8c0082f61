"""Validation: great-expectations over the manifest, then the arrays models read."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kedro_ad.data.io import read_image, read_mask
from kedro_ad.data.validation import check_report, validate_manifest
from kedro_ad.visualization import samples_figure

logger = logging.getLogger(__name__)


def validate_manifest_node(
    manifest: pd.DataFrame, data: dict, validation: dict
) -> dict:
    """Run the expectations; the report is saved and logged even when it fails."""
    return validate_manifest(
        manifest,
        data.get("classes", "all"),
        min_train_images=int(validation["min_train_images"]),
    )


def require_valid(report: dict, manifest: pd.DataFrame) -> pd.DataFrame:
    """Stop the run (before any training) when validation failed."""
    check_report(report)
    return manifest


def build_arrays(manifest: pd.DataFrame, data: dict) -> dict[str, np.ndarray]:
    """Resize every validated image and mask to ``data.image_size`` (RGB, uint8).

    Rows keep the manifest's order; ``split``, ``class`` and ``label`` arrays let
    each model pick its training, validation and test sets.
    """
    size = int(data["image_size"])
    n = len(manifest)
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=bool)
    records = manifest.reset_index(drop=True)
    for i, row in tqdm(
        records.iterrows(), total=n, desc=f"resize to {size}px", mininterval=2
    ):
        images[i] = read_image(row["image_path"], size)
        if row["label"] == 1 and isinstance(row["mask_path"], str):
            masks[i] = read_mask(row["mask_path"], size)
    logger.info("Arrays: %d images at %dx%d", n, size, size)
    return {
        "images": images,
        "masks": masks,
        "labels": records["label"].to_numpy(np.int64),
        "classes": records["class"].to_numpy(str),
        "splits": records["split"].to_numpy(str),
        "defect_types": records["defect_type"].to_numpy(str),
        "image_paths": records["image_path"].to_numpy(str),
    }


def dataset_preview(arrays: dict[str, np.ndarray], data: dict):
    """One row per class: two training images, then one test image per defect type."""
    rows = []
    for cls in sorted(set(arrays["classes"].tolist())):
        in_class = arrays["classes"] == cls
        row = [
            (int(i), f"{cls}\ntrain")
            for i in np.flatnonzero(in_class & (arrays["splits"] == "train"))[:2]
        ]
        anomalous = in_class & (arrays["labels"] == 1)
        for defect in sorted(set(arrays["defect_types"][anomalous].tolist()))[:5]:
            first = np.flatnonzero(anomalous & (arrays["defect_types"] == defect))[0]
            row.append((int(first), f"{cls}\n{defect}"))
        rows.append(row)
    return samples_figure(
        [
            [(arrays["images"][i], arrays["masks"][i], c) for i, c in row]
            for row in rows
        ],
        title=f"data.source={data['source']} at {data['root']}: training images and "
        f"one test image per defect type (ground truth in red), {data['image_size']}px",
    )
