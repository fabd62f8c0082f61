"""The project's parameters read from ``conf/`` without Kedro, as Kedro reads them.

Scripts that run where Kedro is not installed (``bench/`` on a GPU machine, which
has torch, diffusers, timm and OmegaConf) read the network sizes here instead of
keeping copies of the YAML. :func:`load_parameters` follows Kedro's
``OmegaConfigLoader`` for parameters, and a test holds the two equal on this
project's ``conf/``:

* an environment's files are ``parameters*``, ``parameters*/**`` and
  ``**/parameters*`` (``.yml``, ``.yaml``, ``.json``; the patterns of
  ``settings.py``), hidden files skipped; a top-level key in two files of one
  environment is an error;
* each environment is merged and its ``${...}`` interpolations resolved on its
  own (an interpolation in ``base`` sees ``base`` only, never ``paper``'s
  values), so a value several blocks share belongs in one file, e.g. a ``_size``
  key and ``${_size}`` uses in ``parameters_diad.yml``;
* the run environment (``paper``, ``local``) replaces ``base``'s top-level keys
  whole (Kedro's "destructive" merge): ``conf/paper`` repeats a block entirely.

Kedro's own resolvers (``${globals:...}``, ``${runtime_params:...}``) are not
available here; this project's ``conf/`` does not use them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["CONF_DIR", "PATTERNS", "load_parameters"]

#: ``conf/`` of this checkout (``src/kedro_ad/parameters.py`` -> ``conf``).
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
#: Kedro's parameter patterns, as ``settings.py`` sets them.
PATTERNS = ("parameters*", "parameters*/**", "**/parameters*")
_SUFFIXES = {".yml", ".yaml", ".json"}


def _files(folder: Path) -> list[Path]:
    found: set[Path] = set()
    for pattern in PATTERNS:
        for path in folder.glob(pattern):
            hidden = any(
                part.startswith(".") for part in path.relative_to(folder).parts
            )
            if path.is_file() and path.suffix in _SUFFIXES and not hidden:
                found.add(path)
    return sorted(found)


def _environment(folder: Path) -> dict[str, Any]:
    """One environment's parameters, merged across its files and resolved."""
    from omegaconf import OmegaConf

    configs, owner = [], {}
    for path in _files(folder):
        config = OmegaConf.load(path)
        for key in config:
            if key in owner:
                raise ValueError(
                    f"{path}: top-level key {key!r} is also in {owner[key]} "
                    "(Kedro refuses duplicate keys within an environment)"
                )
            owner[key] = path
        configs.append(config)
    if not configs:
        return {}
    return OmegaConf.to_container(OmegaConf.unsafe_merge(*configs), resolve=True)


def load_parameters(
    env: str | None = "base", conf_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Every parameter of ``conf/base`` with environment ``env`` over it.

    Args:
        env: ``"base"`` (or None) for the defaults alone, ``"paper"`` for the
            papers' scale, ``"local"`` for this machine's overrides.
        conf_dir: the ``conf`` folder (default: this checkout's).

    Returns:
        A plain dict, e.g. ``load_parameters("paper")["diffusionad"]["model"]``.
    """
    root = Path(conf_dir) if conf_dir is not None else CONF_DIR
    if not (root / "base").is_dir():
        raise FileNotFoundError(f"{root}: no base/ folder of parameters here")
    params = _environment(root / "base")
    if env and env != "base":
        folder = root / env
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such configuration environment")
        params.update(_environment(folder))
    return params
