"""Project pipelines: every folder under pipelines/ registers itself."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """``__default__`` is what ``kedro run`` and ``make run`` execute.

    Until a method pipeline exists it is ingestion, validation and an evaluation of
    the mean-image baseline (an honest, trivial scorer) on the configured dataset.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = (
        pipelines["data_ingestion"]
        + pipelines["data_validation"]
        + pipelines["mean_image"]
    )
    return pipelines
