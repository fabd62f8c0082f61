"""Project pipelines: every folder under pipelines/ registers itself."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """``__default__`` is what ``kedro run`` and ``make run`` execute.

    Until a method pipeline exists it is ingestion, validation and an evaluation of
    the mean-image baseline (an honest, trivial scorer) on the configured dataset.
    """
    pipelines = find_pipelines(raise_errors=True)
    # Kedro loads only the requested pipelines for `--pipeline NAME`; the default
    # is built when all of its parts were loaded (a plain `kedro run`).
    default_parts = ("data_ingestion", "data_validation", "mean_image")
    if all(name in pipelines for name in default_parts):
        pipelines["__default__"] = sum(
            (pipelines[name] for name in default_parts), Pipeline([])
        )
    return pipelines
