"""Train (or load and fine-tune) the KL autoencoder on the training images."""

from kedro.pipeline import Node, Pipeline

from .nodes import train_autoencoder


def create_pipeline(**kwargs) -> Pipeline:
    """``dataset_arrays`` -> ``autoencoder.{model, training_history,
    figure_reconstructions}``."""
    return Pipeline(
        [
            Node(
                train_autoencoder,
                ["dataset_arrays", "params:autoencoder"],
                ["model", "training_history", "figure_reconstructions"],
                name="train_autoencoder_node",
                tags=["training"],
            )
        ],
        namespace="autoencoder",
        inputs={"dataset_arrays"},
        parameters={"params:autoencoder"},
    )
