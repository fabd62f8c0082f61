"""PatchCore (anomalib's torch model): fitted per class, scored on the test split,
evaluated; and served. Needs the optional extra ``anomalib``."""

from kedro.pipeline import Node, Pipeline

from kedro_ad.pipelines.evaluation import create_pipeline as create_evaluation

from .nodes import fit_patchcore, predict_patchcore, score_patchcore


def create_pipeline(**kwargs) -> Pipeline:
    """``patchcore.model`` from the train split, ``patchcore.predictions``,
    evaluation."""
    method = "patchcore"
    fitting = Pipeline(
        [
            Node(
                fit_patchcore,
                ["dataset_arrays", "params:patchcore"],
                "model",
                name="fit_patchcore_node",
                tags=["training"],
            ),
            Node(
                score_patchcore,
                ["model", "dataset_arrays", "params:patchcore"],
                "predictions",
                name="score_patchcore_node",
                tags=["training"],
            ),
        ],
        namespace=method,
        inputs={"dataset_arrays"},
        parameters={"params:patchcore"},
    )
    return fitting + create_evaluation(method=method).tag("training")


def create_inference_pipeline(**kwargs) -> Pipeline:
    """Served model: ``patchcore.images`` -> ``patchcore.inference_output``."""
    return Pipeline(
        [
            Node(
                predict_patchcore,
                ["patchcore.model", "patchcore.images", "params:patchcore"],
                "patchcore.inference_output",
                name="predict_patchcore_node",
                tags=["inference"],
            )
        ]
    )
