"""The one checkpoint rule: what val_score is, that it is configured once, and that
the trained methods (DiffusionAD, RAN) use it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from helpers import reference_aupro
from kedro_ad.metrics.checkpoint import DEFAULT_METRICS, CheckpointRule

REPO = Path(__file__).resolve().parents[1]


def _validation_predictions(seed=0):
    """Eight validation images, four with a defect, and noisy maps of them."""
    rng = np.random.default_rng(seed)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    masks = np.zeros((8, 12, 12), dtype=bool)
    masks[4:, 3:7, 2:6] = True
    masks[6:, 8:10, 8:11] = True  # a second, small region
    maps = rng.normal(0, 1, masks.shape).astype(np.float32) + 1.2 * masks
    scores = maps.reshape(8, -1).max(axis=1)
    return labels, scores, masks, maps


def test_default_rule_is_the_mean_of_image_auroc_and_aupro():
    labels, scores, masks, maps = _validation_predictions()
    out = CheckpointRule().score(labels, scores, masks, maps)
    image = roc_auc_score(labels, scores)
    aupro = reference_aupro(masks, maps)
    assert out["val_image_auroc"] == pytest.approx(image)
    assert out["val_pixel_aupro"] == pytest.approx(aupro, abs=1e-9)
    assert out["val_pixel_auroc"] == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel())
    )
    assert out["val_score"] == pytest.approx((image + aupro) / 2, abs=1e-9)
    assert image != pytest.approx(aupro)  # a mean of other metrics would differ


def test_other_rules_and_undefined_metrics():
    labels, scores, masks, maps = _validation_predictions()
    rule = CheckpointRule(metrics=("pixel_auroc",), aupro_fpr_limit=0.1)
    out = rule.score(labels, scores, masks, maps)
    assert out["val_score"] == out["val_pixel_auroc"]
    assert out["val_pixel_aupro"] == pytest.approx(
        reference_aupro(masks, maps, fpr_limit=0.1), abs=1e-9
    )
    assert rule.name == "mean(pixel_auroc) on synthetic_validation"
    image_only = CheckpointRule(metrics=("image_auroc",))
    assert image_only.score(labels, scores)["val_score"] == roc_auc_score(
        labels, scores
    )
    with pytest.raises(ValueError, match="needs masks and maps"):
        CheckpointRule().score(labels, scores)
    normal_only = CheckpointRule().score(labels[:4], scores[:4], masks[:4], maps[:4])
    assert math.isnan(normal_only["val_score"])  # nothing to tell apart


def test_rule_parameters_are_checked():
    assert CheckpointRule.from_params(None) == CheckpointRule()
    with pytest.raises(ValueError, match="image_aurocc"):
        CheckpointRule.from_params({"metrics": ["image_aurocc"]})
    with pytest.raises(ValueError, match="unknown key"):
        CheckpointRule.from_params({"metric": ["image_auroc"]})
    with pytest.raises(ValueError, match="aupro_fpr_limit"):
        CheckpointRule(aupro_fpr_limit=0)


def test_one_parameter_in_conf_with_the_default_rule():
    """conf/base holds the rule once; no environment overrides it."""
    base = yaml.safe_load((REPO / "conf/base/parameters_checkpoint.yml").read_text())
    rule = CheckpointRule.from_params(base["checkpoint_rule"])
    assert rule.metrics == DEFAULT_METRICS == ("image_auroc", "pixel_aupro")
    for path in REPO.glob("conf/**/*.yml"):
        text = path.read_text()
        if path.name != "parameters_checkpoint.yml":
            assert "checkpoint_rule:" not in text, path


@pytest.mark.parametrize("method", ["diffusionad", "ran"])
def test_trained_methods_read_the_rule(method):
    from kedro_ad.pipeline_registry import block_pipeline

    pipeline = block_pipeline(method)
    train = [n for n in pipeline.nodes if n.name.endswith(f"train_{method}_node")]
    assert len(train) == 1 and "params:checkpoint_rule" in train[0].inputs
