"""The one rule by which every method chooses the checkpoint it keeps.

Every trained method scores ``synthetic_validation`` (validation images, half with
synthetic defects; never the test split) every few hundred steps, and the training
loop keeps the weights with the highest ``val_score``. :class:`CheckpointRule`
turns those validation predictions (labels, scores, masks, maps) into
``val_score``: the mean of the metrics it names. The rule is one parameter,
``checkpoint_rule`` (``conf/base/parameters_checkpoint.yml``), the same for every
method, so the comparison tables compare methods chosen alike; each run records
it (MLflow parameter and tag) and each evaluation table names it.

The default is the mean of image AUROC and pixel AU-PRO: the two figures the
project is judged by. AU-PRO rather than pixel AUROC, because pixel AUROC is
dominated by the largest defects and barely moves when small ones are missed,
while AU-PRO weighs every defect region alike.

Pure numpy: no kedro, mlflow or torch import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kedro_ad.metrics import METRIC_NAMES, image_metrics, pixel_metrics

__all__ = ["DEFAULT_METRICS", "NO_CHECKPOINT", "NOT_RECORDED", "CheckpointRule"]

#: What ``val_score`` averages unless ``checkpoint_rule.metrics`` says otherwise.
DEFAULT_METRICS: tuple[str, ...] = ("image_auroc", "pixel_aupro")
#: What tables say for a method that trains nothing (PaDiM, the mean image).
NO_CHECKPOINT = "none (nothing trained)"
#: What tables say for predictions that do not record their rule.
NOT_RECORDED = "not recorded"
# always reported on validation, whatever the rule averages
_REPORTED = ("image_auroc", "pixel_auroc", "pixel_aupro")


@dataclass(frozen=True)
class CheckpointRule:
    """``val_score`` = the mean of ``metrics`` on the validation predictions.

    Attributes:
        metrics: names from :data:`kedro_ad.metrics.METRIC_NAMES`.
        aupro_fpr_limit: AU-PRO's integration limit (MVTec's 0.3, as evaluation).
    """

    metrics: tuple[str, ...] = DEFAULT_METRICS
    aupro_fpr_limit: float = 0.3

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(METRIC_NAMES))
        if not self.metrics or unknown:
            raise ValueError(
                f"checkpoint_rule.metrics {list(self.metrics)}: name one or more of "
                f"{list(METRIC_NAMES)}"
            )
        if not 0 < float(self.aupro_fpr_limit) <= 1:
            raise ValueError(
                f"checkpoint_rule.aupro_fpr_limit {self.aupro_fpr_limit}: not in (0, 1]"
            )

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> CheckpointRule:
        """The rule of ``params:checkpoint_rule`` (None: the default rule)."""
        params = dict(params or {})
        unknown = sorted(set(params) - {"metrics", "aupro_fpr_limit"})
        if unknown:
            raise ValueError(f"checkpoint_rule: unknown key(s) {unknown}")
        return cls(
            metrics=tuple(str(m) for m in params.get("metrics", DEFAULT_METRICS)),
            aupro_fpr_limit=float(params.get("aupro_fpr_limit", 0.3)),
        )

    @property
    def name(self) -> str:
        """What tables and MLflow tags say, e.g. ``mean(image_auroc, pixel_aupro)
        on synthetic_validation``."""
        return f"mean({', '.join(self.metrics)}) on synthetic_validation"

    @property
    def needs_maps(self) -> bool:
        """Whether the rule reads anomaly maps (a pixel-level metric)."""
        return any(m.startswith("pixel_") for m in self.metrics)

    def score(
        self,
        labels: Sequence[int] | np.ndarray,
        scores: Sequence[float] | np.ndarray,
        masks: np.ndarray | None = None,
        maps: np.ndarray | None = None,
    ) -> dict[str, float]:
        """Validation metrics and ``val_score`` from one validation pass.

        Args:
            labels: ``(N,)`` 1 for an image with a (synthetic) defect.
            scores: ``(N,)`` image anomaly scores.
            masks: ``(N, H, W)`` defect masks, maps: ``(N, H, W)`` anomaly maps of
                the same shape; both may be None when the rule needs no pixel
                metric.

        Returns:
            ``val_<metric>`` for image AUROC, pixel AUROC and AU-PRO and every
            metric of the rule, and ``val_score``: their mean, NaN only when all
            of the rule's metrics are undefined (one class of labels only).
        """
        values = {f"image_{k}": v for k, v in image_metrics(labels, scores).items()}
        if masks is not None and maps is not None:
            pixel = pixel_metrics(masks, maps, fpr_limit=self.aupro_fpr_limit)
            values.update({f"pixel_{k}": v for k, v in pixel.items()})
        elif self.needs_maps:
            raise ValueError(f"checkpoint rule {self.name} needs masks and maps")
        chosen = [float(values[m]) for m in self.metrics]
        finite = [v for v in chosen if not math.isnan(v)]
        out = {
            f"val_{m}": float(values[m])
            for m in dict.fromkeys((*_REPORTED, *self.metrics))
            if m in values
        }
        out["val_score"] = float(np.mean(finite)) if finite else math.nan
        return out
