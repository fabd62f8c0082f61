"""Project pipelines: the building blocks, and what users run end to end.

Each folder under ``pipelines/`` is a building block (``create_pipeline``). The names
users type compose them: ``kedro run --pipeline diad`` runs ingestion, validation,
anomaly synthesis, the autoencoder, DiAD and its evaluation in one go, from a fresh
clone. A method that can be served is wrapped by kedro-mlflow's
``pipeline_ml_factory`` (:func:`kedro_ad.serving.served`): at the end of its run the
inference pipeline and the trained weights are logged as one MLflow pyfunc model and
registered as ``kedro-ad-<method>``.

Every method block also chooses its decision threshold on ``synthetic_validation``
with its own predict node (:mod:`kedro_ad.pipelines.threshold`), and the served
model answers with OK/NG decisions at that threshold (:mod:`kedro_ad.serving`):
no method's own pipeline holds a line of this.

Every node carries a tag naming its building block, so ``dvc.yaml`` re-runs one
block of a composite (``kedro run --pipeline diad --tags diad``) and the model is
still registered.

Beside them: ``promote`` (move the ``champion`` alias to a better model version),
``inference`` (score a folder of images with a registered model) and ``compare``
(every method's stored predictions side by side, per data version).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging

from kedro.pipeline import Pipeline

from kedro_ad.serving import served

logger = logging.getLogger(__name__)

DATA = ("data_ingestion", "data_validation")
SYNTH = (*DATA, "anomaly_synthesis")
# name -> (building blocks in order, methods compared in one table, model served)
COMPOSITES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    "diffusionad": ((*SYNTH, "diffusionad"), (), "diffusionad"),
    "autoencoder": ((*DATA, "autoencoder"), (), None),
    "diad": ((*SYNTH, "autoencoder", "diad"), (), "diad"),
    "ldm": ((*SYNTH, "autoencoder", "ldm"), (), "ldm"),
    "ddpm": ((*SYNTH, "ddpm"), (), "ddpm"),
    "diad_comparison": (
        (*SYNTH, "autoencoder", "diad", "ldm", "ddpm"),
        ("diad", "ldm", "ddpm"),
        None,  # a comparison registers nothing (and dvc re-runs parts of it)
    ),
    "padim": ((*SYNTH, "padim"), (), "padim"),
    "ran": ((*SYNTH, "padim", "ran"), ("padim", "ran"), "ran"),
    # anomalib's PatchCore (optional extra) beside the project's PaDiM, one run
    "patchcore": ((*SYNTH, "padim", "patchcore"), ("padim", "patchcore"), "patchcore"),
    # the trivial baseline, served too: the quickest check of the registry path
    "mean_image_served": ((*SYNTH, "mean_image"), (), "mean_image"),
}
DIAD_VARIANTS = ("diad", "ldm", "ddpm")
# blocks that score images and can be served: each gets a decision threshold
METHODS = (
    "mean_image",
    "padim",
    "patchcore",
    "diffusionad",
    "ran",
    *DIAD_VARIANTS,
)
# pipelines that read what earlier runs left (the MLflow registry, stored results)
TOOLS = ("promote", "inference", "compare")


def _module(block: str):
    package = "diad" if block in DIAD_VARIANTS else block
    return importlib.import_module(f"kedro_ad.pipelines.{package}")


def _available(block: str) -> bool:
    """Whether the block's package exists (import errors inside it propagate)."""
    package = "diad" if block in DIAD_VARIANTS else block
    if importlib.util.find_spec(f"kedro_ad.pipelines.{package}") is None:
        return False
    return hasattr(_module(block), "create_pipeline")


def block_pipeline(block: str) -> Pipeline:
    """One building block, every node tagged with the block's name; a method
    block also chooses its decision threshold (``<method>.threshold``)."""
    module = _module(block)
    if block in DIAD_VARIANTS:
        pipeline = module.create_pipeline(variant=block)
    else:
        pipeline = module.create_pipeline()
    if block in METHODS:
        from kedro_ad.pipelines.threshold import create_pipeline as threshold

        pipeline += threshold(block, inference_pipeline(block))
    return pipeline.tag(block)


def inference_pipeline(method: str) -> Pipeline:
    """The pipeline a served model runs: images in, scores and maps out."""
    module = _module(method)
    if method in DIAD_VARIANTS:
        return module.create_inference_pipeline(variant=method)
    return module.create_inference_pipeline()


def register_pipelines() -> dict[str, Pipeline]:
    """``__default__`` is the data pipelines, the synthetic validation set and the
    mean-image baseline (cheap).

    ``make run`` runs ``kedro run --pipeline diad``; a composite that registers a
    model is a kedro-mlflow ``PipelineML``, which must not be summed into others.
    """
    blocks = (
        "data_ingestion",
        "data_validation",
        "anomaly_synthesis",
        "mean_image",
        "evaluation",
    )
    pipelines = {name: block_pipeline(name) for name in blocks if _available(name)}
    pipelines["__default__"] = sum(
        (pipelines[name] for name in (*SYNTH, "mean_image")), Pipeline([])
    )
    for name in TOOLS:
        if _available(name):
            pipelines[name] = block_pipeline(name)
    for name, (parts, compared, method) in COMPOSITES.items():
        if not all(_available(part) for part in parts):
            logger.debug("pipeline %s: a building block is missing", name)
            continue
        pipeline = sum((block_pipeline(part) for part in parts), Pipeline([]))
        if compared:
            from kedro_ad.pipelines.evaluation import create_comparison_pipeline

            pipeline += create_comparison_pipeline(methods=compared, name=name).tag(
                name
            )
        if method:
            pipeline = served(method, pipeline, inference_pipeline(method))
        pipelines[name] = pipeline
    return pipelines
