"""Custom Kedro datasets of the project."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError


class ArraysDataset(AbstractDataset[dict[str, np.ndarray], dict[str, np.ndarray]]):
    """A dict of numpy arrays in one uncompressed ``.npz`` file.

    Saving writes a temporary file beside the target and renames it into place, so
    an interrupted run never leaves a half-written file behind. Strings are stored
    as numpy unicode arrays, so loading needs no pickle.
    """

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def _load(self) -> dict[str, np.ndarray]:
        path = Path(self._filepath)
        if not path.is_file():
            raise DatasetError(
                f"{path}: file does not exist (run the step that makes it)"
            )
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def _save(self, data: dict[str, np.ndarray]) -> None:
        path = Path(self._filepath)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {key: np.asarray(value) for key, value in data.items()}
        for key, value in arrays.items():
            if value.dtype == object:
                raise DatasetError(f"{path}: array '{key}' has dtype object")
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            # mkstemp makes the file owner-only; give it the usual umask permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
