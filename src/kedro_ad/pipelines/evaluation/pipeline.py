"""Evaluation of one method's predictions (namespaced by method)."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    compare_methods,
    compute_metrics_table,
    curves_figure,
    metrics_for_mlflow,
    metrics_markdown,
    overlays_figure,
)


def create_pipeline(method: str = "mean_image", **kwargs) -> Pipeline:
    """Reads ``<method>.predictions``; writes ``<method>.evaluation_*`` and figures."""
    return Pipeline(
        [
            Node(
                compute_metrics_table,
                ["predictions", "dataset_arrays", "params:evaluation"],
                "evaluation_table",
                name="compute_metrics_table_node",
            ),
            Node(
                metrics_markdown,
                ["evaluation_table", "predictions", "dataset_arrays", "params:data"],
                "evaluation_markdown",
                name="metrics_markdown_node",
            ),
            Node(
                metrics_for_mlflow,
                "evaluation_table",
                "evaluation_metrics",
                name="metrics_for_mlflow_node",
            ),
            Node(
                curves_figure,
                ["predictions", "dataset_arrays", "params:data"],
                "roc_pr_curves",
                name="curves_figure_node",
            ),
            Node(
                overlays_figure,
                ["predictions", "dataset_arrays", "params:evaluation"],
                "overlays",
                name="overlays_figure_node",
            ),
        ],
        namespace=method,
        inputs={"dataset_arrays"},
        parameters={"params:evaluation", "params:data"},
    )


def create_comparison_pipeline(methods: tuple[str, ...], name: str) -> Pipeline:
    """One table of several methods' results: ``comparison_<name>.{table,markdown}``."""
    inputs = []
    for method in methods:
        inputs += [f"{method}.evaluation_table", f"{method}.predictions"]
    return Pipeline(
        [
            Node(
                compare_methods,
                inputs,
                [f"comparison_{name}.table", f"comparison_{name}.markdown"],
                name=f"compare_{name}_node",
            )
        ]
    )
