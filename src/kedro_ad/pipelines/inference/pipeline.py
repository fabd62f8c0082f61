"""``kedro run --pipeline inference --params inference.model_uri=...``."""

from kedro.pipeline import Node, Pipeline

from .nodes import predict_images


def create_pipeline(**kwargs) -> Pipeline:
    """One node: ``params:inference`` -> predictions and skipped files (CSV)."""
    return Pipeline(
        [
            Node(
                predict_images,
                "params:inference",
                ["inference_predictions", "inference_skipped"],
                name="predict_images_node",
            )
        ]
    )
