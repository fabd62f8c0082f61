"""Validation: manifest -> report (saved, logged) -> gate -> resized arrays."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_arrays, dataset_preview, require_valid, validate_manifest_node


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                validate_manifest_node,
                ["manifest", "params:data", "params:validation"],
                "validation_report",
                name="validate_manifest_node",
            ),
            Node(
                require_valid,
                ["validation_report", "manifest"],
                "validated_manifest",
                name="require_valid_node",
            ),
            Node(
                build_arrays,
                ["validated_manifest", "params:data"],
                "dataset_arrays",
                name="build_arrays_node",
            ),
            Node(
                dataset_preview,
                ["dataset_arrays", "params:data"],
                "dataset_preview",
                name="dataset_preview_node",
            ),
        ]
    )
