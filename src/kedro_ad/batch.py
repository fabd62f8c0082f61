"""Scoring a folder of new images with a registered model: CSV and overlays.

What ``kedro-ad predict`` (:mod:`kedro_ad.console`) and the ``inference``
pipeline share. Images are read by :mod:`kedro_ad.data.io` (the project's one
image reader), grouped into batches of one size, scored by the MLflow pyfunc
model (scores, maps and OK/NG decisions at the threshold it ships) and written
as one row each (path, score, decision) plus an overlay PNG. A file that cannot
be read as an image, or a batch the model refuses, is reported by name and
skipped; the rest goes on. Everything is written under the output folder.

No Kedro import: the console script starts quickly and runs outside a project.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: the columns of predictions.csv and skipped.csv
COLUMNS = ("path", "score", "decision", "threshold", "overlay")
SKIPPED_COLUMNS = ("path", "reason")
OVERLAYS = "overlays"


class BatchError(Exception):
    """A problem that stops the command before any image is scored (one line)."""


@dataclass
class BatchResult:
    """The rows scored and the files skipped, in input order."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def collect_files(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[dict]]:
    """The files named by ``paths``: files as given, folders walked recursively
    (sorted, hidden entries left out). A path that does not exist is reported in
    the second list, never raised."""
    files: list[Path] = []
    missing: list[dict] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                hidden = any(
                    part.startswith(".") for part in found.relative_to(path).parts
                )
                if found.is_file() and not hidden:
                    files.append(found)
        elif path.is_file():
            files.append(path)
        else:
            missing.append({"path": str(path), "reason": "not found"})
    return files, missing


def project_root(start: Path) -> Path | None:
    """The Kedro project holding ``start`` (a ``pyproject.toml`` with
    ``[tool.kedro]``), or None."""
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.kedro]" in pyproject.read_text():
            return folder
    return None


def tracking_uri(start: Path | None = None) -> str:
    """The MLflow store to resolve ``models:/`` URIs in.

    ``MLFLOW_TRACKING_URI`` wins; otherwise the project's
    ``server.mlflow_tracking_uri`` (``conf/base/mlflow.yml``, overridden by
    ``conf/local/mlflow.yml``), a relative ``sqlite:///`` path taken from the
    project root. A sqlite store that does not exist is an error, never created.
    """
    import yaml

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    root = project_root((start or Path.cwd()).resolve())
    if not uri:
        if root is None:
            raise BatchError(
                "no MLflow store: run inside the kedro-ad project or set "
                "MLFLOW_TRACKING_URI"
            )
        for env in ("base", "local"):
            conf = root / "conf" / env / "mlflow.yml"
            if conf.is_file():
                server = (yaml.safe_load(conf.read_text()) or {}).get("server") or {}
                uri = server.get("mlflow_tracking_uri") or uri
    if not uri:
        raise BatchError("no mlflow_tracking_uri in the project's conf/*/mlflow.yml")
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.is_absolute():
            db = (root or Path.cwd()) / db
        if not db.is_file():
            raise BatchError(f"no MLflow store at {db} ({uri}): train a model first")
        uri = f"sqlite:///{db}"
    return uri


def load_model(model_uri: str, store: str, download_dir: Path):
    """The pyfunc model at ``model_uri`` (e.g. ``models:/kedro-ad-diad@champion``),
    its files downloaded into ``download_dir``; :class:`BatchError` when it cannot
    be resolved or loaded."""
    import mlflow

    # the registry follows the tracking URI unless MLFLOW_REGISTRY_URI says other;
    # setting it here would outlive this call in a long-lived process
    mlflow.set_tracking_uri(store)
    try:
        return mlflow.pyfunc.load_model(model_uri, dst_path=str(download_dir))
    except Exception as exc:  # MLflow raises several types for a bad URI
        first = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise BatchError(f"cannot load model {model_uri}: {first}") from exc


def _images(
    files: list[Path], skipped: list[dict]
) -> Iterator[tuple[Path, np.ndarray]]:
    from kedro_ad.data.io import ImageReadError, read_image

    for path in files:
        try:
            yield path, read_image(path)
        except ImageReadError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            logger.warning("skipped %s: %s", path, reason)
            skipped.append({"path": str(path), "reason": reason})


def _batches(
    images: Iterator[tuple[Path, np.ndarray]], batch_size: int
) -> Iterator[list[tuple[Path, np.ndarray]]]:
    """Consecutive images of one size, ``batch_size`` at most."""
    batch: list[tuple[Path, np.ndarray]] = []
    for item in images:
        if batch and (len(batch) == batch_size or item[1].shape != batch[0][1].shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def overlay(image: np.ndarray, amap: np.ndarray, threshold: float, decision: str):
    """The image with its anomaly map as a heat overlay and a frame: red for NG,
    green for OK. The colour scale runs from the map's minimum to
    max(map maximum, threshold): a map that stays below the threshold (the score
    is pooled from the map) stays cool."""
    from matplotlib import colormaps

    amap = np.asarray(amap, dtype=np.float32)
    low, high = float(amap.min()), max(float(amap.max()), float(threshold))
    heat = np.clip((amap - low) / (high - low + 1e-12), 0, 1)
    colours = colormaps["jet"](heat)[..., :3]
    alpha = 0.15 + 0.45 * heat[..., None]  # cool areas barely tinted
    out = (1 - alpha) * (image.astype(np.float32) / 255) + alpha * colours
    out = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    frame = max(2, min(out.shape[:2]) // 40)
    out[:frame], out[-frame:] = 0, 0
    out[:, :frame], out[:, -frame:] = 0, 0
    colour = (220, 30, 30) if decision == "NG" else (30, 170, 60)
    out[:frame], out[-frame:] = colour, colour
    out[:, :frame], out[:, -frame:] = colour, colour
    return out


def _overlay_name(number: int, path: Path) -> str:
    """A flat, safe file name under ``overlays/``: nothing escapes the folder."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:80] or "image"
    return f"{number:05d}_{stem}.png"


def score_files(
    model,
    files: list[Path],
    out_dir: Path,
    batch_size: int = 8,
    class_name: str | None = None,
    progress: bool = True,
) -> BatchResult:
    """Score ``files`` with ``model``, writing ``out_dir/overlays/*.png``.

    Returns the rows (path, score, decision, threshold, overlay relative to
    ``out_dir``) and the skipped files with the reason, both in input order.
    ``class_name``: the class of every image, for models that need one.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    (out_dir / OVERLAYS).mkdir(parents=True, exist_ok=True)
    result = BatchResult()
    bar = tqdm(
        total=len(files), desc="kedro-ad predict", unit="image", disable=not progress
    )
    for batch in _batches(_images(files, result.skipped), max(1, int(batch_size))):
        pixels = np.stack([image for _, image in batch])
        request: Any = pixels
        if class_name is not None:
            request = {"images": pixels, "classes": [class_name] * len(batch)}
        try:
            answer = model.predict(request)
        except Exception as exc:  # the model refused this batch: say so, go on
            reason = "model refused it: " + " ".join(str(exc).split())[:300]
            for path, _ in batch:
                logger.warning("skipped %s: %s", path, reason)
                result.skipped.append({"path": str(path), "reason": reason})
            bar.update(len(batch))
            continue
        threshold = float(answer["threshold"])
        for (path, image), score, decision, amap in zip(
            batch, answer["scores"], answer["decisions"], answer["maps"], strict=True
        ):
            name = f"{OVERLAYS}/{_overlay_name(len(result.rows), path)}"
            Image.fromarray(overlay(image, amap, threshold, str(decision))).save(
                out_dir / name
            )
            result.rows.append(
                {
                    "path": str(path),
                    "score": float(score),
                    "decision": str(decision),
                    "threshold": threshold,
                    "overlay": name,
                }
            )
        bar.update(len(batch))
    bar.update(len(files) - bar.n)  # the unreadable files
    bar.close()
    # the CSV lists files in the order given, whatever the batching did
    order = {str(path): i for i, path in enumerate(files)}
    result.skipped.sort(key=lambda row: order.get(row["path"], -1))
    return result


def tables(result: BatchResult):
    """``(predictions, skipped)`` as DataFrames with :data:`COLUMNS` and
    :data:`SKIPPED_COLUMNS`."""
    import pandas as pd

    return (
        pd.DataFrame(result.rows, columns=list(COLUMNS)),
        pd.DataFrame(result.skipped, columns=list(SKIPPED_COLUMNS)),
    )
