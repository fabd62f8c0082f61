"""Ingestion: dataset folder -> manifest table."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_manifest, prepare_source


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                prepare_source,
                "params:data",
                "dataset_root",
                name="prepare_source_node",
            ),
            Node(
                build_manifest,
                ["dataset_root", "params:data"],
                "manifest",
                name="build_manifest_node",
            ),
        ]
    )
