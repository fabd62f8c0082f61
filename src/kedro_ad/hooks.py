"""Project hooks: tag every MLflow run so a person can tell runs apart in the UI, and
every registered model version with what promotion compares (:class:`RunTagsHook`)."""

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
    """Says a bad-input error in one log line, ahead of Kedro's long traceback;
    stops a run that needs a missing optional extra before it starts."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        """A run with PatchCore's nodes (tag ``patchcore``) without anomalib ends
        here with one message naming the extra to install, not a traceback."""
        if not any("patchcore" in node.tags for node in pipeline.nodes):
            return
        from kedro_ad.models.patchcore import AnomalibMissingError, anomalib_patchcore

        try:
            anomalib_patchcore()
        except AnomalibMissingError as error:
            logger.error("Stopped before any work: %s", error)
            raise SystemExit(f"Stopped before any work: {error}") from None

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
        from kedro_ad.batch import BatchError
        from kedro_ad.pipelines.promote.nodes import PromotionRefused

        if isinstance(error, PromotionRefused):
            logger.error("Promotion refused, nothing changed: %s", error)
        if isinstance(error, BatchError):
            logger.error("Inference stopped: %s", error)


def data_version(catalog, project_path: Path) -> tuple[str, bool] | None:
    """``(md5 of dataset_arrays.npz, whether dvc.lock records that very hash)``,
    or None when the run has no arrays file. The MD5 is what DVC records for the
    file, so where DVC tracks the data the data version is its DVC hash."""
    from kedro_ad.data.datasets import file_md5

    try:
        filepath = catalog["dataset_arrays"]._describe()["filepath"]
    except Exception:  # no such entry in this catalog
        return None
    path = Path(filepath)
    if not path.is_absolute():
        path = project_path / path
    if not path.is_file():
        return None
    md5 = file_md5(path)
    lock = project_path / "dvc.lock"
    in_lock = lock.is_file() and f"md5: {md5}" in lock.read_text()
    return md5, in_lock


def model_version_tags(
    method: str,
    run_tags: dict[str, str],
    run_metrics: dict[str, float],
    threshold: dict | None,
    data: tuple[str, bool] | None,
) -> dict[str, str]:
    """What a registered version of ``kedro-ad-<method>`` is tagged with.

    ``val_*`` and ``checkpoint_rule``: the checkpoint rule's figures of the shipped
    model on synthetic_validation (what ``promote`` compares by default);
    ``test_*``: the class means on the test split; ``data_version``; the
    ``git_commit``; ``threshold`` and its rule. A figure that is missing is left
    out, so promotion refuses a version it cannot judge.
    """
    from kedro_ad.metrics import METRIC_NAMES

    tags = {"method": method}
    for key in ("git_commit", "data_source", "data_root"):
        if key in run_tags:
            tags[key] = run_tags[key]
    if data is not None:
        tags["data_version"] = data[0]
        tags["data_version_in_dvc_lock"] = str(data[1]).lower()
    for name in METRIC_NAMES:
        value = run_metrics.get(f"{method}/{name}")
        if value is not None:
            tags[f"test_{name}"] = f"{value:.6f}"
    if threshold is not None:
        tags["threshold"] = f"{float(threshold['threshold']):.6g}"
        tags["threshold_rule"] = str(threshold.get("rule", ""))
        tags["checkpoint_rule"] = str(threshold.get("checkpoint_rule", ""))
        for name, value in (threshold.get("val_metrics") or {}).items():
            tags[name] = f"{float(value):.6f}"
    return tags


def _trains(pipeline) -> bool:
    """Whether a node chooses checkpoints by the rule (a method trains here); the
    threshold nodes read the rule only to report the shipped model's figures."""
    from kedro_ad.pipelines.threshold.nodes import ValidationThreshold

    return any(
        "params:checkpoint_rule" in node.inputs
        and not isinstance(node.func, ValidationThreshold)
        for node in pipeline.nodes
    )


class RunTagsHook:
    """Tags the kedro-mlflow run with pipeline, data source, commit and weights, and
    with the checkpoint rule when the run trains a method; after the run, tags the
    model version it registered (:func:`model_version_tags`)."""

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
        if _trains(pipeline):
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

    # trylast: after kedro-mlflow's own after_pipeline_run has registered the model
    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        try:
            if self._run_id is not None:
                self._tag_results(self._run_id, catalog)
        finally:
            self._close_leftover_run("FINISHED")

    def _tag_results(self, run_id: str, catalog) -> None:
        """The run's data version, and the tags of the version it registered."""
        import mlflow

        client = mlflow.MlflowClient()
        data = data_version(catalog, self._project_path)
        if data is not None:
            client.set_tag(run_id, "data_version", data[0])
        versions = client.search_model_versions(f"run_id = '{run_id}'")
        if not versions:
            return
        run = client.get_run(run_id)
        for version in versions:
            method = version.name.removeprefix("kedro-ad-")
            try:
                threshold = catalog.load(f"{method}.threshold")
            except Exception as exc:  # the version then lacks what promote reads
                logger.warning("%s: no threshold to tag (%s)", version.name, exc)
                threshold = None
            tags = model_version_tags(
                method, run.data.tags, run.data.metrics, threshold, data
            )
            for key, value in tags.items():
                client.set_model_version_tag(version.name, version.version, key, value)
            logger.info(
                "Tagged %s version %s: %s",
                version.name,
                version.version,
                {k: tags[k] for k in tags if k.startswith(("val_score", "threshold"))},
            )

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


def process_rank() -> int:
    """This process's rank under ``accelerate launch``/torchrun/MPI (0 alone)."""
    import os

    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


class DistributedRunHook:
    """Under ``accelerate launch -m kedro run`` every process runs the session; only
    process 0 may leave a trace. On the others the run is not tracked (no MLflow
    run, no registered model) and every dataset the pipeline writes is kept in
    memory, so files, checkpoints and the MLflow run are written once. The training
    loop synchronises the processes (:mod:`kedro_ad.training.loop`); the data they
    read must exist before the launch (e.g. ``kedro run --pipeline
    anomaly_synthesis`` in one process first)."""

    # trylast: after kedro-mlflow has put its configuration on the context
    @hook_impl(trylast=True)
    def after_context_created(self, context) -> None:
        if process_rank() == 0:
            return
        config = getattr(context, "mlflow", None)
        if config is not None:
            from kedro_mlflow.framework.hooks.mlflow_hook import mlflow_hook

            from kedro_ad.pipeline_registry import register_pipelines

            config.tracking.disable_tracking.pipelines = [
                *register_pipelines(),
                "__default__",
            ]
            # kedro-mlflow re-opens its last run id at every node even when
            # tracking is off; one left by an earlier session in this process
            # would be re-opened and written to
            mlflow_hook.run_id = None
        logger.info(
            "process %d of a distributed run: nothing tracked or written here",
            process_rank(),
        )

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline, catalog) -> None:
        if process_rank() == 0:
            return
        from kedro.io import MemoryDataset

        for name in pipeline.all_outputs():
            catalog[name] = MemoryDataset(copy_mode="assign")
