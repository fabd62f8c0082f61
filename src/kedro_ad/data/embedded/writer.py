"""Writing the embedded dataset in MVTec AD layout, once per fingerprint."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from kedro_ad.data.atomic import atomic_path

from .classes import SPECS
from .noise import Array
from .sample import render_sample

logger = logging.getLogger(__name__)


#: Bump whenever the rendered pixels change, so stored datasets are regenerated.
GENERATOR_VERSION = 1
#: Fingerprint + summary file written at the dataset root.
FINGERPRINT_FILE = "embedded.json"


def _save_png(path: Path, array: Array) -> None:
    """Write a uint8 RGB or single-channel array as a deterministic PNG."""
    mode = "L" if array.ndim == 2 else "RGB"
    Image.fromarray(array, mode=mode).save(path, format="PNG", compress_level=1)


def _layout_counts(root: Path, classes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Count the PNGs per class / split / defect folder actually present at ``root``."""
    counts: dict[str, dict[str, Any]] = {}
    for c in classes:
        entry: dict[str, Any] = {"train": {}, "test": {}, "ground_truth": {}}
        for split in entry:
            base = root / c / split
            if base.is_dir():
                for sub in sorted(base.iterdir()):
                    entry[split][sub.name] = sum(1 for _ in sub.glob("*.png"))
        counts[c] = entry
    return counts


def generate_embedded_dataset(
    root: str | os.PathLike[str],
    *,
    seed: int = 0,
    image_size: int = 256,
    n_train: int = 60,
    n_test_good: int = 16,
    n_test_per_defect: int = 8,
    classes: list[str] | None = None,
) -> dict:
    """Generate (or reuse) the embedded dataset at ``root`` in MVTec layout.

    The dataset is written into a temporary sibling folder and renamed into place
    (:func:`kedro_ad.data.atomic.atomic_path`), so ``root`` never holds a
    half-written dataset; a progress bar counts the images. When ``root`` already
    holds a complete dataset generated with the same arguments and generator
    version (see ``embedded.json``) it is reused as is. A ``root`` that exists, is
    not empty and was not written by this generator is never overwritten.

    Returns a summary: classes, class types, defect types, counts per
    class / split / defect folder, seed, image size, generator version, total number
    of images, the root and whether an existing dataset was reused.
    """
    root = Path(root)
    names = list(SPECS) if classes is None else list(classes)
    unknown = [c for c in names if c not in SPECS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(
            f"classes must be distinct names from {list(SPECS)}, got {names}"
        )
    if int(image_size) < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    for label, val in (
        ("n_train", n_train),
        ("n_test_good", n_test_good),
        ("n_test_per_defect", n_test_per_defect),
    ):
        if int(val) < 0:
            raise ValueError(f"{label} must be >= 0, got {val}")
    fingerprint = {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "image_size": int(image_size),
        "n_train": int(n_train),
        "n_test_good": int(n_test_good),
        "n_test_per_defect": int(n_test_per_defect),
        "classes": names,
    }
    fp_path = root / FINGERPRINT_FILE
    if fp_path.is_file():
        try:
            stored = json.loads(fp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
        summary = stored.get("summary")
        if (
            stored.get("fingerprint") == fingerprint
            and isinstance(summary, dict)
            and _layout_counts(root, names) == summary.get("counts")
        ):
            logger.info(
                "embedded dataset at %s matches seed=%d image_size=%d: reusing it",
                root, seed, image_size,
            )  # fmt: skip
            return {**summary, "root": str(root), "reused": True}
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(
            f"{root} exists and holds no {FINGERPRINT_FILE}; refusing to overwrite it"
        )

    t_all = time.perf_counter()
    jobs = {c: _jobs(c, fingerprint) for c in names}
    with (
        atomic_path(root, folder=True) as tmp,
        tqdm(
            total=sum(len(j) for j in jobs.values()),
            desc="Generating the embedded dataset",
            unit="image",
            mininterval=2,
        ) as bar,
    ):
        for c in names:
            t0 = time.perf_counter()
            _write_class(tmp, c, jobs[c], fingerprint, bar)
            logger.info(
                "embedded %-14s (%s, %d defect types) written in %.2f s",
                c, SPECS[c].kind, len(SPECS[c].defects), time.perf_counter() - t0,
            )  # fmt: skip
        n_images = sum(len(j) for j in jobs.values())
        summary = {
            **fingerprint,
            "class_types": {c: SPECS[c].kind for c in names},
            "defects": {c: list(SPECS[c].defects) for c in names},
            "counts": _layout_counts(tmp, names),
            "n_images": n_images,
        }
        payload = {"fingerprint": fingerprint, "summary": summary}
        (tmp / FINGERPRINT_FILE).write_text(
            json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    logger.info(
        "embedded dataset: %d images of %d classes at %s in %.1f s",
        n_images, len(names), root, time.perf_counter() - t_all,
    )  # fmt: skip
    return {**summary, "root": str(root), "reused": False}


Job = tuple[str, str | None, int]  # split, defect (None: good), index


def _jobs(name: str, fp: dict[str, Any]) -> list[Job]:
    """Every image of one class: train/good, test/good, then each defect type."""
    jobs: list[Job] = [("train", None, i) for i in range(fp["n_train"])]
    jobs += [("test", None, i) for i in range(fp["n_test_good"])]
    jobs += [
        ("test", d, i)
        for d in SPECS[name].defects
        for i in range(fp["n_test_per_defect"])
    ]
    return jobs


def _write_class(
    base: Path, name: str, jobs: list[Job], fp: dict[str, Any], bar: tqdm
) -> None:
    """Render and write every image (and mask) of one class."""
    seed, size = fp["seed"], fp["image_size"]
    made: set[Path] = set()
    for split, defect, i in jobs:
        folder = base / name / split / (defect or "good")
        if folder not in made:
            folder.mkdir(parents=True, exist_ok=True)
            made.add(folder)
        image, mask, _ = render_sample(name, i, split, defect, seed, size)
        _save_png(folder / f"{i:03d}.png", image)
        if defect is not None:
            gt = base / name / "ground_truth" / defect
            if gt not in made:
                gt.mkdir(parents=True, exist_ok=True)
                made.add(gt)
            _save_png(gt / f"{i:03d}_mask.png", mask)
        bar.update(1)
