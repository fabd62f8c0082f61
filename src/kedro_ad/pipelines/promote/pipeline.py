"""``kedro run --pipeline promote --params promote.model_name=kedro-ad-diad``."""

from kedro.pipeline import Node, Pipeline

from .nodes import promote


def create_pipeline(**kwargs) -> Pipeline:
    """One node: the decision, its table and both figures, logged to MLflow."""
    return Pipeline(
        [
            Node(
                promote,
                "params:promote",
                ["promotion.decision", "promotion.markdown", "promotion.metrics"],
                name="promote_node",
            )
        ]
    )
