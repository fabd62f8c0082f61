"""Every method that has scored the test split, side by side, one table per data
version.

Reads every ``data/07_model_output/<method>/predictions.npz`` there is. Predictions
made by :func:`kedro_ad.pipelines.evaluation.nodes.make_predictions` carry their
labels, masks and ``data_version``; older ones (without) are matched to the current
``dataset_arrays`` by their file paths, or left out with a warning. Metrics are
computed here, from the predictions, for every class, every defect type (that
defect's images against the class's good ones, as MVTec AD reports them) and the
mean over classes, with each method's training time and scoring speed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from kedro_ad.metrics import METRIC_NAMES
from kedro_ad.metrics.checkpoint import NOT_RECORDED
from kedro_ad.pipelines.evaluation.nodes import (
    describe_data,
    group_metrics,
    with_class_mean,
)
from kedro_ad.visualization import comparison_figure

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
KEYS = ["data_version", "method", "level", "class", "defect_type"]
TIMES = ["train_seconds", "images_per_second"]


def _scored_against(predictions: dict, arrays: dict) -> dict[str, Any] | None:
    """Labels, classes, defect types, masks and data version of the predictions'
    rows: their own, or the current arrays' when the file paths match."""
    keys = ("labels", "classes", "defect_types", "masks")
    if all(k in predictions for k in keys):
        out = {k: predictions[k] for k in keys}
        out["data_version"] = str(predictions.get("data_version", UNKNOWN))
        return out
    index = predictions["index"]
    if index.max(initial=-1) < len(arrays["image_paths"]) and np.array_equal(
        predictions["image_paths"], arrays["image_paths"][index]
    ):
        out = {k: arrays[k][index] for k in keys}
        out["data_version"] = str(arrays.get("data_version", UNKNOWN))
        return out
    return None


def _method_rows(predictions: dict, truth: dict, fpr_limit: float) -> pd.DataFrame:
    labels, classes = truth["labels"], truth["classes"]
    defects, masks = truth["defect_types"], truth["masks"]
    scores, maps = predictions["scores"], predictions["maps"]
    class_rows, defect_rows = [], []
    for cls in sorted(set(classes.tolist())):
        in_class = classes == cls
        row = {"class": cls, "defect_type": "all", "level": "class", "n_classes": 1}
        row.update(
            group_metrics(
                labels[in_class],
                scores[in_class],
                masks[in_class],
                maps[in_class],
                fpr_limit,
            )
        )
        class_rows.append(row)
        kinds = sorted(set(defects[in_class & (labels == 1)].tolist()))
        for defect in kinds:
            rows = in_class & ((labels == 0) | (defects == defect))
            row = {"class": cls, "defect_type": defect, "level": "defect_type"}
            row.update(
                group_metrics(
                    labels[rows], scores[rows], masks[rows], maps[rows], fpr_limit
                )
            )
            defect_rows.append(row)
    table = with_class_mean(pd.DataFrame(class_rows))
    table.loc[table["class"] == "mean", ["defect_type", "level"]] = ["all", "mean"]
    return pd.concat([table, pd.DataFrame(defect_rows)], ignore_index=True)


def compare_stored(
    predictions: dict[str, Callable[[], dict]],
    arrays: dict[str, np.ndarray],
    evaluation: dict,
    data: dict,
):
    """The comparison table (CSV rows), its Markdown and a figure.

    Args:
        predictions: partition id (the method's folder) -> loader, every stored
            ``predictions.npz``.
        arrays: the current ``dataset_arrays`` (for predictions without labels).
        evaluation: ``params:evaluation`` (AU-PRO's FPR limit); data: ``params:data``.
    """
    parts, left_out = [], []
    for folder, load in sorted(predictions.items()):
        stored = load()
        method = str(stored.get("method", folder))
        truth = _scored_against(stored, arrays)
        if truth is None:
            logger.warning(
                "compare: %s predictions were made on other data and record no "
                "labels: left out (run its pipeline again)",
                method,
            )
            left_out.append(method)
            continue
        rows = _method_rows(stored, truth, float(evaluation["aupro_fpr_limit"]))
        n = len(stored["scores"])
        score_seconds = float(stored.get("score_seconds", np.nan))
        rows["train_seconds"] = float(stored.get("train_seconds", np.nan))
        rows["images_per_second"] = n / score_seconds if score_seconds > 0 else np.nan
        rows["checkpoint_rule"] = str(stored.get("checkpoint_rule", NOT_RECORDED))
        rows["description"] = str(stored.get("description", ""))
        rows["method"] = method
        rows["data_version"] = truth["data_version"]
        parts.append(rows)
    if not parts:
        raise ValueError(
            "compare: no stored predictions match any data version "
            f"(left out: {left_out}); run a method's pipeline first"
        )
    table = pd.concat(parts, ignore_index=True)
    for column in ("n_classes", "n_images", "n_anomalous"):  # NaN for defect rows
        table[column] = table[column].astype("Int64")
    columns = [*KEYS, "n_classes", "n_images", "n_anomalous", *METRIC_NAMES, *TIMES]
    table = table[[*columns, "checkpoint_rule", "description"]]
    current = str(arrays.get("data_version", UNKNOWN))
    order = sorted(set(table["data_version"]), key=lambda v: (v != current, v))
    means = {
        version: table[(table["data_version"] == version) & (table["level"] == "mean")]
        for version in order
    }
    text = _markdown(table, order, current, describe_data(arrays, data), left_out)
    return table, text, comparison_figure(means)


def _percent(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame.copy()
    for column in shown.columns:
        if column in METRIC_NAMES:
            shown[column] = shown[column].map(
                lambda v: "-" if not np.isfinite(v) else f"{100 * v:.1f}"
            )
    return shown


def _pivot(rows: pd.DataFrame, metric: str, index: list[str]) -> str:
    pivot = rows.pivot_table(index=index, columns="method", values=metric, sort=True)
    shown = pivot.map(lambda v: "-" if not np.isfinite(v) else f"{100 * v:.1f}")
    return shown.reset_index().to_markdown(index=False, disable_numparse=True)


def _markdown(
    table: pd.DataFrame,
    versions: list[str],
    current: str,
    current_data: str,
    left_out: list[str],
) -> str:
    lines = [
        "# Every method on the same data",
        "",
        "Test split, percent; each method chose its checkpoint and normalisation on "
        "the validation split only. One section per data version (the MD5 of "
        "`dataset_arrays.npz`, DVC's hash of it). Reproduce: `dvc repro compare` "
        "(or `kedro run --pipeline compare` on the stored predictions).",
    ]
    if left_out:
        lines += ["", f"Left out (made on other data, no labels stored): {left_out}."]
    for version in versions:
        rows = table[table["data_version"] == version]
        mean = rows[rows["level"] == "mean"].copy()
        mean["train_seconds"] = mean["train_seconds"].map(
            lambda v: "-" if not np.isfinite(v) else f"{v:.0f}"
        )
        mean["images_per_second"] = mean["images_per_second"].map(
            lambda v: "-" if not np.isfinite(v) else f"{v:.2f}"
        )
        headline = _percent(
            mean[["method", "n_classes", "n_images", *METRIC_NAMES, *TIMES]]
        ).rename(columns={"train_seconds": "train s", "images_per_second": "images/s"})
        said = f" (the current data: {current_data})" if version == current else ""
        lines += [
            "",
            f"## Data version `{version}`{said}",
            "",
            "Class means:",
            "",
            headline.to_markdown(index=False, disable_numparse=True),
        ]
        classes = rows[rows["level"] == "class"]
        defects = rows[rows["level"] == "defect_type"]
        for metric in ("image_auroc", "pixel_aupro"):
            lines += [
                "",
                f"Per class, {metric}:",
                "",
                _pivot(classes, metric, ["class"]),
            ]
        for metric in ("image_auroc", "pixel_aupro"):
            lines += [
                "",
                f"Per defect type (its images and the class's good ones), {metric}:",
                "",
                _pivot(defects, metric, ["class", "defect_type"]),
            ]
        lines += [""] + [
            f"- {r['method']}: {r['description']} (checkpoint: {r['checkpoint_rule']})"
            for _, r in rows[rows["level"] == "mean"].iterrows()
        ]
    return "\n".join(lines) + "\n"
