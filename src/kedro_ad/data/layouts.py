"""Turn a dataset folder into a samples table (one row per image).

Each scanner is a pure function of the folder: it lists files and reads no pixels
(``kedro_ad.data.io.describe_files`` does that later, so a broken file is reported
by validation instead of crashing the scan). Rows have the columns in ``COLUMNS``.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

COLUMNS = [
    "class",
    "split",
    "label",
    "defect_type",
    "image_path",
    "mask_path",
    "expected_mask_path",
]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
SOURCES = ("embedded", "mvtec", "visa", "folder")


class DatasetLayoutError(ValueError):
    """A dataset folder does not have the layout its source promises."""


def _images_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    files = (p for p in folder.iterdir() if p.is_file())
    return sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)


def _find_mask(gt_dir: Path, stem: str) -> tuple[str | None, str]:
    """Return (existing mask path or None, the path MVTec's convention expects)."""
    expected = gt_dir / f"{stem}_mask.png"
    if expected.is_file():
        return str(expected), str(expected)
    for candidate in sorted(gt_dir.glob(f"{stem}_mask.*")) + sorted(
        gt_dir.glob(f"{stem}.*")
    ):
        if candidate.suffix.lower() in IMAGE_SUFFIXES:
            return str(candidate), str(expected)
    return None, str(expected)


def _is_mvtec_class(folder: Path) -> bool:
    return (folder / "train").is_dir() or (folder / "test").is_dir()


def _resolve_classes(root: Path, classes, found: list[str]) -> list[str]:
    if classes in (None, "all"):
        if not found:
            raise DatasetLayoutError(
                f"{root}: no class folders with train/ or test/ inside"
            )
        return found
    if isinstance(classes, str):
        classes = [classes]
    missing = [c for c in classes if c not in found]
    if missing:
        raise DatasetLayoutError(
            f"{root}: class folder(s) {missing} not found (found: {found})"
        )
    return list(classes)


def scan_mvtec(root: str | Path, classes="all") -> pd.DataFrame:
    """Samples table of an MVTec AD layout root.

    ``<root>/<class>/{train/good, test/<defect>,``
    ``ground_truth/<defect>/<stem>_mask.png}``
    (one row per image).
    A class folder that exists but holds no train images yields no train rows: the
    validation step reports it (``classes`` tells it which classes to expect).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: dataset folder does not exist")
    found = sorted(p.name for p in root.iterdir() if _is_mvtec_class(p))
    rows = []
    for cls in _resolve_classes(root, classes, found):
        base = root / cls
        for image in _images_in(base / "train" / "good"):
            rows.append((cls, "train", 0, "good", str(image), None, None))
        test_dir = base / "test"
        defects = []
        if test_dir.is_dir():
            defects = sorted(p.name for p in test_dir.iterdir() if p.is_dir())
        for defect in defects:
            for image in _images_in(test_dir / defect):
                if defect == "good":
                    rows.append((cls, "test", 0, "good", str(image), None, None))
                    continue
                mask, expected = _find_mask(base / "ground_truth" / defect, image.stem)
                rows.append((cls, "test", 1, defect, str(image), mask, expected))
    return pd.DataFrame(rows, columns=COLUMNS)


def scan_folder(root: str | Path, classes="all") -> pd.DataFrame:
    """One MVTec-layout class folder (``root/train``) or a root of several."""
    root = Path(root).resolve()
    if _is_mvtec_class(root):
        return scan_mvtec(root.parent, [root.name])
    return scan_mvtec(root, classes)


def _csv_path(value: str) -> str:
    """A path from a split CSV, written with / or with Windows' backslashes."""
    return PureWindowsPath(value).as_posix() if "\\" in value else value


def scan_visa(root: str | Path, classes="all", split_csv: str = "split_csv/1cls.csv"):
    """Samples table of VisA's release layout, driven by its split CSV.

    The CSV has columns object, split, label, image, mask with paths relative to
    ``root``; label is ``normal`` or ``anomaly``. VisA names no defect types in that
    CSV, so anomalous rows get ``defect_type = "anomaly"``.
    """
    root = Path(root)
    csv_path = root / split_csv
    if not csv_path.is_file():
        raise DatasetLayoutError(f"{csv_path}: VisA split CSV not found")
    table = pd.read_csv(csv_path)
    needed = {"object", "split", "label", "image", "mask"}
    if not needed.issubset(table.columns):
        raise DatasetLayoutError(
            f"{csv_path}: columns {sorted(needed - set(table.columns))} missing"
        )
    found = sorted(table["object"].unique())
    keep = _resolve_classes(root, classes, found)
    rows = []
    labels = {"normal": 0, "anomaly": 1}
    for line, rec in enumerate(table.itertuples(index=False), start=2):
        if rec.object not in keep:
            continue
        label = labels.get(str(rec.label).strip().lower())
        split = str(rec.split).strip().lower()
        if label is None or split not in ("train", "test"):
            raise DatasetLayoutError(
                f"{csv_path}: line {line}: label must be normal/anomaly and split "
                f"train/test, got label={rec.label!r} split={rec.split!r}"
            )
        image = str(root / _csv_path(rec.image))
        mask = expected = None
        if label:
            mask_rel = rec.mask if isinstance(rec.mask, str) and rec.mask else None
            expected = str(root / _csv_path(mask_rel)) if mask_rel else None
            mask = expected if expected and Path(expected).is_file() else None
        defect = "anomaly" if label else "good"
        rows.append((rec.object, split, label, defect, image, mask, expected))
    return pd.DataFrame(rows, columns=COLUMNS)


def scan_dataset(source: str, root: str | Path, classes="all") -> pd.DataFrame:
    """Dispatch on ``data.source``; ``embedded`` roots are MVTec layout."""
    if source in ("embedded", "mvtec"):
        return scan_mvtec(root, classes)
    if source == "folder":
        return scan_folder(root, classes)
    if source == "visa":
        return scan_visa(root, classes)
    renamed = " (the embedded dataset's source is now 'embedded')"
    raise DatasetLayoutError(
        f"data.source={source!r} is not one of {SOURCES}"
        + (renamed if source == "synthetic" else "")
    )


def assign_validation_split(
    rows: pd.DataFrame, val_fraction: float, seed: int
) -> pd.DataFrame:
    """Move a seeded fraction of each class's train images to ``split = "val"``.

    The validation split is the only data used to choose checkpoints and
    normalisation statistics; the test split never is.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"data.val_fraction must be in (0, 1), got {val_fraction}: a validation "
            "split is required to choose checkpoints and normalisation"
        )
    rows = rows.copy()
    for cls in sorted(rows["class"].unique()):
        # one generator per class: a class's split does not depend on which other
        # classes are selected
        rng = np.random.default_rng([seed, zlib.crc32(str(cls).encode())])
        idx = rows.index[(rows["class"] == cls) & (rows["split"] == "train")]
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        if n_val:
            chosen = rng.choice(np.asarray(idx), size=n_val, replace=False)
            rows.loc[chosen, "split"] = "val"
    return rows.reset_index(drop=True)
