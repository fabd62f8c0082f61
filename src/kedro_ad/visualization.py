"""The one home for figures people look at: curves, grids of images and maps.

Nodes decide what to show; the drawing happens here, so every method's figures
share colour maps, ranges and layout:

* :func:`roc_pr_figure`, :func:`training_figure` -- curves;
* :func:`panel_figure` -- a grid of :class:`Panel` rows (input, reconstruction,
  anomaly map, mask, ...), what every method's reconstruction figure is, of the
  images :func:`examples_per_class` picks;
* :func:`overlay_figure` -- input / ground truth / map / map over input rows;
* :func:`samples_figure` -- images with outlined masks; :func:`message_figure`;
* :func:`comparison_figure` -- methods side by side per data version.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd


def roc_pr_figure(
    labels: np.ndarray, scores: np.ndarray, classes: np.ndarray, title: str
) -> plt.Figure:
    """Image-level ROC and precision-recall curves, one line per class."""
    fig, (ax_roc, ax_pr) = plt.subplots(1, 2, figsize=(11, 4.6))
    for cls in sorted(set(classes.tolist())):
        sel = classes == cls
        y, s = labels[sel], scores[sel]
        if len(set(y.tolist())) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        ax_roc.plot(fpr, tpr, label=cls, lw=1.4)
        ax_pr.plot(recall, precision, label=cls, lw=1.4)
    ax_roc.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall")
    for ax in (ax_roc, ax_pr):
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    ax_pr.legend(fontsize=8, loc="lower left")
    fig.suptitle(textwrap.fill(title, 130), fontsize=9)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class Panel:
    """One picture of a :func:`panel_figure` row.

    Attributes:
        content: an RGB image ``(H, W, 3)`` (float in ``[0, 1]`` or uint8), or a
            2-D array drawn with a colour map.
        title: the column's title (shown above the first row).
        kind: how a 2-D ``content`` is drawn: ``"map"`` (jet, from the 1st to the
            99.5th percentile unless ``vmin``/``vmax`` are given: an anomaly map),
            ``"mask"`` (gray, 0 to 1), ``"heat"`` (magma, own range: a difference).
            RGB content ignores it.
        outline: a boolean mask drawn as a contour over the panel (a defect).
        overlay: an anomaly map drawn translucent over ``content`` (jet, ranged
            as ``"map"``).
        vmin, vmax: the colour range, when the kind's default is not wanted.
    """

    content: np.ndarray
    title: str = ""
    kind: str = "map"
    outline: np.ndarray | None = None
    overlay: np.ndarray | None = None
    vmin: float | None = None
    vmax: float | None = None


_CMAPS = {"map": "jet", "mask": "gray", "heat": "magma"}


def _robust_range(values: np.ndarray) -> tuple[float, float]:
    """1st and 99.5th percentiles: one hot pixel does not wash out the map."""
    lo, hi = np.percentile(values.astype(np.float32), [1, 99.5])
    return float(lo), float(hi)


def _draw(ax: plt.Axes, panel: Panel, outline_color: str) -> None:
    content = np.asarray(panel.content)
    if content.ndim == 3:
        kwargs = {}
    else:
        if panel.kind not in _CMAPS:
            raise ValueError(f"panel kind {panel.kind!r}: use one of {list(_CMAPS)}")
        lo, hi = {"map": _robust_range(content), "mask": (0.0, 1.0)}.get(
            panel.kind, (None, None)
        )
        kwargs = {
            "cmap": _CMAPS[panel.kind],
            "vmin": panel.vmin if panel.vmin is not None else lo,
            "vmax": panel.vmax if panel.vmax is not None else hi,
        }
    ax.imshow(content, **kwargs)
    if panel.overlay is not None:
        lo, hi = _robust_range(np.asarray(panel.overlay))
        ax.imshow(panel.overlay, cmap="jet", alpha=0.45, vmin=lo, vmax=hi)
    if panel.outline is not None and np.asarray(panel.outline).any():
        ax.contour(panel.outline, levels=[0.5], colors=outline_color, linewidths=0.8)
    ax.set_xticks([])
    ax.set_yticks([])


def examples_per_class(
    classes: np.ndarray, labels: np.ndarray, limit: int
) -> list[int]:
    """Rows a method's figure shows: the first anomalous image of each class (in
    class order), at most ``limit``; the same images in every method's figure."""
    rows = []
    for cls in sorted(set(classes.tolist())):
        anomalous = np.flatnonzero((classes == cls) & (labels == 1))
        if len(anomalous):
            rows.append(int(anomalous[0]))
    return rows[: int(limit)]


def panel_figure(
    rows: Sequence[Sequence[Panel]],
    row_labels: Sequence[str],
    title: str,
    outline_color: str = "white",
) -> plt.Figure:
    """A grid with one row of :class:`Panel` per image, its label on the left.

    Column titles come from the first row's panels. Every method's figure of
    inputs, reconstructions and maps is one of these.
    """
    n_rows, n_cols = len(rows), max((len(r) for r in rows), default=1)
    fig, axes = plt.subplots(
        max(n_rows, 1),
        n_cols,
        figsize=(2.25 * n_cols, 2.3 * n_rows + 0.6),
        squeeze=False,
    )
    for ax in axes.ravel():
        ax.axis("off")
    for i, (row, label) in enumerate(zip(rows, row_labels, strict=True)):
        for ax, panel in zip(axes[i], row, strict=False):
            ax.axis("on")
            _draw(ax, panel, outline_color)
            ax.set_title(panel.title if i == 0 else "", fontsize=8)
        axes[i, 0].set_ylabel(label, fontsize=7)
    fig.suptitle(textwrap.fill(title, 15 * n_cols), fontsize=9)
    fig.tight_layout()
    return fig


def overlay_figure(
    images: np.ndarray,
    masks: np.ndarray,
    maps: np.ndarray,
    captions: list[str],
    title: str,
) -> plt.Figure:
    """Rows of input / ground truth / anomaly map / map over input."""
    rows = [
        [
            Panel(image, "input"),
            Panel(mask, "ground truth", kind="mask"),
            Panel(amap.astype(np.float32), "anomaly map"),
            Panel(image, "overlay", outline=mask, overlay=amap.astype(np.float32)),
        ]
        for image, mask, amap in zip(images, masks, maps, strict=True)
    ]
    return panel_figure(rows, captions, title)


def samples_figure(
    rows: list[list[tuple[np.ndarray, np.ndarray, str]]], title: str
) -> plt.Figure:
    """A grid, one row per list of (image, mask, caption), masks outlined in red."""
    n_cols = max(len(row) for row in rows)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(1.9 * n_cols, 2.0 * len(rows) + 0.5), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax_row, row in zip(axes, rows, strict=True):
        for ax, (image, mask, caption) in zip(ax_row, row, strict=False):
            ax.imshow(image)
            if mask.any():
                ax.contour(mask, levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(caption, fontsize=7)
    title = textwrap.fill(title, 110)
    fig.suptitle(title, fontsize=9)
    # keep room for the title's lines above the first row of captions
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.2 * (title.count("\n") + 1) / height))
    return fig


def message_figure(text: str) -> plt.Figure:
    """A figure that only says why there is nothing to draw."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10)
    return fig


def training_figure(history: dict[str, list[dict]], title: str) -> plt.Figure:
    """Loss and validation curves of one training run (a ``TrainResult.history``).

    One panel for the losses (log scale) and one for the validation metrics, so a
    run that stopped improving, or a checkpoint chosen early, shows at a glance.
    """
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, points in history.items():
        if not points:
            continue
        steps = [p["step"] for p in points]
        values = [p["value"] for p in points]
        ax = ax_val if name.startswith("val") else ax_loss
        ax.plot(steps, values, marker="." if len(points) < 30 else None, label=name)
    ax_loss.set(xlabel="step", ylabel="training loss", title="training losses")
    if any(line.get_ydata().min() > 0 for line in ax_loss.get_lines()):
        ax_loss.set_yscale("log")
    ax_val.set(xlabel="step", title="validation split (checkpoint selection)")
    for ax in (ax_loss, ax_val):
        if ax.get_lines():
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(textwrap.fill(title, 110), fontsize=9)
    fig.tight_layout()
    return fig


def comparison_figure(means: dict[str, pd.DataFrame]) -> plt.Figure:
    """Methods side by side: class-mean image AUROC, pixel AUROC and AU-PRO, one
    row of bars per data version (``means``: version -> the ``mean`` rows of the
    comparison table, one per method)."""
    shown = [
        ("image_auroc", "image AUROC"),
        ("pixel_auroc", "pixel AUROC"),
        ("pixel_aupro", "AU-PRO"),
    ]
    fig, axes = plt.subplots(
        len(means), 1, figsize=(10, 3.2 * len(means)), squeeze=False
    )
    for ax, (version, rows) in zip(axes[:, 0], means.items(), strict=True):
        methods = rows["method"].tolist()
        x = np.arange(len(methods))
        width = 0.8 / len(shown)
        for i, (column, label) in enumerate(shown):
            values = 100 * rows[column].to_numpy(dtype=float)
            bars = ax.bar(x + (i - 1) * width, values, width, label=label)
            ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
        ax.set_xticks(x, methods)
        ax.set_ylim(0, 105)
        ax.set_ylabel("percent (test split)")
        ax.set_title(f"data version {version}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
