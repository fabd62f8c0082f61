"""Score synthetic_validation with a method's own predict function; choose the
threshold there (:func:`kedro_ad.metrics.threshold.choose_threshold`).

The same pass gives the checkpoint rule's figures of the model that ships
(``val_*``, what model versions are promoted on): every method is measured on the
same images by the same code, whatever its training loop logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from kedro_ad.metrics.checkpoint import CheckpointRule
from kedro_ad.metrics.threshold import choose_threshold

logger = logging.getLogger(__name__)

#: images per call of the predict function (bounds the memory of one call)
CHUNK = 32


class ValidationThreshold:
    """A node function: ``(*predict_inputs, checkpoint_rule) -> (threshold,
    metrics)`` where ``predict_inputs`` are the method's predict inputs with
    ``synthetic_validation`` in place of the images (position ``slot``).

    Returns the threshold file (``<method>.threshold``: the threshold, its rule,
    precision/recall on validation, the checkpoint rule and ``val_metrics``) and
    the same figures as MLflow metrics ``<method>/val_*`` and
    ``<method>/threshold``.
    """

    def __init__(self, method: str, predict: Callable, slot: int):
        self.method = method
        self.predict = predict
        self.slot = slot
        self.__name__ = f"choose_{method}_threshold"

    def __call__(self, *inputs: Any) -> tuple[dict, dict]:
        *args, rule_params = inputs
        validation = args[self.slot]
        n = len(validation["labels"])
        scores, maps = [], []
        for start in range(0, n, CHUNK):
            rows = slice(start, start + CHUNK)
            args[self.slot] = {
                "images": validation["images"][rows],
                "classes": validation["classes"][rows],
            }
            out = self.predict(*args)
            scores.append(np.asarray(out["scores"], dtype=np.float32))
            maps.append(np.asarray(out["maps"], dtype=np.float16))
        scores_all = np.concatenate(scores)
        chosen = choose_threshold(validation["labels"], scores_all)
        rule = CheckpointRule.from_params(rule_params)
        val = rule.score(
            validation["labels"],
            scores_all,
            validation["masks"],
            np.concatenate(maps).astype(np.float32),
        )
        logger.info(
            "%s: threshold %.4g on synthetic_validation (F1 %.3f, precision %.3f, "
            "recall %.3f); %s",
            self.method,
            chosen["threshold"],
            chosen["f1"],
            chosen["precision"],
            chosen["recall"],
            {k: round(v, 4) for k, v in val.items()},
        )
        threshold = {
            **chosen,
            "method": self.method,
            "checkpoint_rule": rule.name,
            "val_metrics": val,
        }
        metrics = {
            f"{self.method}/{name}": {"value": float(value), "step": 0}
            for name, value in {
                "threshold": chosen["threshold"],
                "threshold_f1": chosen["f1"],
                **val,
            }.items()
            if np.isfinite(value)
        }
        return threshold, metrics
