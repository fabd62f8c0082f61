"""The one home for figures people look at: curves and anomaly-map overlays."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402


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


def overlay_figure(
    images: np.ndarray,
    masks: np.ndarray,
    maps: np.ndarray,
    captions: list[str],
    title: str,
) -> plt.Figure:
    """Rows of input / ground truth / anomaly map / map over input."""
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(9, 2.3 * n + 0.6), squeeze=False)
    for i in range(n):
        image = images[i]
        amap = maps[i].astype(np.float32)
        lo, hi = np.percentile(amap, [1, 99.5])
        for ax, content, name in (
            (axes[i, 0], image, "input"),
            (axes[i, 1], masks[i], "ground truth"),
            (axes[i, 2], amap, "anomaly map"),
        ):
            kwargs = (
                {"cmap": "jet", "vmin": lo, "vmax": hi} if name == "anomaly map" else {}
            )
            if name == "ground truth":
                kwargs = {"cmap": "gray", "vmin": 0, "vmax": 1}
            ax.imshow(content, **kwargs)
            ax.set_title(name if i == 0 else "", fontsize=8)
        axes[i, 3].imshow(image)
        axes[i, 3].imshow(amap, cmap="jet", alpha=0.45, vmin=lo, vmax=hi)
        if masks[i].any():
            axes[i, 3].contour(masks[i], levels=[0.5], colors="white", linewidths=0.8)
        axes[i, 3].set_title("overlay" if i == 0 else "", fontsize=8)
        axes[i, 0].set_ylabel(captions[i], fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(textwrap.fill(title, 90), fontsize=9)
    fig.tight_layout()
    return fig


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
