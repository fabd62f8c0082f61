"""Synthetic anomalies on the validation split, for choosing checkpoints."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_synthetic_validation, synthesis_preview_figure


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_synthetic_validation,
                ["dataset_arrays", "params:anomaly_synthesis"],
                "synthetic_validation",
                name="build_synthetic_validation_node",
            ),
            Node(
                synthesis_preview_figure,
                ["synthetic_validation", "params:anomaly_synthesis"],
                "synthesis_preview",
                name="synthesis_preview_node",
            ),
        ]
    )
