"""Batch inference as a Kedro node: what ``kedro-ad predict`` does (one code path,
:mod:`kedro_ad.batch`), inside a tracked run."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pandas as pd

from kedro_ad import batch

logger = logging.getLogger(__name__)


def predict_images(params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score ``params["inputs"]`` (files or folders) with ``params["model_uri"]``.

    Overlays go to ``<out_dir>/overlays``; returns the predictions (path, score,
    decision, threshold, overlay) and the skipped files (path, reason), which the
    catalog writes beside them and logs to MLflow. No input file, or a model URI
    that does not resolve, stops the run with one line saying so.
    """
    import mlflow

    files, missing = batch.collect_files(params["inputs"])
    if not files:
        raise batch.BatchError(f"no input files in {params['inputs']}")
    out = Path(params["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".model-") as download:
        model = batch.load_model(
            params["model_uri"], mlflow.get_tracking_uri(), Path(download)
        )
    result = batch.score_files(
        model,
        files,
        out,
        batch_size=int(params.get("batch_size", 8)),
        class_name=params.get("class_name"),
    )
    result.skipped[:0] = missing
    predictions, skipped = batch.tables(result)
    logger.info(
        "%d images scored with %s (%d NG), %d skipped",
        len(predictions),
        params["model_uri"],
        int((predictions["decision"] == "NG").sum()),
        len(skipped),
    )
    return predictions, skipped
