"""Project hooks: tag every MLflow run so a person can tell runs apart in the UI."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


def git_commit(project_path: Path) -> str:
    """The checked-out commit (with ``-dirty`` when the tree has changes)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=project_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_path,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _find_backbones(value: Any) -> list[dict]:
    """Every ``backbone`` settings dict nested anywhere in a parameters value."""
    found = []
    if isinstance(value, dict):
        for key, sub in value.items():
            if key == "backbone" and isinstance(sub, dict):
                found.append(sub)
            else:
                found.extend(_find_backbones(sub))
    return found


def pretrained_tag(params: dict, pipeline_inputs: set[str]) -> str:
    """``true``/``false`` from the backbones the pipeline reads, else ``none``."""
    used = []
    for name in sorted(pipeline_inputs):
        if not name.startswith("params:"):
            continue
        value: Any = params
        for part in name.removeprefix("params:").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        used.extend(_find_backbones({"_": value}))
        if name.endswith(".backbone") and isinstance(value, dict):
            used.append(value)
    if not used:
        return "none"
    return "true" if all(b.get("pretrained", True) for b in used) else "false"


class InputErrorHook:
    """Says a bad-input error in one log line, ahead of Kedro's long traceback."""

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict, pipeline, catalog):
        from kedro_ad.data.io import ImageReadError
        from kedro_ad.data.layouts import DatasetLayoutError
        from kedro_ad.data.validation import DataValidationError

        if isinstance(
            error,
            DataValidationError
            | ImageReadError
            | DatasetLayoutError
            | FileNotFoundError,
        ):
            logger.error("Stopped before any training: %s", error)


class RunTagsHook:
    """Tags the kedro-mlflow run with pipeline, data source, commit and weights, and
    with the checkpoint rule when the run trains a method."""

    def __init__(self) -> None:
        self._params: dict = {}
        self._project_path = Path.cwd()
        self._run_id: str | None = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._params = context.params
        self._project_path = Path(context.project_path)

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        import mlflow

        if mlflow.active_run() is None:
            return
        names = run_params.get("pipeline_names") or [
            run_params.get("pipeline_name") or "__default__"
        ]
        data = self._params.get("data", {})
        tags = {
            "pipeline": ",".join(str(n or "__default__") for n in names),
            "data_source": str(data.get("source", "unknown")),
            "data_root": str(data.get("root", "")),
            "git_commit": git_commit(self._project_path),
            "pretrained_weights": pretrained_tag(self._params, pipeline.inputs()),
            "kedro_env": str(run_params.get("env") or "local"),
        }
        if "params:checkpoint_rule" in pipeline.inputs():  # a method trains here
            from kedro_ad.metrics.checkpoint import CheckpointRule

            rule = CheckpointRule.from_params(self._params.get("checkpoint_rule"))
            tags["checkpoint_rule"] = rule.name
        if tags["pretrained_weights"] == "false":
            logger.warning(
                "This run uses a backbone with pretrained: false (random weights); "
                "its anomaly maps are not representative. Tagged in MLflow."
            )
        mlflow.set_tags(tags)
        self._run_id = mlflow.active_run().info.run_id
        # MLflow 3's UI opens experiments in its GenAI view unless told otherwise.
        mlflow.MlflowClient().set_experiment_tag(
            mlflow.active_run().info.experiment_id,
            "mlflow.experimentKind",
            "custom_model_development",
        )

    @hook_impl
    def after_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        self._close_leftover_run("FINISHED")

    @hook_impl
    def on_pipeline_error(self, error, run_params: dict, pipeline, catalog) -> None:
        self._close_leftover_run("FAILED")

    def _close_leftover_run(self, status: str) -> None:
        """End this session's run if it is still open after kedro-mlflow closed it.

        kedro-mlflow re-opens the run at each node (for threaded runners), which
        can leave it active after the session in a long-lived process (a notebook,
        a test): the next session would then log into it. Only our own run id is
        closed, never a run an orchestrator opened before the session.
        """
        import mlflow

        while (
            run := mlflow.active_run()
        ) is not None and run.info.run_id == self._run_id:
            mlflow.end_run(status)
        self._run_id = None
