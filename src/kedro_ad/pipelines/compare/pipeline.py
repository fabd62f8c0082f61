"""``kedro run --pipeline compare`` (the last ``dvc repro`` stage)."""

from kedro.pipeline import Node, Pipeline

from .nodes import compare_stored


def create_pipeline(**kwargs) -> Pipeline:
    """Stored predictions -> ``compare.table``, ``compare.markdown``,
    ``compare.figure`` (data/08_reporting/compare and MLflow)."""
    return Pipeline(
        [
            Node(
                compare_stored,
                [
                    "compare.predictions",
                    "dataset_arrays",
                    "params:evaluation",
                    "params:data",
                ],
                ["compare.table", "compare.markdown", "compare.figure"],
                name="compare_stored_node",
            )
        ]
    )
