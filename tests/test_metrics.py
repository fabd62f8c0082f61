"""Tests for kedro_ad.metrics against scikit-learn and slow reference code."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

import kedro_ad.metrics as metrics_mod
from helpers import EIGHT, reference_aupro
from kedro_ad.metrics import (
    METRIC_NAMES,
    all_metrics,
    aupro,
    image_metrics,
    pixel_metrics,
)

FOUR = ndimage.generate_binary_structure(2, 1)


# --------------------------------------------------------------------------
# Slow, obviously correct references
# --------------------------------------------------------------------------
def brute_f1max(labels: np.ndarray, scores: np.ndarray) -> float:
    """Max F1 over every threshold 'score >= t', t in the unique scores."""
    labels = labels.ravel().astype(bool)
    scores = scores.ravel()
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = np.sum(pred & labels)
        fp = np.sum(pred & ~labels)
        fn = np.sum(~pred & labels)
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    return best


# --------------------------------------------------------------------------
# Data generators
# --------------------------------------------------------------------------
def random_masks(rng, n=5, size=16, max_regions=3) -> np.ndarray:
    """Masks with random rectangles and smooth blobs; some images are normal."""
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(1, n):  # image 0 stays normal
        for _ in range(rng.integers(1, max_regions + 1)):
            if rng.random() < 0.5:
                h, w = rng.integers(1, size // 3, size=2)
                y, x = rng.integers(0, size - h), rng.integers(0, size - w)
                masks[i, y : y + h, x : x + w] = True
            else:
                noise = ndimage.gaussian_filter(rng.random((size, size)), 1.5)
                masks[i] |= noise > np.quantile(noise, 0.93)
    return masks


def random_maps(rng, masks, quantise: int | None = None) -> np.ndarray:
    """Noisy maps that are higher on anomalies; optionally quantised (ties)."""
    maps = rng.normal(size=masks.shape) + 1.5 * masks
    if quantise:
        maps = np.round(maps * quantise) / quantise
    return maps.astype(np.float32)


# --------------------------------------------------------------------------
# Image level
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("quantise", [None, 2])
def test_image_metrics_match_sklearn(seed, quantise):
    """AUROC/AP equal scikit-learn, F1-max the brute-force loop."""
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.3
    scores = rng.normal(size=300) + labels
    if quantise:
        scores = np.round(scores * quantise) / quantise  # many ties
    got = image_metrics(labels, scores)
    assert got["auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert got["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-9)
    assert got["f1max"] == pytest.approx(brute_f1max(labels, scores), abs=1e-9)
    assert all(type(v) is float for v in got.values())


def test_image_metrics_signed_zero_ties_and_int_labels():
    """-0.0 and 0.0 tie, as in scikit-learn; 0/1 int labels work."""
    labels = np.array([0, 1, 1, 0, 1, 0])
    scores = np.array([0.0, -0.0, 1.0, -1.0, 0.0, -0.0])
    got = image_metrics(labels, scores)
    assert got["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert got["ap"] == pytest.approx(average_precision_score(labels, scores))
    assert got["f1max"] == pytest.approx(brute_f1max(labels, scores))


def test_image_metrics_perfect_and_inverted():
    """Perfect ranking gives 1.0 everywhere, inverted ranking AUROC 0."""
    labels = np.array([0, 0, 1, 1])
    assert image_metrics(labels, [0.1, 0.2, 0.8, 0.9]) == {
        "auroc": 1.0,
        "ap": 1.0,
        "f1max": 1.0,
    }
    assert image_metrics(labels, [0.9, 0.8, 0.2, 0.1])["auroc"] == 0.0


# --------------------------------------------------------------------------
# Pixel level: AUROC / AP / F1-max
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("quantise", [None, 4, 1])
def test_pixel_metrics_match_sklearn(seed, quantise):
    """Pixel AUROC/AP/F1-max/AU-PRO against sklearn and the references."""
    rng = np.random.default_rng(seed)
    masks = random_masks(rng, n=6, size=24)
    maps = random_maps(rng, masks, quantise)
    got = pixel_metrics(masks, maps)
    y, s = masks.ravel(), maps.ravel()
    assert got["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
    assert got["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-6)
    assert got["f1max"] == pytest.approx(brute_f1max(y, s), abs=1e-6)
    assert got["aupro"] == pytest.approx(reference_aupro(masks, maps), abs=1e-3)


def test_pixel_metrics_chunk_boundaries(monkeypatch):
    """Tiny chunks: ties and regions span chunk and image-batch boundaries."""
    rng = np.random.default_rng(7)
    masks = random_masks(rng, n=6, size=16)
    maps = random_maps(rng, masks, quantise=2)  # very many ties
    expected = pixel_metrics(masks, maps)
    monkeypatch.setattr(metrics_mod, "_SWEEP_CHUNK", 7)
    monkeypatch.setattr(metrics_mod, "_BUILD_CHUNK", 300)  # ~1 image per batch
    got = pixel_metrics(masks, maps)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    y, s = masks.ravel(), maps.ravel()
    assert got["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert got["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert got["aupro"] == pytest.approx(reference_aupro(masks, maps), abs=1e-9)


def test_pixel_metrics_negative_scores_and_signed_zero():
    """Negative scores and signed zeros keep their order and ties."""
    rng = np.random.default_rng(3)
    masks = random_masks(rng, n=4, size=12)
    maps = np.round(random_maps(rng, masks) * 2) / 2 - 1.0  # negatives, ties
    maps[np.abs(maps) == 0] = rng.choice([0.0, -0.0], size=(maps == 0).sum())
    got = pixel_metrics(masks, maps)
    y, s = masks.ravel(), maps.ravel()
    assert got["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert got["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert got["f1max"] == pytest.approx(brute_f1max(y, s), abs=1e-9)


def test_pixel_metrics_accepts_uint8_masks_and_channel_axis():
    """0/255 uint8 masks and [N,1,H,W] inputs give the same result."""
    rng = np.random.default_rng(4)
    masks = random_masks(rng, n=4, size=12)
    maps = random_maps(rng, masks)
    expected = pixel_metrics(masks, maps)
    got = pixel_metrics((masks * 255).astype(np.uint8)[:, None], maps[:, None])
    assert got == expected


# --------------------------------------------------------------------------
# AU-PRO
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("quantise", [None, 3])
@pytest.mark.parametrize("fpr_limit", [0.3, 0.05, 1.0])
def test_aupro_matches_reference(seed, quantise, fpr_limit):
    """AU-PRO agrees with the slow threshold-loop reference."""
    rng = np.random.default_rng(100 + seed)
    masks = random_masks(rng)
    maps = random_maps(rng, masks, quantise)
    expected = reference_aupro(masks, maps, fpr_limit)
    assert aupro(masks, maps, fpr_limit) == pytest.approx(expected, abs=1e-3)


def _two_region_masks() -> np.ndarray:
    """One image, a large 4x4 region (16 px) and a small 2x1 region (2 px)."""
    masks = np.zeros((1, 10, 10), dtype=bool)
    masks[0, 1:5, 1:5] = True
    masks[0, 7:9, 7] = True
    return masks


def test_aupro_perfect_map_is_one():
    """A map ranking all anomalous pixels first gives 1.0."""
    rng = np.random.default_rng(0)
    masks = random_masks(rng)
    assert aupro(masks, masks.astype(np.float32)) == pytest.approx(1.0)
    assert pixel_metrics(masks, masks * 2.0 - 1.0)["aupro"] == pytest.approx(1.0)


def test_aupro_inverted_map_is_zero():
    """A map ranking all normal pixels first gives 0.0."""
    rng = np.random.default_rng(1)
    masks = random_masks(rng)
    assert aupro(masks, (~masks).astype(np.float32)) == pytest.approx(0.0)


def test_aupro_averages_over_regions_not_pixels():
    """Large region found, small one ranked below all normal pixels: PRO 0.5.

    Curve (0,0) -> (0,0.5) -> (1,0.5) -> (1,1), so AU-PRO = 0.5. Pixel recall
    would give 16/18 instead.
    """
    masks = _two_region_masks()
    maps = np.ones(masks.shape, dtype=np.float32)
    maps[0, 1:5, 1:5] = 2.0
    maps[0, 7:9, 7] = 0.0
    assert aupro(masks, maps) == pytest.approx(0.5, abs=1e-9)
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx(0.5, abs=1e-9)
    assert reference_aupro(masks, maps) == pytest.approx(0.5, abs=1e-9)


def test_aupro_two_regions_by_hand():
    """Large region found first, small region tied with all normal pixels.

    Curve (0,0) -> (0,0.5) -> (1,1): PRO(x) = 0.5 + 0.5x on [0, 1], so
    AU-PRO(0.3) = (0.3 * 0.5 + 0.5 * 0.3**2 / 2) / 0.3 = 0.575.
    """
    masks = _two_region_masks()
    maps = np.zeros(masks.shape, dtype=np.float32)
    maps[0, 1:5, 1:5] = 1.0
    assert aupro(masks, maps) == pytest.approx(0.575, abs=1e-9)
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx(0.75, abs=1e-9)


def test_aupro_interpolates_at_limit_within_tied_segment():
    """Region tied with half the normal pixels: one straight segment.

    4 normal pixels, 2 of them tied with the 4-pixel region at the top score:
    curve (0,0) -> (0.5,1) -> (1,1); PRO(0.3) = 0.6, area 0.09, AU-PRO 0.3.
    Evaluating inside the tie group (pixel by pixel) would give another value.
    """
    masks = np.zeros((1, 2, 4), dtype=bool)
    masks[0, 0] = True
    maps = np.array([[[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]], np.float32)
    assert aupro(masks, maps) == pytest.approx(0.3, abs=1e-9)


def test_aupro_false_positives_before_region():
    """One of 4 normal pixels above the region: (0,0)->(.25,0)->(.25,1)->(1,1)."""
    masks = np.zeros((2, 2, 2), dtype=bool)
    masks[1] = True  # one 4-pixel region; image 0 is normal
    maps = np.array([[[5.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]])
    assert aupro(masks, maps) == pytest.approx(0.05 / 0.3, abs=1e-9)


def test_aupro_uses_eight_connectivity():
    """A diagonal pair is one region (8-conn), not two (4-conn)."""
    masks = np.zeros((1, 8, 8), dtype=bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # diagonal pair
    masks[0, 5:7, 5:7] = True  # 2x2 block
    maps = np.zeros(masks.shape, dtype=np.float32)
    maps[0, 0, 0] = 3.0  # only one pixel of the pair is found first
    maps[0, 5:7, 5:7] = -1.0  # the block is ranked below all normal pixels
    eight = reference_aupro(masks, maps, structure=EIGHT)
    four = reference_aupro(masks, maps, structure=FOUR)
    assert abs(eight - four) > 0.05
    assert aupro(masks, maps) == pytest.approx(eight, abs=1e-9)


def test_aupro_rejects_bad_limit():
    """fpr_limit outside (0, 1] is a ValueError."""
    masks = _two_region_masks()
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="fpr_limit"):
            aupro(masks, masks.astype(float), bad)


# --------------------------------------------------------------------------
# Degenerate input and validation
# --------------------------------------------------------------------------
def test_pixel_metrics_no_anomaly_returns_nan_and_warns(caplog):
    """No anomalous pixel: every metric NaN, with a warning."""
    masks = np.zeros((3, 8, 8), dtype=bool)
    maps = np.random.default_rng(0).random(masks.shape)
    with caplog.at_level(logging.WARNING, logger="kedro_ad.metrics"):
        got = pixel_metrics(masks, maps)
    assert all(math.isnan(v) for v in got.values())
    assert "AU-PRO" in caplog.text and "undefined" in caplog.text


def test_pixel_metrics_all_anomalous(caplog):
    """No normal pixel: AUROC/AU-PRO NaN, AP and F1-max trivially 1."""
    masks = np.ones((2, 4, 4), dtype=bool)
    maps = np.random.default_rng(0).random(masks.shape)
    with caplog.at_level(logging.WARNING, logger="kedro_ad.metrics"):
        got = pixel_metrics(masks, maps)
    assert math.isnan(got["auroc"]) and math.isnan(got["aupro"])
    assert got["ap"] == 1.0 and got["f1max"] == 1.0
    assert "AUROC" in caplog.text


def test_image_metrics_one_class_returns_nan(caplog):
    """One class (or no sample): NaN with a warning, no crash."""
    with caplog.at_level(logging.WARNING, logger="kedro_ad.metrics"):
        got = image_metrics(np.zeros(5), np.arange(5.0))
    assert all(math.isnan(v) for v in got.values())
    assert "image AUROC is undefined" in caplog.text
    empty = image_metrics(np.zeros(0), np.zeros(0))
    assert all(math.isnan(v) for v in empty.values())


def test_shape_mismatch_names_both_shapes():
    """Shape errors name both shapes."""
    with pytest.raises(ValueError, match=r"\(2, 8, 8\).*\(2, 8, 9\)"):
        pixel_metrics(np.zeros((2, 8, 8), bool), np.zeros((2, 8, 9)))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        image_metrics(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="N,H,W"):
        pixel_metrics(np.zeros((2, 3, 4, 4), bool), np.zeros((2, 3, 4, 4)))


def test_nan_scores_rejected():
    """NaN scores are a ValueError rather than a silent wrong sort."""
    maps = np.zeros((1, 4, 4))
    maps[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pixel_metrics(np.ones((1, 4, 4), bool), maps)
    with pytest.raises(ValueError, match="NaN"):
        image_metrics([0, 1], [0.5, np.nan])


# --------------------------------------------------------------------------
# all_metrics
# --------------------------------------------------------------------------
def test_all_metrics_flat_keys_and_values():
    """Flat ADer keys, in METRIC_NAMES order, equal the per-level values."""
    rng = np.random.default_rng(5)
    masks = random_masks(rng, n=6)
    maps = random_maps(rng, masks)
    labels = masks.any(axis=(1, 2))
    scores = maps.max(axis=(1, 2))
    got = all_metrics(labels, scores, masks, maps)
    assert tuple(got) == METRIC_NAMES
    image = image_metrics(labels, scores)
    pixel = pixel_metrics(masks, maps)
    for key, value in {**{f"image_{k}": v for k, v in image.items()}}.items():
        assert got[key] == value
    for key, value in pixel.items():
        assert got[f"pixel_{key}"] == value
    no_pixel = all_metrics(labels, scores, None, None)
    assert math.isnan(no_pixel["pixel_aupro"])
    assert no_pixel["image_auroc"] == got["image_auroc"]


def test_torch_tensors_accepted():
    """CPU torch tensors give the same result as numpy arrays."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    masks = random_masks(rng, n=4, size=12)
    maps = random_maps(rng, masks)
    expected = pixel_metrics(masks, maps)
    assert pixel_metrics(torch.from_numpy(masks), torch.from_numpy(maps)) == expected


def test_pixel_metrics_fpr_limit_matches_aupro():
    from kedro_ad.metrics import aupro, pixel_metrics

    rng = np.random.default_rng(11)
    masks = np.zeros((3, 16, 16), dtype=bool)
    masks[:, 4:9, 5:11] = True
    maps = rng.normal(size=masks.shape) + masks
    for limit in (0.05, 0.3, 1.0):
        got = pixel_metrics(masks, maps, fpr_limit=limit)["aupro"]
        assert got == pytest.approx(aupro(masks, maps, fpr_limit=limit), abs=1e-12)
    assert (
        pixel_metrics(masks, maps)["aupro"] == pixel_metrics(masks, maps, 0.3)["aupro"]
    )
    with pytest.raises(ValueError, match="fpr_limit"):
        pixel_metrics(masks, maps, fpr_limit=0.0)
