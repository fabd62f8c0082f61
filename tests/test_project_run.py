"""Whole Kedro sessions in a throw-away copy of the project (conf + pyproject).

These are the slow tests (a few seconds each): they prove the catalog, parameters,
hooks and kedro-mlflow fit together, that a run lands in MLflow with its tags,
metrics and figures, and that bad data stops the run before any array is built.
"""

from __future__ import annotations

import hashlib
import json

import mlflow
import pandas as pd
import pytest

from helpers import (
    SMALL_SYNTHETIC,
    class_means,
    git,
    make_mvtec_tree,
    run_session,
)
from kedro_ad.data.datasets import ArraysDataset
from kedro_ad.data.validation import DataValidationError
from kedro_ad.metrics.checkpoint import CheckpointRule

pytestmark = pytest.mark.slow


def test_default_run_on_embedded_data_lands_in_mlflow(project):
    params = dict(SMALL_SYNTHETIC, **{"data.root": str(project / "data/01_raw/synth")})
    run_session(project, None, params)

    report = project / "data/08_reporting/mean_image"
    table = (report / "evaluation_table.md").read_text()
    assert "test split of data.source=embedded" in table
    assert "validation split" in table and "mean" in table
    for name in ("evaluation_table.csv", "roc_pr_curves.png", "overlays.png"):
        assert (report / name).stat().st_size > 0
    assert (project / "data/08_reporting/validation_report.json").is_file()

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    (experiment,) = [e for e in client.search_experiments() if e.name == "kedro-ad"]
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["pipeline"] == "__default__"
    assert tags["data_source"] == "embedded"
    assert tags["pretrained_weights"] == "none"
    assert tags["git_commit"] == git(project, "rev-parse", "HEAD")  # not dirty
    assert "checkpoint_rule" not in tags  # nothing is trained in this run
    metrics = run.data.metrics
    expected = class_means(project, "mean_image")
    for name, value in expected.items():
        assert metrics[f"mean_image/{name}"] == pytest.approx(value, abs=1e-6), name
    csv = pd.read_csv(report / "evaluation_table.csv")
    mean = csv[csv["class"] == "mean"].iloc[0]
    assert mean["pixel_aupro"] == pytest.approx(expected["pixel_aupro"], abs=1e-6)
    assert mean["checkpoint_rule"] == "none (nothing trained)"
    per_class = [k for k in metrics if k.endswith("/pixel_aupro") and k.count("/") == 2]
    assert len(per_class) == csv["class"].ne("mean").sum()
    assert run.data.params["data.image_size"] == "32"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "mean_image")}
    assert "mean_image/overlays.png" in artifacts
    assert "mean_image/evaluation_table.csv" in artifacts
    checks = {a.path for a in client.list_artifacts(run.info.run_id, "data_validation")}
    assert checks == {
        "data_validation/validation_report.json",
        "data_validation/dataset_preview.png",
    }


def test_bad_file_stops_the_run_before_arrays(project, tmp_path, caplog):
    root = make_mvtec_tree(tmp_path / "mv", classes=("widget",), n_train=12)
    broken = sorted((root / "widget" / "test").rglob("*.png"))[0]
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    params = {
        "data.source": "mvtec",
        "data.root": str(root),
        "data.image_size": 32,
        "validation.min_train_images": 5,
    }
    # ingestion records the broken file, never fails
    run_session(project, "data_ingestion", params)
    with pytest.raises(DataValidationError, match=broken.name):
        run_session(project, "data_validation", params)
    assert (project / "data/08_reporting/validation_report.json").is_file()
    stopped = [r.getMessage() for r in caplog.records if "Stopped before" in r.msg]
    assert len(stopped) == 1 and broken.name in stopped[0]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow.db")
    failed = client.search_runs(
        [client.get_experiment_by_name("kedro-ad").experiment_id],
        filter_string="attributes.status = 'FAILED'",
    )
    assert len(failed) == 1  # the data_validation run, with its report attached
    logged = client.list_artifacts(failed[0].info.run_id, "data_validation")
    assert [a.path for a in logged] == ["data_validation/validation_report.json"]
    assert not (project / "data/05_model_input/dataset_arrays.npz").exists()


def test_served_method_is_registered_and_scores_through_pyfunc(project):
    """The registry path every method uses, on the cheapest scorer.

    The run logs inference pipeline + weights as one pyfunc model, registers a
    version of ``kedro-ad-<method>``, and the loaded model turns images of any
    size into one score and one map per image, matching the test predictions.
    """
    import numpy as np

    run_session(project, "mean_image_served", SMALL_SYNTHETIC)
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    client = mlflow.MlflowClient()
    (version,) = client.search_model_versions("name='kedro-ad-mean_image'")
    model = mlflow.pyfunc.load_model(f"models:/kedro-ad-mean_image/{version.version}")

    # the version says what promotion compares, and with which data and code
    threshold = json.loads(
        (project / "data/06_models/mean_image/threshold.json").read_text()
    )
    tags = version.tags
    assert float(tags["threshold"]) == pytest.approx(threshold["threshold"], rel=1e-5)
    assert tags["threshold_rule"].startswith("F1-max on synthetic_validation")
    assert float(tags["val_score"]) == pytest.approx(
        threshold["val_metrics"]["val_score"], abs=1e-6
    )
    assert tags["checkpoint_rule"] == CheckpointRule().name
    means = class_means(project, "mean_image")
    assert float(tags["test_pixel_aupro"]) == pytest.approx(
        means["pixel_aupro"], abs=1e-6
    )
    assert tags["git_commit"] == git(project, "rev-parse", "HEAD")
    arrays_file = project / "data/05_model_input/dataset_arrays.npz"
    assert tags["data_version"] == hashlib.md5(arrays_file.read_bytes()).hexdigest()
    assert tags["data_version_in_dvc_lock"] == "false"  # no dvc.lock here
    run = client.get_run(version.run_id)
    assert run.data.tags["data_version"] == tags["data_version"]
    assert run.data.metrics["mean_image/threshold"] == pytest.approx(
        threshold["threshold"]
    )

    arrays = ArraysDataset("data/05_model_input/dataset_arrays.npz").load()
    predictions = ArraysDataset(
        "data/07_model_output/mean_image/predictions.npz"
    ).load()
    index = predictions["index"][:3]
    out = model.predict(
        {"images": arrays["images"][index], "classes": arrays["classes"][index]}
    )
    np.testing.assert_allclose(out["scores"], predictions["scores"][:3], rtol=1e-4)
    assert out["maps"].shape == (3, 32, 32)
    expected = np.where(predictions["scores"][:3] >= threshold["threshold"], "NG", "OK")
    assert out["decisions"].tolist() == expected.tolist()
    big = np.repeat(np.repeat(arrays["images"][index], 2, axis=1), 2, axis=2)
    out = model.predict({"images": big, "classes": arrays["classes"][index]})
    assert out["maps"].shape == (3, 64, 64)
    with pytest.raises(ValueError, match="pass each image's class"):
        model.predict(arrays["images"][index])


def test_ran_run_compares_with_padim_logs_histories_and_registers(project):
    """A method composite end to end at toy size: synthesis, PaDiM, RAN, table.

    Checks what a user sees in MLflow: per-step training histories prefixed by the
    method (several methods may share a run), both methods' metrics, the comparison
    table, the figures, and a registered ``kedro-ad-ran`` version.
    """
    params = {
        **SMALL_SYNTHETIC,
        "ran.training.max_steps": 2,
        "ran.training.validate_every": 2,
        "ran.training.checkpoint_every": 2,
        "ran.training.log_every": 1,
        "ran.validation.max_images": 8,
        "ran.repair.steps": 2,
        "ran.repair.n_figure": 2,
        "padim.n_features": 16,
    }
    run_session(project, "ran", params)
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    client = mlflow.MlflowClient()
    (run,) = client.search_runs(client.get_experiment_by_name("kedro-ad").experiment_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["pretrained_weights"] == "true"
    assert run.data.tags["checkpoint_rule"] == CheckpointRule().name
    assert (
        run.data.params["checkpoint_rule.metrics"] == "['image_auroc', 'pixel_aupro']"
    )
    history = client.get_metric_history(run.info.run_id, "ran.loss")
    assert [m.step for m in history] == [1, 2]
    assert "ran.val_score" in run.data.metrics
    for method in ("padim", "ran"):
        expected = class_means(project, method, aupro=False)
        for name, value in expected.items():
            got = run.data.metrics[f"{method}/{name}"]
            assert got == pytest.approx(value, abs=1e-6), (method, name)
    comparison = (
        project / "data/08_reporting/comparison_ran/comparison.md"
    ).read_text()
    assert (
        f"every trained method kept the step with the best {CheckpointRule().name} "
        "(padim: nothing trained)" in comparison
    )
    artifacts = {
        a.path
        for folder in ("ran", "comparison_ran", "anomaly_synthesis")
        for a in client.list_artifacts(run.info.run_id, folder)
    }
    assert {
        "ran/training.png",
        "ran/repairs.png",
        "comparison_ran/comparison.md",
        "anomaly_synthesis/synthesis_preview.png",
    } <= artifacts
    (version,) = client.search_model_versions("name='kedro-ad-ran'")
    assert version.run_id == run.info.run_id
    assert not any((project / "data/06_models/ran/checkpoints").iterdir())
