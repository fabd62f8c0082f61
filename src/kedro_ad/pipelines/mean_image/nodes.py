"""Nodes of the mean-image baseline (see kedro_ad.models.mean_image)."""

from __future__ import annotations

import time

import numpy as np

from kedro_ad.metrics.checkpoint import NO_CHECKPOINT
from kedro_ad.models import mean_image
from kedro_ad.models.common import class_ids
from kedro_ad.pipelines.evaluation.nodes import make_predictions
from kedro_ad.serving import as_image_batch, served_output


def fit_mean_image(
    arrays: dict[str, np.ndarray], params: dict
) -> dict[str, np.ndarray]:
    """Fit on the train split; normalisation statistics from the validation split."""
    started = time.perf_counter()
    train = arrays["splits"] == "train"
    val = arrays["splits"] == "val"
    model = mean_image.fit(
        arrays["images"][train],
        arrays["classes"][train],
        arrays["images"][val],
        arrays["classes"][val],
        smoothing_sigma=float(params["smoothing_sigma"]),
        std_floor=float(params["std_floor"]),
    )
    model["train_seconds"] = np.float64(time.perf_counter() - started)
    return model


def score_mean_image(
    model: dict[str, np.ndarray], arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Scores and maps of the test split, in the predictions format evaluation reads.

    ``index`` and ``image_paths`` name the rows of ``dataset_arrays`` scored, so the
    evaluation can refuse predictions made on other data.
    """
    index = np.flatnonzero(arrays["splits"] == "test")
    started = time.perf_counter()
    scores, maps = mean_image.predict(
        model, arrays["images"][index], arrays["classes"][index]
    )
    score_seconds = time.perf_counter() - started
    return make_predictions(
        arrays,
        index,
        scores,
        maps,
        "mean_image",
        "mean-image baseline: per-pixel z-distance to the class's mean training "
        "image (a trivial scorer, not a method from the papers)",
        NO_CHECKPOINT,
        train_seconds=float(model.get("train_seconds", np.nan)),
        score_seconds=score_seconds,
    )


def predict_mean_image(
    model: dict[str, np.ndarray], images, params: dict
) -> dict[str, np.ndarray]:
    """What the registered model does: images (+ class names) -> scores, maps.

    The baseline is per class, so the input must name each image's class
    (``{"images": uint8 (N, H, W, 3), "classes": (N,)}``) unless the model knows
    one class. Maps come back at the input's size.
    """
    size = int(model["image_size"])
    batch, classes = as_image_batch(images, size)
    known = model["classes"]
    # one class per image, named clearly when missing or unknown
    classes = known[class_ids(classes, known, len(batch), "mean_image").numpy()]
    pixels = (batch.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    scores, maps = mean_image.predict(model, pixels, classes)
    return served_output(scores, maps, images)
