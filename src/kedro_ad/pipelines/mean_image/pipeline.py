"""The mean-image baseline, fitted, scored and evaluated."""

from kedro.pipeline import Node, Pipeline

from kedro_ad.pipelines.evaluation import create_pipeline as create_evaluation

from .nodes import fit_mean_image, score_mean_image


def create_pipeline(**kwargs) -> Pipeline:
    method = "mean_image"
    scoring = Pipeline(
        [
            Node(
                fit_mean_image,
                ["dataset_arrays", "params:mean_image"],
                "model",
                name="fit_mean_image_node",
            ),
            Node(
                score_mean_image,
                ["model", "dataset_arrays"],
                "predictions",
                name="score_mean_image_node",
            ),
        ],
        namespace=method,
        inputs={"dataset_arrays"},
        parameters={"params:mean_image"},
    )
    return scoring + create_evaluation(method=method)
