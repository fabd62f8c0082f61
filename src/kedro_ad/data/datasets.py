"""Custom Kedro datasets of the project."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from kedro.io import AbstractDataset, DatasetError

from kedro_ad.data.atomic import atomic_path


class ArraysDataset(AbstractDataset[dict[str, np.ndarray], dict[str, np.ndarray]]):
    """A dict of numpy arrays in one uncompressed ``.npz`` file.

    Saving writes a temporary file beside the target and renames it into place, so
    an interrupted run never leaves a half-written file behind. Strings are stored
    as numpy unicode arrays, so loading needs no pickle.

    ``version_key``: when set, loading adds that key holding the file's MD5 (hex).
    numpy writes ``.npz`` files byte-for-byte reproducibly (fixed zip timestamps),
    so the MD5 is a content hash of the arrays, and it is the hash DVC records for
    the file in ``dvc.lock``: the catalog's ``dataset_arrays`` names the version of
    the data every model saw (``data_version``). The key is never saved.
    """

    def __init__(
        self,
        filepath: str,
        version_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self._filepath = PurePosixPath(filepath)
        self._version_key = version_key
        self.metadata = metadata

    def _load(self) -> dict[str, np.ndarray]:
        path = Path(self._filepath)
        if not path.is_file():
            raise DatasetError(
                f"{path}: file does not exist (run the step that makes it)"
            )
        with np.load(path, allow_pickle=False) as data:
            out = {key: data[key] for key in data.files}
        if self._version_key:
            out[self._version_key] = np.asarray(file_md5(path))
        return out

    def _save(self, data: dict[str, np.ndarray]) -> None:
        path = Path(self._filepath)
        arrays = {
            key: np.asarray(value)
            for key, value in data.items()
            if key != self._version_key
        }
        for key, value in arrays.items():
            if value.dtype == object:
                raise DatasetError(f"{path}: array '{key}' has dtype object")
        with atomic_path(path) as tmp:
            np.savez(tmp, **arrays)

    def _exists(self) -> bool:
        return Path(self._filepath).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "version_key": self._version_key}


def file_md5(path: str | Path) -> str:
    """Hex MD5 of a file's bytes: what DVC 3 records for a file it tracks."""
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


class ModelFolderDataset(AbstractDataset[dict[str, Any], dict[str, Any]]):
    """A trained model as a folder: a dict of networks, arrays and settings.

    Values that are diffusers models (``ModelMixin``: anything with
    ``save_pretrained``/``from_pretrained``) go to ``<folder>/<key>/`` with their
    config, numpy arrays to ``arrays.npz``, everything else to ``manifest.json``
    (so it must be JSON-able). Loading imports each network's class and rebuilds
    it with ``from_pretrained`` in eval mode. The folder is written beside the
    target and renamed into place: an interrupted save leaves the old model intact.
    The folder is also what kedro-mlflow logs as the registered model's artifact.
    """

    MANIFEST = "manifest.json"

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = PurePosixPath(filepath)
        self.metadata = metadata

    def _load(self) -> dict[str, Any]:
        import importlib
        import json

        path = Path(self._filepath)
        manifest_file = path / self.MANIFEST
        if not manifest_file.is_file():
            raise DatasetError(
                f"{path}: no trained model here (no {self.MANIFEST}); "
                "run the pipeline that trains it"
            )
        manifest = json.loads(manifest_file.read_text())
        out: dict[str, Any] = dict(manifest["values"])
        for key, class_path in manifest["modules"].items():
            module_name, _, class_name = class_path.rpartition(".")
            cls = getattr(importlib.import_module(module_name), class_name)
            out[key] = cls.from_pretrained(str(path / key)).eval()
        if manifest["arrays"]:
            with np.load(path / "arrays.npz", allow_pickle=False) as data:
                out.update({key: data[key] for key in manifest["arrays"]})
        return out

    def _save(self, data: dict[str, Any]) -> None:
        import json

        path = Path(self._filepath)
        with atomic_path(path, folder=True) as tmp:
            manifest: dict[str, Any] = {"modules": {}, "arrays": [], "values": {}}
            arrays = {}
            for key, value in data.items():
                if hasattr(value, "save_pretrained"):
                    value.save_pretrained(str(tmp / key))
                    cls = type(value)
                    manifest["modules"][key] = f"{cls.__module__}.{cls.__qualname__}"
                elif isinstance(value, np.ndarray | np.generic):
                    if np.asarray(value).dtype == object:
                        raise DatasetError(f"{path}: array '{key}' has dtype object")
                    arrays[key] = np.asarray(value)
                    manifest["arrays"].append(key)
                elif hasattr(value, "state_dict"):
                    raise DatasetError(
                        f"{path}: '{key}' is a {type(value).__name__} without "
                        "save_pretrained; make it a diffusers ModelMixin/ConfigMixin"
                    )
                else:
                    manifest["values"][key] = value
            if arrays:
                np.savez(tmp / "arrays.npz", **arrays)
            try:
                text = json.dumps(manifest, indent=1, sort_keys=True)
            except TypeError as exc:
                raise DatasetError(
                    f"{path}: a setting is not JSON-able: {exc}"
                ) from exc
            (tmp / self.MANIFEST).write_text(text)

    def _exists(self) -> bool:
        return (Path(self._filepath) / self.MANIFEST).is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
