"""PaDiM: fitted per class, scored on the test split, evaluated; and served."""

from kedro.pipeline import Node, Pipeline

from kedro_ad.pipelines.evaluation import create_pipeline as create_evaluation

from .nodes import fit_padim, predict_padim, score_padim


def create_pipeline(**kwargs) -> Pipeline:
    """``padim.model`` from the train split, ``padim.predictions``, evaluation."""
    method = "padim"
    fitting = Pipeline(
        [
            Node(
                fit_padim,
                ["dataset_arrays", "params:padim"],
                "model",
                name="fit_padim_node",
                tags=["training"],
            ),
            Node(
                score_padim,
                ["model", "dataset_arrays", "params:padim"],
                "predictions",
                name="score_padim_node",
                tags=["training"],
            ),
        ],
        namespace=method,
        inputs={"dataset_arrays"},
        parameters={"params:padim"},
    )
    return fitting + create_evaluation(method=method).tag("training")


def create_inference_pipeline(**kwargs) -> Pipeline:
    """Served model: ``padim.images`` -> ``padim.inference_output``."""
    return Pipeline(
        [
            Node(
                predict_padim,
                ["padim.model", "padim.images", "params:padim"],
                "padim.inference_output",
                name="predict_padim_node",
                tags=["inference"],
            )
        ]
    )
