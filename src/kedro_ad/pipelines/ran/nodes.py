"""Nodes of RAN (see kedro_ad.models.ran): train, score, repair, serve.

Checkpoints are chosen on ``synthetic_validation`` (validation images, half with
synthetic defects); the per-timestep normalisation statistics come from the normal
validation images of ``dataset_arrays``. The test split is only ever scored.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from kedro_ad.metrics.checkpoint import NOT_RECORDED, CheckpointRule
from kedro_ad.models.maps import resize_images, to_unit_images
from kedro_ad.models.padim import padim_from_arrays
from kedro_ad.models.ran import (
    RanModel,
    build_ran,
    gradient_denoise,
    ran_from_parts,
    ran_to_parts,
)
from kedro_ad.pipelines.evaluation.nodes import make_predictions
from kedro_ad.serving import as_image_batch, served_output
from kedro_ad.training import TrainConfig, fit
from kedro_ad.visualization import (
    Panel,
    examples_per_class,
    panel_figure,
    training_figure,
)

logger = logging.getLogger(__name__)
METHOD = "ran"


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _validation_rows(synthetic: dict, limit: int, seed: int) -> np.ndarray:
    """Up to ``limit`` rows of ``synthetic_validation``, balanced by class and label."""
    rng = np.random.default_rng(seed)
    groups = sorted(
        set(
            zip(
                synthetic["classes"].tolist(), synthetic["labels"].tolist(), strict=True
            )
        )
    )
    per_group = max(1, limit // max(1, len(groups)))
    rows = []
    for cls, label in groups:
        members = np.flatnonzero(
            (synthetic["classes"] == cls) & (synthetic["labels"] == label)
        )
        rows.extend(rng.permutation(members)[:per_group].tolist())
    return np.sort(np.asarray(rows, dtype=np.int64))


def validation_score(
    ran: RanModel, synthetic: dict, rows: np.ndarray, params: dict, rule: CheckpointRule
) -> dict[str, float]:
    """Metrics on synthetic validation defects; ``val_score`` (``rule``, the project's
    one checkpoint rule) picks the checkpoint.

    The normalisation is refitted on the rows' untouched (label 0) images first.
    """
    pixel, feature, ids = _validation_maps(ran, synthetic, rows, params)
    return _rule_score(ran, synthetic, rows, rule, pixel, feature, ids)


def _validation_maps(ran: RanModel, synthetic: dict, rows: np.ndarray, params: dict):
    """Raw maps of the ``synthetic_validation`` rows ``rows`` (and class ids)."""
    inference = params["inference"]
    size = int(synthetic["images"].shape[1])
    images = to_unit_images(synthetic["images"][rows], size)
    ids = ran.unet.class_ids(synthetic["classes"][rows], len(rows))
    pixel, feature = ran.raw_maps(
        images, ids, _generator(inference["seed"]), int(inference["batch_size"])
    )
    return pixel, feature, ids


def _rule_score(ran, synthetic, rows, rule, pixel, feature, ids) -> dict[str, float]:
    """The rule's figures of raw validation maps, normalised on their normals."""
    labels = synthetic["labels"][rows]
    normal = torch.from_numpy(labels == 0)
    ran.set_normalisation(pixel[normal], feature[normal], ids[normal])
    size = int(synthetic["images"].shape[1])
    scores, maps = ran.combine(pixel, feature, ids, size)
    return rule.score(labels, scores.numpy(), synthetic["masks"][rows], maps.numpy())


def choose_alpha(
    ran: RanModel,
    synthetic: dict,
    rows: np.ndarray,
    params: dict,
    rule: CheckpointRule,
    candidates: list[float],
) -> list[dict[str, float]]:
    """Set ``ran.alpha`` (Eq. 11's weight of the pixel term) to the candidate with
    the best ``val_score`` on ``synthetic_validation`` (never the test split);
    returns every candidate's figures. The raw maps do not depend on alpha, so
    they are computed once."""
    pixel, feature, ids = _validation_maps(ran, synthetic, rows, params)
    table = []
    for alpha in candidates:
        ran.alpha = float(alpha)
        figures = _rule_score(ran, synthetic, rows, rule, pixel, feature, ids)
        table.append({"alpha": float(alpha), **figures})
    best = max(table, key=lambda row: row["val_score"])  # ties: the first listed
    ran.alpha = best["alpha"]
    logger.info(
        "RAN: alpha %.2f chosen on synthetic_validation (%d rows): %s",
        ran.alpha,
        len(rows),
        [{k: round(v, 4) for k, v in row.items()} for row in table],
    )
    return table


def train_ran(
    arrays: dict[str, np.ndarray],
    synthetic: dict[str, np.ndarray],
    params: dict,
    checkpoint_rule: dict | None = None,
) -> tuple[dict[str, Any], dict, plt.Figure]:
    """Train the unified class-conditioned RAN UNet on the train split.

    Returns the model folder's dict (UNet, scheduler, settings, per-class and
    per-timestep normalisation statistics from the normal validation images), the
    metric history and its figure. ``checkpoint_rule`` (``params:checkpoint_rule``;
    None: the default) picks the kept step and is recorded in the model.
    """
    rule = CheckpointRule.from_params(checkpoint_rule)
    started = time.perf_counter()
    train, val = arrays["splits"] == "train", arrays["splits"] == "val"
    classes = sorted(set(arrays["classes"][train].tolist()))
    data_size = int(arrays["images"].shape[1])
    ran = build_ran(
        params["model"],
        params["scoring"],
        classes,
        feature_image_size=params["model"].get("feature_image_size") or data_size,
        seed=params["seed"],
    )
    full = to_unit_images(arrays["images"][train], data_size)
    ids = ran.unet.class_ids(arrays["classes"][train], int(train.sum()))
    ran.set_feature_statistics(full)
    with torch.no_grad():  # fixed targets: computed once, not every step
        features = torch.cat(
            [ran.target_features(full[i : i + 64]) for i in range(0, len(full), 64)]
        )
    images = resize_images(full, ran.size)
    del full
    inference = params["inference"]

    def fit_gaussian() -> None:
        """The training images' feature-error Gaussian of the current weights."""
        ran.fit_feature_gaussian(
            images,
            ids,
            _generator(inference["seed"] + 1),
            int(inference["batch_size"]),
            features=features,
        )

    loss_params = params["loss"]
    training = dict(params["training"])
    # best weights chosen by another rule must not be resumed
    training["fingerprint"] = {
        **dict(training.get("fingerprint") or {}),
        "checkpoint_rule": rule.name,
    }
    config = TrainConfig.from_params(training)
    rows = _validation_rows(
        synthetic, int(params["validation"]["max_images"]), config.seed
    )

    def sample_batch(step: int, generator: torch.Generator) -> dict:
        pick = torch.randint(0, len(images), (config.batch_size,), generator=generator)
        return {"images": images[pick], "ids": ids[pick], "features": features[pick]}

    def loss_fn(batch: dict, generator: torch.Generator) -> dict:
        return ran.loss(
            batch["images"],
            batch["ids"],
            generator,
            max_timestep=int(loss_params["max_timestep"]),
            feature_weight=float(loss_params["feature_weight"]),
            features=batch["features"],
        )

    def validate() -> dict[str, float]:
        fit_gaussian()  # the errors' Gaussian moves with the weights
        return validation_score(ran, synthetic, rows, params, rule)

    result = fit(
        modules={"unet": ran.unet},
        trainable=None,
        sample_batch=sample_batch,
        loss_fn=loss_fn,
        validate_fn=validate,
        config=config,
        monitor="val_score",
        description=METHOD,
    )
    ran.eval()
    fit_gaussian()
    candidates = params["scoring"].get("alpha_candidates") or [ran.alpha]
    alpha_rows = _validation_rows(
        synthetic,
        int(params["validation"].get("alpha_images", len(synthetic["labels"]))),
        config.seed,
    )
    alpha_table = choose_alpha(ran, synthetic, alpha_rows, params, rule, candidates)
    val_images = to_unit_images(arrays["images"][val], arrays["images"].shape[1])
    val_ids = ran.unet.class_ids(arrays["classes"][val], int(val.sum()))
    ran.fit_normalisation(
        val_images,
        val_ids,
        _generator(params["inference"]["seed"]),
        batch_size=int(params["inference"]["batch_size"]),
    )
    seconds = time.perf_counter() - started
    logger.info(
        "RAN: %d steps in %.0f s, best step %d %s",
        result.steps_done,
        result.seconds,
        result.best_step,
        {k: round(v, 4) for k, v in result.best_metrics.items()},
    )
    parts = ran_to_parts(ran)
    parts["training"] = {
        "steps_done": result.steps_done,
        "best_step": result.best_step,
        "best_metrics": result.best_metrics,
        "train_seconds": seconds,
        "checkpoint_rule": rule.name,
        "alpha_choice": alpha_table,
    }
    figure = training_figure(
        result.history,
        f"RAN: unified UNet on {len(classes)} classes, {result.steps_done} steps "
        f"({result.seconds / 60:.1f} min); best val_score "
        f"{result.best_metrics.get('val_score', float('nan')):.3f} at step "
        f"{result.best_step}; val_score = {rule.name}",
    )
    return parts, result.history, figure


def _repair(ran: RanModel, padim, images: torch.Tensor, classes, params: dict):
    """Gradient-denoised ``x_N`` of ``[0, 1]`` images, at PaDiM's size."""
    settings = params["repair"]
    return gradient_denoise(
        ran,
        padim,
        to_unit_images(images, padim.image_size),
        ran.unet.class_ids(classes, len(images)),
        padim.class_ids(classes, len(images)),
        steps=int(settings["steps"]),
        learning_rate=float(settings["learning_rate"]),
        weight_decay=float(settings["weight_decay"]),
        denoise_every=int(settings["denoise_every"]),
        denoise_timestep=int(settings["denoise_timestep"]),
    )


def score_ran(
    model: dict[str, Any],
    padim_model: dict[str, Any],
    arrays: dict[str, np.ndarray],
    params: dict,
) -> tuple[dict[str, np.ndarray], plt.Figure]:
    """Test-split scores and maps (Eq. 11) + a figure of gradient-denoised repairs."""
    ran = ran_from_parts(model)
    inference = params["inference"]
    started = time.perf_counter()
    index = np.flatnonzero(arrays["splits"] == "test")
    images = to_unit_images(arrays["images"][index], arrays["images"].shape[1])
    ids = ran.unet.class_ids(arrays["classes"][index], len(index))
    scores, maps = ran.anomaly_maps(
        images, ids, _generator(inference["seed"] + 2), int(inference["batch_size"])
    )
    score_seconds = time.perf_counter() - started
    # one anomalous test image per class (the first), repaired with PaDiM's Gaussians
    classes = arrays["classes"][index]
    labels = arrays["labels"][index]
    chosen = examples_per_class(classes, labels, int(params["repair"]["n_figure"]))
    padim = padim_from_arrays(padim_model)
    repaired, _ = _repair(ran, padim, images[chosen], classes[chosen], params)
    rows = [
        [
            Panel(x, "input (defect outlined)", outline=mask),
            Panel(amap, "RAN anomaly map"),
            Panel(fixed, "gradient-denoised x_N"),
            Panel(np.abs(fixed - x).mean(-1), "|x_N - x_0|", kind="heat"),
        ]
        for x, mask, amap, fixed in zip(
            arrays["images"][index[chosen]].astype(np.float32) / 255.0,
            arrays["masks"][index[chosen]],
            maps[chosen].numpy(),
            repaired.permute(0, 2, 3, 1).numpy(),
            strict=True,
        )
    ]
    figure = panel_figure(
        rows,
        [f"{classes[i]}\nscore {float(scores[i]):.1f}" for i in chosen],
        "RAN: anomalous test images repaired by gradient denoising",
    )
    settings = params["scoring"]
    predictions = make_predictions(
        arrays,
        index,
        scores.numpy(),
        maps.numpy(),
        METHOD,
        f"RAN: unified class-conditioned pixel diffusion UNet at {ran.size}px "
        f"predicting noise and EfficientNet features; Eq. 11 over timesteps "
        f"{tuple(settings['timesteps'])}, alpha {ran.alpha:g} (chosen on "
        f"synthetic_validation), feature term {ran.feature_metric}, both terms "
        f"normalised per timestep and {ran.normalisation} on validation",
        model["training"].get("checkpoint_rule", NOT_RECORDED),
        train_seconds=model["training"]["train_seconds"],
        score_seconds=score_seconds,
    )
    return predictions, figure


def predict_ran(
    model: dict[str, Any], padim_model: dict[str, Any], images: Any, params: dict
) -> dict[str, np.ndarray]:
    """What the served model returns: ``{"scores": (N,), "maps": (N, H, W)}``.

    ``images``: ``{"images": uint8 (N, H, W, 3), "classes": (N,)}`` (the model is
    class-conditioned; a bare array works only for a one-class model). With
    ``inference.return_repairs`` the gradient-denoised images come back as
    ``"repaired"`` (uint8, PaDiM's size).
    """
    ran = ran_from_parts(model)
    padim = padim_from_arrays(padim_model)
    inference = params["inference"]
    batch, classes = as_image_batch(images, ran.feature_image_size)
    ids = ran.unet.class_ids(classes, len(batch))
    scores, maps = ran.anomaly_maps(
        batch, ids, _generator(inference["seed"] + 2), int(inference["batch_size"])
    )
    out = served_output(scores, maps, images)
    if inference.get("return_repairs"):
        names = classes if classes is not None else [padim.class_names[0]] * len(batch)
        repaired, _ = _repair(ran, padim, batch, np.asarray(names), params)
        out["repaired"] = (
            (repaired.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        )
    return out
