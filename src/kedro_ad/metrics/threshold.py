"""The one rule by which every method turns image scores into OK/NG decisions.

A served model answers with a decision per image: ``"NG"`` (defective, reject)
when its score is at or above the model's threshold, ``"OK"`` otherwise. Every
method chooses that threshold alike, on ``synthetic_validation`` (the validation
images, untouched and with synthetic defects; never the test split): the image-score
threshold that maximises F1 of the NG class (:func:`choose_threshold`). It ships
inside the registered model (``<method>.threshold``), so ``predict`` returns
scores, maps and decisions, and it is a tag of the model version.

Pure numpy: no kedro, mlflow or torch import.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NG", "OK", "RULE", "choose_threshold", "decide"]

NG = "NG"
OK = "OK"
#: What the threshold files, tags and tables say about how it was chosen.
RULE = (
    "F1-max on synthetic_validation: the image-score threshold maximising F1 of NG "
    "(validation images with synthetic defects = NG); NG when score >= threshold"
)


def choose_threshold(labels: Any, scores: Any) -> dict[str, Any]:
    """The F1-maximising image-score threshold of one validation pass.

    Args:
        labels: ``(N,)`` 1 for an image with a (synthetic) defect, 0 for a good one.
        scores: ``(N,)`` the model's image scores (higher = more anomalous).

    Returns:
        ``threshold`` (NG when ``score >= threshold``), ``rule``, and at that
        threshold on these images ``f1``, ``precision``, ``recall``,
        ``false_positive_rate``, with ``n_images`` and ``n_anomalous``.

    Among cuts with the same F1 the highest wins (fewest good parts rejected).
    The threshold is the midpoint between the lowest score called NG and the
    highest score called OK, so a score equal to neither is not decided by
    floating-point luck.

    Raises:
        ValueError: shapes differ, a score is NaN, or the labels do not hold
            both good and defective images (no threshold can be chosen).
    """
    labels = np.asarray(labels).ravel().astype(bool)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"threshold: {labels.size} labels for {scores.size} scores")
    if np.isnan(scores).any():
        raise ValueError("threshold: the validation scores contain NaN")
    n_pos = int(labels.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"threshold: synthetic_validation must hold good and defective images "
            f"(got {n_neg} good, {n_pos} defective)"
        )
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], labels[order]
    # the last position of each group of equal scores: the possible cuts
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]), ranked.size - 1)
    tp = np.cumsum(truth)[ends].astype(np.float64)
    fp = (ends + 1) - tp
    f1 = 2 * tp / (tp + fp + n_pos)
    best = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[0])  # the highest cut
    cut = ends[best]
    lowest_ng = float(ranked[cut])
    threshold = (
        (lowest_ng + float(ranked[cut + 1])) / 2 if cut + 1 < ranked.size else lowest_ng
    )
    return {
        "threshold": float(threshold),
        "rule": RULE,
        "f1": float(f1[best]),
        "precision": float(tp[best] / (tp[best] + fp[best])),
        "recall": float(tp[best] / n_pos),
        "false_positive_rate": float(fp[best] / n_neg),
        "n_images": int(labels.size),
        "n_anomalous": n_pos,
    }


def decide(scores: Any, threshold: float) -> np.ndarray:
    """``"NG"`` where ``score >= threshold``, else ``"OK"`` (a ``(N,)`` str array)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    return np.where(scores >= float(threshold), NG, OK)
