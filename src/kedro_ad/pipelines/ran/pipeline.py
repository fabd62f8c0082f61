"""RAN: trained on the train split, chosen on synthetic validation defects, scored,
evaluated; and the served model (images -> scores and maps)."""

from kedro.pipeline import Node, Pipeline

from kedro_ad.pipelines.evaluation import create_pipeline as create_evaluation

from .nodes import predict_ran, score_ran, train_ran


def create_pipeline(**kwargs) -> Pipeline:
    """RAN's nodes and evaluation; reads ``padim.model`` (Algorithm 1's Gaussians)."""
    method = "ran"
    nodes = Pipeline(
        [
            Node(
                train_ran,
                [
                    "dataset_arrays",
                    "synthetic_validation",
                    "params:ran",
                    "params:checkpoint_rule",
                ],
                ["model", "training_history", "figure_training"],
                name="train_ran_node",
                tags=["training"],
            ),
            Node(
                score_ran,
                ["model", "padim_model", "dataset_arrays", "params:ran"],
                ["predictions", "figure_repairs"],
                name="score_ran_node",
                tags=["training"],
            ),
        ],
        namespace=method,
        inputs={
            "dataset_arrays": "dataset_arrays",
            "synthetic_validation": "synthetic_validation",
            "padim_model": "padim.model",
        },
        parameters={"params:ran", "params:checkpoint_rule"},
    )
    return nodes + create_evaluation(method=method).tag("training")


def create_inference_pipeline(**kwargs) -> Pipeline:
    """Served model: ``ran.images`` -> ``ran.inference_output``."""
    return Pipeline(
        [
            Node(
                predict_ran,
                ["ran.model", "padim.model", "ran.images", "params:ran"],
                "ran.inference_output",
                name="predict_ran_node",
                tags=["inference"],
            )
        ]
    )
