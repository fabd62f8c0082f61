"""RAN: anomalies removed as noise by a diffusion model (Lu et al., ICCV 2023).

:func:`build_ran` makes a model from settings; :func:`ran_to_parts` and
:func:`ran_from_parts` turn it into a model folder's dict (the UNet as a diffusers
model, the scheduler config and settings as JSON, statistics as arrays) and back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler

from kedro_ad.models.backbones import backbone_from_settings
from kedro_ad.models.padim import select_channels

from .anomaly_map import (
    ensemble,
    feature_mahalanobis_map,
    feature_mse_map,
    fit_residual_gaussian,
    kl_weights,
    pixel_kl_map,
)
from .repair import gradient_denoise
from .torch_model import RanModel, concat_features
from .unet import RanUNet

__all__ = [
    "RanModel",
    "RanUNet",
    "build_ran",
    "concat_features",
    "ensemble",
    "feature_mahalanobis_map",
    "feature_mse_map",
    "fit_residual_gaussian",
    "gradient_denoise",
    "kl_weights",
    "pixel_kl_map",
    "ran_from_parts",
    "ran_to_parts",
]

_STATS = (
    "pixel_score_mean",
    "pixel_score_std",
    "feature_score_mean",
    "feature_score_std",
)
# the feature errors' Gaussian (feature_metric mahalanobis; empty for mse)
_RESIDUAL = ("residual_mean", "residual_inv_covariance")


def _scoring(model: RanModel) -> dict[str, Any]:
    return {
        "timesteps": model.timesteps,
        "alpha": model.alpha,
        "sigma": model.sigma,
        "noise_samples": model.noise_samples,
        "normalize_features": model.normalize_features,
        "feature_image_size": model.feature_image_size,
        "feature_metric": model.feature_metric,
        "normalisation": model.normalisation,
        "residual_eps": model.residual_eps,
    }


def build_ran(
    model: Mapping[str, Any],
    scoring: Mapping[str, Any],
    class_names: Sequence[str],
    feature_image_size: int | None = None,
    seed: int = 0,
) -> RanModel:
    """A fresh :class:`RanModel` from the ``model`` and ``scoring`` parameters.

    ``feature_image_size``: the side the backbone sees (default: the UNet's).
    """
    extractor = backbone_from_settings(model["backbone"])
    size = int(model["image_size"])
    feature_image_size = int(feature_image_size or size)
    grid = feature_image_size // int(extractor.reductions[0])
    if size % grid:
        raise ValueError(
            f"ran: model.image_size {size} is not a multiple of the {grid}x{grid} "
            f"feature grid of {feature_image_size}px images"
        )
    torch.manual_seed(seed)
    unet = RanUNet(
        sample_size=size,
        class_names=[str(c) for c in class_names],
        feature_channels=sum(extractor.out_channels),
        feature_stride=size // grid,
        block_out_channels=tuple(model["block_out_channels"]),
        layers_per_block=int(model["layers_per_block"]),
        attention=tuple(bool(a) for a in model["attention"]),
        norm_num_groups=int(model.get("norm_num_groups", 8)),
        attention_head_dim=int(model.get("attention_head_dim", 8)),
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=int(model.get("num_train_timesteps", 1000)),
        beta_schedule=str(model.get("beta_schedule", "linear")),
    )
    kwargs = _scoring_kwargs(scoring)
    channels = sum(extractor.out_channels)
    d = scoring.get("residual_features")
    if kwargs["feature_metric"] == "mahalanobis" and d is not None:
        if not 1 <= int(d) <= channels:
            raise ValueError(
                f"ran: scoring.residual_features {d} not in [1, {channels}]"
            )
        # a seeded random subset of channels, as PaDiM keeps its Gaussians small
        kwargs["residual_channels"] = select_channels(channels, int(d), seed).tolist()
    ran = RanModel(
        unet,
        extractor,
        scheduler,
        feature_image_size=feature_image_size,
        **kwargs,
    )
    ran.backbone_settings = dict(model["backbone"])
    return ran


def _scoring_kwargs(scoring: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "timesteps": [int(t) for t in scoring["timesteps"]],
        "alpha": float(scoring["alpha"]),
        "sigma": float(scoring["smoothing_sigma"]),
        "noise_samples": int(scoring.get("noise_samples", 1)),
        "normalize_features": bool(scoring.get("normalize_features", False)),
        "feature_metric": str(scoring.get("feature_metric", "mse")),
        "normalisation": str(scoring.get("normalisation", "class")),
        "residual_eps": float(scoring.get("residual_eps", 0.01)),
    }


def ran_to_parts(model: RanModel) -> dict[str, Any]:
    """The model as a model folder's dict: diffusers UNet, JSON and arrays."""
    parts: dict[str, Any] = {
        "unet": model.unet,
        "scheduler": {
            k: v
            for k, v in dict(model.scheduler.config).items()
            if not k.startswith("_")
        },
        "config": {"backbone": dict(model.backbone_settings), **_scoring(model)},
    }
    for name in (*_STATS, *_RESIDUAL):
        parts[name] = getattr(model, name).cpu().numpy().astype(np.float32)
    parts["residual_index"] = model.residual_index.cpu().numpy()
    return parts


def ran_from_parts(parts: Mapping[str, Any]) -> RanModel:
    """Rebuild a :class:`RanModel` from :func:`ran_to_parts` output."""
    config = dict(parts["config"])
    scheduler = DDPMScheduler.from_config(dict(parts["scheduler"]))
    model = RanModel(
        parts["unet"],
        backbone_from_settings(config["backbone"]),
        scheduler,
        timesteps=config["timesteps"],
        alpha=config["alpha"],
        sigma=config["sigma"],
        noise_samples=config["noise_samples"],
        normalize_features=config["normalize_features"],
        feature_image_size=config["feature_image_size"],
        feature_metric=config.get("feature_metric", "mse"),
        normalisation=config.get("normalisation", "class"),
        residual_channels=(
            np.asarray(parts["residual_index"]).tolist()
            if "residual_index" in parts
            else None
        ),
        residual_eps=config.get("residual_eps", 0.01),
    )
    model.backbone_settings = dict(config["backbone"])
    for name in _STATS:
        buffer = getattr(model, name)
        stored = torch.as_tensor(np.asarray(parts[name]))
        if stored.ndim == 2:  # a model saved before per-position statistics
            stored = stored[..., None, None]
        buffer.copy_(stored.expand_as(buffer))
    for name in _RESIDUAL:
        if name in parts:
            setattr(model, name, torch.as_tensor(np.asarray(parts[name])))
    return model.eval()
