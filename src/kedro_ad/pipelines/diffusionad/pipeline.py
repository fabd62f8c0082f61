"""DiffusionAD trained, scored and evaluated; and its one-node inference pipeline."""

from kedro.pipeline import Node, Pipeline

from kedro_ad.pipelines.evaluation import create_pipeline as create_evaluation

from .nodes import predict_diffusionad, score_diffusionad, train_diffusionad

METHOD = "diffusionad"


def create_pipeline(**kwargs) -> Pipeline:
    """Training (tag ``training``) + test scoring + the shared evaluation."""
    method = Pipeline(
        [
            Node(
                train_diffusionad,
                [
                    "dataset_arrays",
                    "synthetic_validation",
                    "params:diffusionad",
                    "params:anomaly_synthesis",
                    "params:checkpoint_rule",
                ],
                ["model", "training_history", "figure_training"],
                name="train_diffusionad_node",
                tags=["training"],
            ),
            Node(
                score_diffusionad,
                ["model", "dataset_arrays", "params:diffusionad"],
                ["predictions", "figure_reconstructions"],
                name="score_diffusionad_node",
                tags=["training"],
            ),
        ],
        namespace=METHOD,
        inputs={"dataset_arrays", "synthetic_validation"},
        parameters={
            "params:diffusionad",
            "params:anomaly_synthesis",
            "params:checkpoint_rule",
        },
    )
    return method + create_evaluation(method=METHOD)


def create_inference_pipeline() -> Pipeline:
    """``diffusionad.images`` -> ``{"scores", "maps"}`` with ``diffusionad.model``."""
    return Pipeline(
        [
            Node(
                predict_diffusionad,
                ["model", "images", "params:diffusionad"],
                "inference_output",
                name="predict_diffusionad_node",
                tags=["inference"],
            )
        ],
        namespace=METHOD,
        parameters={"params:diffusionad"},
    )
