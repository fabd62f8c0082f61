"""Ingestion: make or find the dataset folder and describe every file in a manifest."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from kedro_ad.data.embedded import generate_embedded_dataset
from kedro_ad.data.io import describe_files
from kedro_ad.data.layouts import assign_validation_split, scan_dataset

logger = logging.getLogger(__name__)


def prepare_source(data: dict) -> str:
    """Return the dataset root; for ``embedded`` generate it there first.

    Generation is deterministic in ``data.seed`` and reused when the folder already
    holds the same dataset, so repeated runs cost nothing.
    """
    root = Path(data["root"])
    if data["source"] == "embedded":
        embedded = data.get("embedded", {})
        generate_embedded_dataset(
            root,
            seed=int(data["seed"]),
            image_size=int(embedded.get("raw_size", 256)),
            n_train=int(embedded.get("n_train", 60)),
            n_test_good=int(embedded.get("n_test_good", 16)),
            n_test_per_defect=int(embedded.get("n_test_per_defect", 8)),
        )
    elif not root.exists():
        raise FileNotFoundError(
            f"{root}: dataset folder does not exist (data.source={data['source']}); "
            "set data.root, e.g. --params data.root=/path/to/mvtec"
        )
    return str(root)


def build_manifest(dataset_root: str, data: dict) -> pd.DataFrame:
    """One row per image of every class and split, with the facts validation needs.

    Reads every file once (size, mode, sha256, mask facts) but never fails on a
    broken file: the validation pipeline reports it with the file named.
    """
    rows = scan_dataset(data["source"], dataset_root, data.get("classes", "all"))
    rows = assign_validation_split(rows, float(data["val_fraction"]), int(data["seed"]))
    manifest = describe_files(rows)
    counts = manifest.groupby(["split", "label"]).size().to_dict()
    logger.info(
        "Manifest of %s (%s): %d images in %d classes; (split, label) counts %s",
        dataset_root,
        data["source"],
        len(manifest),
        manifest["class"].nunique(),
        counts,
    )
    return manifest
