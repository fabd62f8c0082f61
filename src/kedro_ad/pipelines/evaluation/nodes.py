"""Evaluation of any method's predictions: tables, curves and overlays.

``predictions`` (written by a method's scoring node) holds ``index`` (rows of
``dataset_arrays``, test split only), ``image_paths`` (those rows' files),
``scores`` [N], ``maps`` [N,H,W], ``method``, ``description`` and
``checkpoint_rule`` (how the method chose its checkpoint:
:class:`kedro_ad.metrics.checkpoint.CheckpointRule`'s name, or that it trained
nothing), which every table names. Predictions made by :func:`make_predictions`
also carry what they were scored against (``labels``, ``classes``,
``defect_types``, ``masks``) and ``data_version`` (``dataset_arrays``' hash), so
the comparison can read them without the data they came from.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from kedro_ad.metrics import METRIC_NAMES, image_metrics, pixel_metrics
from kedro_ad.metrics.checkpoint import NO_CHECKPOINT, NOT_RECORDED
from kedro_ad.visualization import message_figure, overlay_figure, roc_pr_figure

logger = logging.getLogger(__name__)

COLUMNS = list(METRIC_NAMES)


def _test_index(predictions: dict, arrays: dict) -> np.ndarray:
    """The ``dataset_arrays`` rows the predictions score, after honesty checks.

    Callers index only the arrays they need: images and maps are large.
    """
    index = predictions["index"]
    if len(index) == 0:
        raise ValueError("predictions hold no test images: nothing to evaluate")
    if (arrays["splits"][index] != "test").any():
        raise ValueError(
            "predictions include rows outside the test split: evaluation only "
            "scores the test split"
        )
    if not np.array_equal(predictions["image_paths"], arrays["image_paths"][index]):
        raise ValueError(
            "predictions were made on other images than the current dataset_arrays "
            "(the data changed since scoring): run the method's scoring again"
        )
    return index


def make_predictions(
    arrays: dict,
    index: np.ndarray,
    scores: Any,
    maps: Any,
    method: str,
    description: str,
    checkpoint_rule: str,
    **timings: float,
) -> dict[str, np.ndarray]:
    """The predictions a method's scoring node writes, in the format evaluation reads.

    Args:
        arrays: ``dataset_arrays``; ``index``: the test rows scored.
        scores: ``(N,)`` image scores; maps: ``(N, H, W)`` at the data's size
            (stored as float16).
        method, description: what the tables call the method and say it does.
        checkpoint_rule: how its checkpoint was chosen (the rule's name, or
            :data:`~kedro_ad.metrics.checkpoint.NO_CHECKPOINT`).
        timings: ``train_seconds`` and ``score_seconds`` when known (shown by the
            comparison table).
    """
    index = np.asarray(index)
    out = {
        "index": index,
        "image_paths": arrays["image_paths"][index],
        "scores": np.asarray(scores, dtype=np.float32),
        "maps": np.asarray(maps).astype(np.float16),
        "method": np.asarray(method),
        "description": np.asarray(description),
        "checkpoint_rule": np.asarray(checkpoint_rule),
    }
    # what the rows were scored against: the comparison reads predictions alone
    for key in ("labels", "classes", "defect_types", "masks"):
        if key in arrays:
            out[key] = arrays[key][index]
    if "data_version" in arrays:
        out["data_version"] = np.asarray(arrays["data_version"])
    out.update({key: np.float64(value) for key, value in timings.items()})
    return out


def checkpoint_rule(predictions: dict) -> str:
    """How the predictions' method chose its checkpoint (what the tables say)."""
    if "checkpoint_rule" not in predictions:
        return NOT_RECORDED
    return str(predictions["checkpoint_rule"])


def describe_data(arrays: dict, data: dict) -> str:
    """One sentence saying which data produced the numbers."""
    test = arrays["splits"] == "test"
    n_anom = int(arrays["labels"][test].sum())
    return (
        f"test split of data.source={data['source']} at {data['root']} "
        f"({int(test.sum())} images: {int(test.sum()) - n_anom} good, {n_anom} "
        f"anomalous; {len(set(arrays['classes'].tolist()))} classes; "
        f"{data['image_size']}px); checkpoints and normalisation from the validation "
        f"split ({int((arrays['splits'] == 'val').sum())} good images) only"
    )


def group_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    masks: np.ndarray,
    maps: np.ndarray,
    fpr_limit: float,
) -> dict[str, float | int]:
    """Image and pixel metrics (:data:`COLUMNS`) of one group of test images, with
    ``n_images`` and ``n_anomalous``."""
    row: dict[str, float | int] = {
        "n_images": len(labels),
        "n_anomalous": int(np.asarray(labels).sum()),
    }
    image = image_metrics(labels, np.asarray(scores, dtype=np.float64))
    pixel = pixel_metrics(masks, np.asarray(maps, np.float32), fpr_limit=fpr_limit)
    row.update({f"image_{k}": float(v) for k, v in image.items()})
    row.update({f"pixel_{k}": float(v) for k, v in pixel.items()})
    return row


def with_class_mean(table: pd.DataFrame, what: str = "Classes") -> pd.DataFrame:
    """``table`` (one row per class) plus a ``mean`` row over the classes whose
    metrics are defined; ``n_classes`` says how many it covers."""
    mean = {
        "class": "mean",
        "n_images": int(table["n_images"].sum()),
        "n_anomalous": int(table["n_anomalous"].sum()),
    }
    # classes without both good and anomalous test images have undefined metrics
    # (NaN); the mean covers the others and says how many it covers
    scored = table["image_auroc"].notna()
    if not scored.all():
        logger.warning(
            "%s %s lack good or anomalous test images: their metrics are "
            "undefined and left out of the mean",
            what,
            table.loc[~scored, "class"].tolist(),
        )
    mean["n_classes"] = int(scored.sum())
    mean.update({c: float(table.loc[scored, c].mean()) for c in COLUMNS})
    return pd.concat([table, pd.DataFrame([mean])], ignore_index=True)


def compute_metrics_table(
    predictions: dict, arrays: dict, evaluation: dict
) -> pd.DataFrame:
    """Per-class metrics, plus the mean over classes as the last row."""
    index = _test_index(predictions, arrays)
    labels, classes = arrays["labels"][index], arrays["classes"][index]
    rows = []
    for cls in sorted(set(classes.tolist())):
        m = classes == cls
        row = {"class": cls, "n_classes": 1}
        row.update(
            group_metrics(
                labels[m],
                predictions["scores"][m],
                arrays["masks"][index[m]],
                predictions["maps"][m],
                evaluation["aupro_fpr_limit"],
            )
        )
        rows.append(row)
    table = with_class_mean(pd.DataFrame(rows))
    table.insert(0, "method", str(predictions["method"]))
    table.insert(1, "checkpoint_rule", checkpoint_rule(predictions))
    return table[
        [
            "method",
            "checkpoint_rule",
            "class",
            "n_classes",
            "n_images",
            "n_anomalous",
            *COLUMNS,
        ]
    ]


def metrics_markdown(
    table: pd.DataFrame, predictions: dict, arrays: dict, data: dict
) -> str:
    """The table as Markdown, headed by the method and the data that produced it."""
    header = (
        f"# {predictions['method']} — evaluation\n\n"
        f"Method: {predictions['description']}.\n\n"
        f"Checkpoint: {checkpoint_rule(predictions)}.\n\n"
        f"Data: {describe_data(arrays, data)}.\n\n"
    )
    shown = table.drop(columns=["method", "checkpoint_rule"])
    for c in COLUMNS:
        shown[c] = shown[c].map(lambda v: f"{100 * v:.1f}")
    return header + shown.to_markdown(index=False) + "\n\n(percent)\n"


def metrics_for_mlflow(table: pd.DataFrame) -> dict:
    """``<method>/<metric>`` for the class mean, ``<method>/<class>/<metric>``.

    The method prefix keeps methods apart when one run evaluates several of them
    (a comparison run), and names the same metric alike across runs.
    """
    out = {}
    for _, row in table.iterrows():
        prefix = f"{row['method']}/"
        if row["class"] != "mean":
            prefix += f"{row['class']}/"
        for c in COLUMNS:
            if np.isfinite(row[c]):
                out[f"{prefix}{c}"] = {"value": float(row[c]), "step": 0}
    return out


def curves_figure(predictions: dict, arrays: dict, data: dict):
    """Image-level ROC and PR curves per class."""
    index = _test_index(predictions, arrays)
    return roc_pr_figure(
        arrays["labels"][index],
        predictions["scores"].astype(np.float64),
        arrays["classes"][index],
        f"{predictions['method']}: {describe_data(arrays, data)}",
    )


def overlays_figure(predictions: dict, arrays: dict, evaluation: dict):
    """Best and worst anomalous test images, ranked by their own pixel AUROC."""
    index = _test_index(predictions, arrays)
    masks, maps = arrays["masks"], predictions["maps"]
    anomalous = np.flatnonzero(arrays["labels"][index] == 1)
    quality = np.array(
        [
            roc_auc_score(masks[index[i]].ravel(), maps[i].astype(np.float32).ravel())
            if 0 < masks[index[i]].mean() < 1
            else np.nan
            for i in anomalous
        ]
    )
    keep = np.isfinite(quality)
    anomalous, quality = anomalous[keep], quality[keep]
    if len(anomalous) == 0:
        return message_figure("no anomalous test image with a mask to show")
    order = anomalous[np.argsort(-quality)]
    k = min(int(evaluation["n_overlays"]), len(order) // 2 or len(order))
    chosen = np.array(list(order[:k]) + list(order[::-1][:k]))
    by_index = dict(zip(anomalous.tolist(), quality.tolist(), strict=True))
    classes, scores = arrays["classes"][index], predictions["scores"]
    captions = [
        f"{'best' if j < k else 'worst'} | {classes[i]}\n"
        f"score {float(scores[i]):.2f}, pixel AUROC {by_index[i]:.2f}"
        for j, i in enumerate(chosen.tolist())
    ]
    return overlay_figure(
        arrays["images"][index[chosen]],
        masks[index[chosen]],
        maps[chosen].astype(np.float32),
        captions,
        f"{predictions['method']}: best and worst anomalous test images "
        "(ranked by per-image pixel AUROC)",
    )


def compare_methods(*inputs) -> tuple[pd.DataFrame, str]:
    """Methods side by side: class means of each evaluation table, plus timings.

    ``inputs`` alternate ``(evaluation_table, predictions)`` per method; the
    predictions may carry ``train_seconds`` and ``score_seconds`` (wall time of the
    method's training and of scoring the test split), shown when present.
    """
    rows = []
    for table, predictions in zip(inputs[::2], inputs[1::2], strict=True):
        row = table[table["class"] == "mean"].iloc[0].to_dict()
        row["description"] = str(predictions["description"])
        for key in ("train_seconds", "score_seconds"):
            row[key] = float(predictions[key]) if key in predictions else float("nan")
        n = len(predictions["scores"])
        row["images_per_second"] = n / row["score_seconds"] if n else float("nan")
        rows.append(row)
    table = pd.DataFrame(rows)
    columns = ["method", "n_classes", "n_images", *COLUMNS]
    columns += ["train_seconds", "score_seconds", "images_per_second"]
    table = table[[*columns, "checkpoint_rule", "description"]]
    shown = table[columns].copy()
    for c in COLUMNS:
        shown[c] = shown[c].map(lambda v: f"{100 * v:.1f}")
    for c in ("train_seconds", "score_seconds", "images_per_second"):
        shown[c] = shown[c].map(lambda v: "-" if not np.isfinite(v) else f"{v:.1f}")
    text = (
        "# Methods compared on the same data, in one run\n\n"
        "Metrics in percent, class means over the test split; every method chose "
        "its checkpoint and normalisation on the validation split only.\n\n"
        + _rule_sentence(rows)
        + "\n\n"
        + shown.to_markdown(index=False)
        + "\n\n"
        + "\n".join(
            f"- {r['method']}: {r['description']} (checkpoint: {r['checkpoint_rule']})"
            for r in rows
        )
        + "\n"
    )
    return table, text


def _rule_sentence(rows: list[dict]) -> str:
    """The one checkpoint rule of the compared methods, or a warning that they
    differ (then the table does not compare like with like)."""
    trained = sorted(
        {r["checkpoint_rule"] for r in rows if r["checkpoint_rule"] != NO_CHECKPOINT}
    )
    untrained = [r["method"] for r in rows if r["checkpoint_rule"] == NO_CHECKPOINT]
    note = f" ({', '.join(untrained)}: nothing trained)" if untrained else ""
    if not trained:
        return f"No method here trains: there is no checkpoint to choose{note}."
    if len(trained) == 1:
        return (
            "Checkpoint rule: every trained method kept the step with the best "
            f"{trained[0]}{note}."
        )
    return (
        "**The methods chose their checkpoints by different rules** "
        f"({'; '.join(trained)}): this table does not compare like with like{note}."
    )
