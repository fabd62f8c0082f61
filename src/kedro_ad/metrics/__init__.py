"""Image- and pixel-level anomaly-detection metrics.

Public API:

* :func:`image_metrics` -- AUROC, AP and F1-max of per-image anomaly scores.
* :func:`pixel_metrics` -- AUROC, AP, F1-max and AU-PRO of anomaly maps.
* :func:`aupro` -- area under the per-region-overlap curve (MVTec AD).
* :func:`all_metrics` -- all of the above with flat ADer-style keys
  (:data:`METRIC_NAMES`).

Definitions
-----------
AUROC and AP follow scikit-learn (``roc_auc_score``,
``average_precision_score``): the curves are evaluated only at distinct score
values, so tied scores are handled exactly as scikit-learn does. F1-max is the
maximum F1 over those thresholds (i.e. over the precision-recall curve).

AU-PRO follows the MVTec AD reference evaluation code (Bergmann et al.):
ground-truth regions are the connected components of each mask, found with
**8-connectivity** (``structure=np.ones((3, 3))``, as the reference
``pro_curve_util.compute_pro`` does); at each threshold PRO is the mean over
all regions of all images of the fraction of the region predicted anomalous,
and FPR is the fraction of all normal pixels predicted anomalous. The curve
starts at (0, 0), PRO is integrated over FPR with the trapezoid rule up to
``fpr_limit`` (interpolating linearly at the limit) and divided by
``fpr_limit``.

Implementation
--------------
All four pixel metrics come from a single sort. Every pixel is packed into one
``uint64``: the high 32 bits are an order-preserving integer image of its
float32 score, the low 32 bits its ground-truth region id (0 = normal pixel).
One in-place ``ndarray.sort`` (SIMD-accelerated for unsigned integers) then
yields scores and labels in order with no ``argsort``/gather. The sorted keys
are swept from the highest score down in fixed-size chunks; the curves are
evaluated only at the last pixel of each group of equal scores, and each
anomalous pixel contributes ``1 / (n_regions * size_of_its_region)`` to the
running PRO. Extra memory is ~8 bytes per pixel plus chunk-sized temporaries.
Pixel maps are compared in float32 (see :func:`pixel_metrics`).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from scipy import ndimage

logger = logging.getLogger(__name__)

__all__ = [
    "METRIC_NAMES",
    "PRO_CONNECTIVITY",
    "all_metrics",
    "aupro",
    "image_metrics",
    "pixel_metrics",
]

#: Flat metric keys returned by :func:`all_metrics` (ADer naming convention).
METRIC_NAMES: tuple[str, ...] = (
    "image_auroc",
    "image_ap",
    "image_f1max",
    "pixel_auroc",
    "pixel_ap",
    "pixel_f1max",
    "pixel_aupro",
)

#: Pixel connectivity of ground-truth regions for AU-PRO (MVTec AD reference).
PRO_CONNECTIVITY = 8

# Pixels per chunk when building keys and when sweeping the sorted keys. Module
# level so that tests can shrink them to exercise the chunk boundaries.
_BUILD_CHUNK = 1 << 21
_SWEEP_CHUNK = 1 << 20

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_SIGN_FLIP = np.uint32(0x80000000)
_ALL_FLIP = np.uint32(0x7FFFFFFF)


# --------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------
def _to_numpy(x: Any) -> np.ndarray:
    """Convert array-likes (including torch tensors on any device) to numpy."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_bool(x: np.ndarray) -> np.ndarray:
    """Binarise ground truth: bool is kept, anything else is ``x > 0.5``."""
    return x if x.dtype == np.bool_ else x > 0.5


def _check_finite(scores: np.ndarray, what: str) -> None:
    """Raise ValueError if ``scores`` contains NaN (infinities are orderable)."""
    if scores.size and np.isnan(np.min(scores)):
        raise ValueError(f"{what} contain NaN values")


def _prepare_pixel_inputs(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate masks/maps and return them as ``bool [N,H,W]`` and ``[N,H,W]``."""
    masks = _to_numpy(masks)
    maps = _to_numpy(maps)
    if masks.shape != maps.shape:
        raise ValueError(
            f"masks and maps must have the same shape, got masks {masks.shape} "
            f"and maps {maps.shape}"
        )
    if maps.ndim == 2:
        masks, maps = masks[None], maps[None]
    elif maps.ndim == 4 and maps.shape[1] == 1:
        masks, maps = masks[:, 0], maps[:, 0]
    elif maps.ndim != 3:
        raise ValueError(
            f"masks and maps must be [N,H,W] (or [H,W] / [N,1,H,W]), got shape "
            f"{maps.shape}"
        )
    if not (np.issubdtype(maps.dtype, np.number) or maps.dtype == np.bool_):
        raise ValueError(f"maps must be numeric, got dtype {maps.dtype}")
    _check_finite(maps, "maps")
    return _as_bool(masks), maps


def _undefined(level: str, name: str, why: str) -> float:
    """Log that a metric is undefined for this input and return NaN."""
    logger.warning("%s %s is undefined (%s); returning nan", level, name, why)
    return math.nan


# --------------------------------------------------------------------------
# Threshold sweep
# --------------------------------------------------------------------------
class _CurveSweep:
    """Accumulate ROC / PR / PRO statistics over score-sorted chunks.

    Chunks are fed in descending score order. ``group_keys`` are equal exactly
    where scores are equal; ``payload`` is 0 for negatives and a positive id
    for positives (the region id when ``pro_weights`` is given). Curve points
    are taken only at the last element of each group of equal scores.
    """

    def __init__(
        self,
        n_pos: int,
        n_neg: int,
        pro_weights: np.ndarray | None = None,
        fpr_limit: float = 0.3,
    ) -> None:
        self.n_pos = n_pos
        self.n_neg = n_neg
        self.pro_weights = pro_weights
        self.fpr_limit = fpr_limit
        self._seen = 0  # elements consumed so far
        self._tp_run = 0  # positives among them
        self._pro_run = 0.0  # PRO after them
        self._last = (0.0, 0.0, 0.0)  # (tp, fp, pro) of the last curve point
        self._roc = 0.0  # sum of dFP * (TP + TP_prev)
        self._ap = 0.0  # sum of dTP * precision
        self._f1 = 0.0
        self._pro_area = 0.0
        self._pro_done = pro_weights is None or n_neg == 0

    def update(
        self, group_keys: np.ndarray, payload: np.ndarray, last_is_end: bool
    ) -> None:
        """Consume one chunk (descending order).

        Args:
            group_keys: keys equal exactly where scores are equal.
            payload: 0 for negatives, >0 for positives (region ids for PRO).
            last_is_end: whether the chunk's last element ends its score group,
                i.e. the next element (in the next chunk) has a different score.
        """
        m = group_keys.size
        if m == 0:
            return
        is_end = np.empty(m, dtype=np.bool_)
        np.not_equal(group_keys[1:], group_keys[:-1], out=is_end[:-1])
        is_end[-1] = last_is_end
        ends = np.flatnonzero(is_end)
        del is_end

        tp_cum = np.cumsum(payload != 0, dtype=np.int64)
        tp = (tp_cum[ends] + self._tp_run).astype(np.float64)
        fp = (ends + (1 + self._seen)).astype(np.float64) - tp
        self._tp_run += int(tp_cum[-1])
        self._seen += m
        del tp_cum

        pro = None
        if not self._pro_done:
            pro_cum = np.cumsum(self.pro_weights[payload])
            pro = pro_cum[ends] + self._pro_run
            self._pro_run += float(pro_cum[-1])
            del pro_cum
        if ends.size == 0:
            return

        last_tp, last_fp, last_pro = self._last
        tp_prev = np.concatenate(([last_tp], tp[:-1]))
        fp_prev = np.concatenate(([last_fp], fp[:-1]))
        # Products and partial sums are integers below 2**53: exact in float64.
        self._roc += float(np.dot(fp - fp_prev, tp + tp_prev))
        predicted = tp + fp
        self._ap += float(np.dot(tp - tp_prev, tp / predicted))
        self._f1 = max(self._f1, float(np.max(2.0 * tp / (predicted + self.n_pos))))

        if pro is not None:
            self._integrate_pro(fp, fp_prev, pro, last_pro)
            last_pro = float(pro[-1])
        self._last = (float(tp[-1]), float(fp[-1]), last_pro)

    def _integrate_pro(
        self,
        fp: np.ndarray,
        fp_prev: np.ndarray,
        pro: np.ndarray,
        last_pro: float,
    ) -> None:
        """Add this chunk's trapezoids of the PRO curve up to ``fpr_limit``."""
        limit = self.fpr_limit
        fpr = fp / self.n_neg
        fpr_prev = fp_prev / self.n_neg
        pro_prev = np.concatenate(([last_pro], pro[:-1]))
        k = int(np.searchsorted(fpr, limit, side="right"))  # fpr is sorted
        self._pro_area += float(
            np.dot(fpr[:k] - fpr_prev[:k], pro[:k] + pro_prev[:k]) * 0.5
        )
        if k < fpr.size:  # segment k crosses the limit: interpolate, then stop
            x0, x1 = fpr_prev[k], fpr[k]
            y0, y1 = pro_prev[k], pro[k]
            y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            self._pro_area += float(0.5 * (y0 + y_lim) * (limit - x0))
            self._pro_done = True

    def result(self, level: str) -> dict[str, float]:
        """Return the final metrics; undefined ones are NaN (warning logged)."""
        n_pos, n_neg = self.n_pos, self.n_neg
        counts = f"{n_pos} anomalous and {n_neg} normal {level} samples"
        out: dict[str, float] = {}
        if n_pos and n_neg:
            out["auroc"] = self._roc / (2.0 * n_pos * n_neg)
        else:
            out["auroc"] = _undefined(level, "AUROC", f"only one class: {counts}")
        if n_pos:
            out["ap"] = self._ap / n_pos
            out["f1max"] = self._f1
        else:
            out["ap"] = _undefined(level, "AP", f"no anomalous samples: {counts}")
            out["f1max"] = _undefined(
                level, "F1-max", f"no anomalous samples: {counts}"
            )
        if self.pro_weights is not None:
            if n_pos and n_neg:
                auc = float(self._pro_area / self.fpr_limit)
                out["aupro"] = min(max(auc, 0.0), 1.0)  # cumsum rounding only
            else:
                out["aupro"] = _undefined(
                    level,
                    "AU-PRO",
                    "no anomalous region" if not n_pos else "no normal pixel",
                )
        return out


# --------------------------------------------------------------------------
# Pixel-level key construction
# --------------------------------------------------------------------------
def _pro_structure() -> np.ndarray:
    """3-D labelling structure: 2-D connectivity inside each image only."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    if PRO_CONNECTIVITY == 8:
        structure[1] = True
    elif PRO_CONNECTIVITY == 4:
        structure[1] = ndimage.generate_binary_structure(2, 1)
    else:
        raise ValueError(f"PRO_CONNECTIVITY must be 4 or 8, got {PRO_CONNECTIVITY}")
    return structure


def _score_keys32(scores: np.ndarray) -> np.ndarray:
    """Map float32 scores to uint32 keys with the same order and equalities."""
    s = scores.astype(np.float32)  # always a copy, safe to modify
    s += np.float32(0.0)  # -0.0 -> +0.0, so that the two zeros tie
    bits = s.view(np.uint32)
    flip = bits >> np.uint32(31)  # 1 for negative numbers
    flip *= _ALL_FLIP
    flip |= _SIGN_FLIP  # negatives: flip all bits; non-negatives: the sign bit
    bits ^= flip
    return bits


def _build_pixel_keys(
    masks: np.ndarray, maps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pack (score, region id) of every pixel into uint64 keys.

    Returns:
        keys: uint64 [N*H*W], unsorted.
        sizes: int64 [n_regions], pixel count of each region (id = index + 1).
        n_pos: number of anomalous pixels.
    """
    n_img, height, width = maps.shape
    per_image = max(height * width, 1)
    step = max(1, _BUILD_CHUNK // per_image)
    structure = _pro_structure()
    keys = np.empty(n_img * height * width, dtype=np.uint64)
    sizes: list[np.ndarray] = []
    n_regions = 0
    for i0 in range(0, n_img, step):
        i1 = min(n_img, i0 + step)
        a, b = i0 * per_image, i1 * per_image
        region, n_new = ndimage.label(masks[i0:i1], structure=structure)
        region = region.reshape(-1)
        sizes.append(np.bincount(region, minlength=n_new + 1)[1:])
        out = keys[a:b]
        np.left_shift(
            _score_keys32(maps[i0:i1].reshape(-1)), _SHIFT32, out=out, dtype=np.uint64
        )
        payload = region.astype(np.uint64)
        if n_regions:
            payload[region != 0] += np.uint64(n_regions)
        np.bitwise_or(out, payload, out=out)
        n_regions += n_new
        del region, payload
    if n_regions >= 1 << 32:
        raise ValueError(f"too many ground-truth regions ({n_regions})")
    size_arr = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)
    return keys, size_arr, int(size_arr.sum())


def _pixel_sweep(masks: np.ndarray, maps: np.ndarray, fpr_limit: float) -> _CurveSweep:
    """Sort all pixels once and sweep them, returning the filled accumulator."""
    keys, sizes, n_pos = _build_pixel_keys(masks, maps)
    n = keys.size
    n_neg = n - n_pos
    weights = np.zeros(sizes.size + 1, dtype=np.float64)
    if sizes.size:
        weights[1:] = 1.0 / (sizes.size * sizes.astype(np.float64))
    sweep = _CurveSweep(n_pos, n_neg, pro_weights=weights, fpr_limit=fpr_limit)
    if n_pos == 0:  # nothing is defined; skip the sort
        return sweep
    keys.sort()
    for b in range(n, 0, -_SWEEP_CHUNK):
        a = max(0, b - _SWEEP_CHUNK)
        chunk = keys[a:b][::-1]
        group = chunk >> _SHIFT32
        payload = chunk & _LOW32
        last_is_end = a == 0 or (keys[a - 1] >> _SHIFT32) != group[-1]
        sweep.update(group, payload, bool(last_is_end))
    return sweep


def _check_fpr_limit(fpr_limit: float) -> float:
    """Validate the AU-PRO integration limit."""
    fpr_limit = float(fpr_limit)
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    return fpr_limit


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------
def image_metrics(labels, scores) -> dict:
    """Image-level AUROC, AP and F1-max.

    Args:
        labels: ground truth per image, shape [N]; bool, or numeric where
            values > 0.5 mean anomalous.
        scores: anomaly score per image, shape [N] (higher = more anomalous).

    Returns:
        ``{"auroc", "ap", "f1max"}`` as floats. A metric that is undefined for
        the input (only one class present) is NaN and a warning is logged.

    Raises:
        ValueError: if the shapes differ or scores contain NaN.
    """
    labels = _to_numpy(labels)
    scores = _to_numpy(scores)
    if labels.shape != scores.shape:
        raise ValueError(
            f"labels and scores must have the same shape, got labels "
            f"{labels.shape} and scores {scores.shape}"
        )
    labels = _as_bool(labels.reshape(-1))
    scores = scores.reshape(-1).astype(np.float64)
    _check_finite(scores, "scores")
    n_pos = int(np.count_nonzero(labels))
    sweep = _CurveSweep(n_pos, labels.size - n_pos)
    if n_pos:
        order = np.argsort(scores, kind="stable")[::-1]
        sweep.update(scores[order], labels[order].view(np.uint8), True)
    return sweep.result("image")


def pixel_metrics(masks, maps, fpr_limit: float = 0.3) -> dict:
    """Pixel-level AUROC, AP, F1-max and AU-PRO (FPR limit 0.3 unless given).

    All metrics are computed from one sort of all N*H*W pixels. Maps are
    compared in float32 (scores that differ only beyond float32 precision
    tie); extra memory is about 8 bytes per pixel plus fixed-size buffers.

    Args:
        masks: ground-truth masks, [N,H,W] (also [H,W] or [N,1,H,W]); bool, or
            numeric where values > 0.5 mean anomalous.
        maps: anomaly maps of the same shape (higher = more anomalous).
        fpr_limit: AU-PRO's upper integration limit, (0, 1]; MVTec uses 0.3.

    Returns:
        ``{"auroc", "ap", "f1max", "aupro"}`` as floats. A metric that is
        undefined for the input (no anomalous or no normal pixel) is NaN and a
        warning is logged.

    Raises:
        ValueError: if the shapes differ or are not image stacks, or the maps
            contain NaN.
    """
    fpr_limit = _check_fpr_limit(fpr_limit)
    masks, maps = _prepare_pixel_inputs(masks, maps)
    return _pixel_sweep(masks, maps, fpr_limit).result("pixel")


def aupro(masks, maps, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD).

    Regions are 8-connected components of each mask (see
    :data:`PRO_CONNECTIVITY`). The result lies in [0, 1]: 1 for a map that
    ranks every anomalous pixel above every normal one.

    Args:
        masks: ground-truth masks, [N,H,W]; bool or numeric (> 0.5 anomalous).
        maps: anomaly maps of the same shape.
        fpr_limit: upper integration limit of the false-positive rate, (0, 1].

    Returns:
        AU-PRO, or NaN (with a logged warning) when there is no anomalous
        region or no normal pixel.
    """
    fpr_limit = _check_fpr_limit(fpr_limit)
    masks, maps = _prepare_pixel_inputs(masks, maps)
    return _pixel_sweep(masks, maps, fpr_limit).result("pixel")["aupro"]


def all_metrics(labels, scores, masks, maps) -> dict:
    """All image- and pixel-level metrics with flat keys (:data:`METRIC_NAMES`).

    Args:
        labels: image-level ground truth [N].
        scores: image-level anomaly scores [N].
        masks: pixel-level ground truth [N,H,W], or None if unavailable.
        maps: anomaly maps [N,H,W], or None if unavailable.

    Returns:
        Dict with keys ``image_auroc, image_ap, image_f1max, pixel_auroc,
        pixel_ap, pixel_f1max, pixel_aupro``. Pixel metrics are NaN when
        masks or maps is None.
    """
    out = {f"image_{k}": v for k, v in image_metrics(labels, scores).items()}
    if masks is None or maps is None:
        logger.info("masks or maps not given: pixel metrics set to nan")
        pixel = dict.fromkeys(("auroc", "ap", "f1max", "aupro"), math.nan)
    else:
        pixel = pixel_metrics(masks, maps)
    out.update({f"pixel_{k}": v for k, v in pixel.items()})
    return {name: out[name] for name in METRIC_NAMES}
