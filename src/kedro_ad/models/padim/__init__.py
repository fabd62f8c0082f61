"""PaDiM: per-position Gaussians over pretrained features (Defard et al., 2020).

:func:`build_padim` makes an unfitted model from settings; :func:`padim_to_arrays`
and :func:`padim_from_arrays` turn a fitted one into a dict of numpy arrays and
JSON values (what a model folder stores) and back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from kedro_ad.models.backbones import backbone_from_settings

from .anomaly_map import mahalanobis_sq
from .torch_model import PadimModel, select_channels

__all__ = [
    "PadimModel",
    "build_padim",
    "mahalanobis_sq",
    "padim_from_arrays",
    "padim_to_arrays",
    "select_channels",
]


def build_padim(
    backbone: Mapping[str, Any],
    n_features: int,
    class_names: Sequence[str],
    image_size: int,
    sigma: float = 4.0,
    eps: float = 0.01,
    seed: int = 0,
) -> PadimModel:
    """An unfitted :class:`PadimModel` with a seeded random channel subset."""
    extractor = backbone_from_settings(backbone)
    index = select_channels(sum(extractor.out_channels), int(n_features), seed)
    model = PadimModel(extractor, index, class_names, image_size, sigma, eps)
    model.backbone_settings = dict(backbone)
    return model


def padim_to_arrays(model: PadimModel, extra: Mapping[str, Any] | None = None) -> dict:
    """A fitted model as numpy arrays plus one JSON ``config`` (float32 tensors)."""
    config = {
        "backbone": dict(getattr(model, "backbone_settings", {})),
        "class_names": list(model.class_names),
        "image_size": model.image_size,
        "sigma": model.sigma,
        "eps": model.eps,
    }
    return {
        "config": config,
        "channel_index": model.channel_index.numpy(),
        "mean": model.mean.numpy().astype(np.float32),
        "inv_covariance": model.inv_covariance.numpy().astype(np.float32),
        **dict(extra or {}),
    }


def padim_from_arrays(arrays: Mapping[str, Any]) -> PadimModel:
    """Rebuild a fitted :class:`PadimModel` from :func:`padim_to_arrays` output."""
    config = arrays["config"]
    extractor = backbone_from_settings(config["backbone"])
    model = PadimModel(
        extractor,
        np.asarray(arrays["channel_index"]),
        config["class_names"],
        config["image_size"],
        config["sigma"],
        config["eps"],
    )
    model.backbone_settings = dict(config["backbone"])
    model.mean = torch.as_tensor(np.asarray(arrays["mean"], dtype=np.float32))
    model.inv_covariance = torch.as_tensor(
        np.asarray(arrays["inv_covariance"], dtype=np.float32)
    )
    return model
