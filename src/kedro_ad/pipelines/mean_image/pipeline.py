"""The mean-image baseline, fitted, scored and evaluated."""

from kedro.pipeline import Node, Pipeline

from kedro_ad.pipelines.evaluation import create_pipeline as create_evaluation

from .nodes import fit_mean_image, predict_mean_image, score_mean_image


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


def create_inference_pipeline(**kwargs) -> Pipeline:
    """What the registered ``kedro-ad-mean_image`` model runs."""
    return Pipeline(
        [
            Node(
                predict_mean_image,
                ["mean_image.model", "mean_image.images", "params:mean_image"],
                "mean_image.inference_output",
                name="predict_mean_image_node",
                tags=["inference"],
            )
        ]
    )
