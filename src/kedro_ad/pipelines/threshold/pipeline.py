"""A method's decision threshold: its own predict node run on synthetic_validation.

Built from the method's inference pipeline, so every method (DiAD, LDM, DDPM,
DiffusionAD, RAN, PaDiM, the mean image) gets its threshold by the same code
without a line in its own pipeline; ``pipeline_registry`` adds it to each block
that can be served.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import ValidationThreshold


def create_pipeline(method: str, inference: Pipeline) -> Pipeline:
    """``<method>.threshold`` (JSON beside the model) and
    ``<method>.threshold_metrics`` (MLflow) from ``inference``'s one node, with
    ``synthetic_validation`` in place of ``<method>.images``."""
    (predict,) = inference.nodes
    images = f"{method}.images"
    if images not in predict.inputs:
        raise ValueError(f"{predict.name} does not read {images}")
    inputs = [
        "synthetic_validation" if name == images else name for name in predict.inputs
    ]
    return Pipeline(
        [
            Node(
                ValidationThreshold(method, predict.func, predict.inputs.index(images)),
                [*inputs, "params:checkpoint_rule"],
                [f"{method}.threshold", f"{method}.threshold_metrics"],
                name=f"choose_{method}_threshold_node",
                tags=["training", method],
            )
        ]
    )
