"""Test helpers: tiny dataset folders in the layouts the project reads, and a slow
reference AU-PRO that metric results are checked against."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from kedro_ad.data.datasets import ArraysDataset

EIGHT = np.ones((3, 3), dtype=int)  # MVTec AD reference structure


def _image(rng: np.random.Generator, size: int, gray: bool) -> Image.Image:
    """A smooth random image: a gradient plus noise, unique for each call."""
    ramp = np.linspace(0, 160, size, dtype=np.float32)
    base = ramp[None, :] + ramp[:, None] / 2
    shape = (size, size) if gray else (size, size, 3)
    noise = rng.normal(0, 20, shape).astype(np.float32)
    pixels = (base if gray else base[..., None]) + noise + rng.uniform(0, 60)
    array = np.clip(pixels, 0, 255).astype(np.uint8)
    return Image.fromarray(array, mode="L" if gray else "RGB")


def _mask(rng: np.random.Generator, size: int) -> Image.Image:
    """A 0/255 mask holding one non-empty rectangle."""
    mask = np.zeros((size, size), dtype=np.uint8)
    h, w = rng.integers(2, max(3, size // 3), size=2)
    top, left = rng.integers(0, size - h), rng.integers(0, size - w)
    mask[top : top + h, left : left + w] = 255
    return Image.fromarray(mask, mode="L")


def make_mvtec_tree(
    root: str | Path,
    classes: Iterable[str] = ("widget",),
    n_train: int = 6,
    n_test_good: int = 2,
    defects: Iterable[str] = ("scratch",),
    n_per_defect: int = 2,
    size: int = 32,
    seed: int = 0,
    gray_classes: Iterable[str] = (),
) -> Path:
    """Write a tiny, valid MVTec AD layout under ``root`` and return ``root``.

    ``<root>/<class>/train/good/000.png``, ``test/good``, ``test/<defect>`` and
    ``ground_truth/<defect>/<stem>_mask.png`` (0/255, one non-empty rectangle).
    Every image differs from every other (distinct sha256). Classes listed in
    ``gray_classes`` get grayscale (mode L) images, the others RGB.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    gray_classes = set(gray_classes)
    for cls in classes:
        base = root / cls
        gray = cls in gray_classes
        folders = [("train/good", n_train), ("test/good", n_test_good)]
        folders += [(f"test/{defect}", n_per_defect) for defect in defects]
        for folder, count in folders:
            (base / folder).mkdir(parents=True, exist_ok=True)
            defect = folder.split("/")[1]
            for i in range(count):
                _image(rng, size, gray).save(base / folder / f"{i:03d}.png")
                if folder.startswith("test/") and defect != "good":
                    gt = base / "ground_truth" / defect
                    gt.mkdir(parents=True, exist_ok=True)
                    _mask(rng, size).save(gt / f"{i:03d}_mask.png")
    return root


# Slow, obviously correct reference of AU-PRO (MVTec AD's definition): the tests
# check kedro_ad.metrics and the evaluation tables against it.
def reference_pro_curve(masks, maps, structure=EIGHT):
    """(FPR, PRO) at every unique threshold, starting at (0, 0)."""
    regions = []
    for i, mask in enumerate(masks):
        lab, n = ndimage.label(mask, structure=structure)
        regions += [(i, lab == k) for k in range(1, n + 1)]
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        fprs.append(np.sum(pred & normal) / np.sum(normal))
        pros.append(np.mean([pred[i][r].mean() for i, r in regions]))
    return np.array(fprs), np.array(pros)


def reference_aupro(masks, maps, fpr_limit=0.3, structure=EIGHT):
    """Trapezoid area of the PRO curve up to fpr_limit, divided by the limit."""
    fpr, pro = reference_pro_curve(masks, maps, structure)
    keep = fpr <= fpr_limit  # a prefix: fpr is non-decreasing
    x, y = fpr[keep], pro[keep]
    if x[-1] < fpr_limit:
        j = int(keep.sum())
        y_lim = np.interp(fpr_limit, fpr[j - 1 : j + 1], pro[j - 1 : j + 1])
        x, y = np.append(x, fpr_limit), np.append(y, y_lim)
    return float(np.trapezoid(y, x) / fpr_limit)


def git(root: str | Path, *args: str) -> str:
    """Run git in a throw-away repository (its own identity, no user config)."""
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


# A tiny embedded dataset: whole Kedro sessions on it take seconds.
SMALL_SYNTHETIC = {
    "data.source": "embedded",
    "data.image_size": 32,
    "data.val_fraction": 0.25,
    "data.embedded.raw_size": 64,
    "data.embedded.n_train": 12,
    "data.embedded.n_test_good": 3,
    "data.embedded.n_test_per_defect": 2,
    "validation.min_train_images": 8,
    "evaluation.n_overlays": 2,
}


def nested(flat: dict) -> dict:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``, as ``kedro run --params`` does."""
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def run_session(root: Path, pipeline: str | None, params: dict):
    """``kedro run [--pipeline P] --params ...`` in the project at ``root``."""
    from kedro.framework.session import KedroSession

    runtime = nested(params)
    with KedroSession.create(project_path=root, runtime_params=runtime) as session:
        return session.run(pipeline_names=[pipeline] if pipeline else None)


def class_means(root: Path, method: str, aupro: bool = True) -> dict[str, float]:
    """The class-mean metrics of a method's stored test predictions, recomputed
    here by independent code (scikit-learn, the reference AU-PRO), so a pipeline
    that evaluated the wrong rows, maps or classes would disagree."""
    arrays = ArraysDataset(str(root / "data/05_model_input/dataset_arrays.npz")).load()
    predictions = ArraysDataset(
        str(root / f"data/07_model_output/{method}/predictions.npz")
    ).load()
    index = predictions["index"]
    assert (arrays["splits"][index] == "test").all()
    per_class = []
    for cls in sorted(set(arrays["classes"][index].tolist())):
        rows = np.flatnonzero(arrays["classes"][index] == cls)
        labels = arrays["labels"][index[rows]]
        masks = arrays["masks"][index[rows]]
        maps = predictions["maps"][rows].astype(np.float32)
        values = {
            "image_auroc": roc_auc_score(labels, predictions["scores"][rows]),
            "pixel_auroc": roc_auc_score(masks.ravel(), maps.ravel()),
        }
        if aupro:
            values["pixel_aupro"] = reference_aupro(masks, maps)
        per_class.append(values)
    return {k: float(np.mean([v[k] for v in per_class])) for k in per_class[0]}
