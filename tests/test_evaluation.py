"""Evaluation nodes: per-class table, honesty guard, MLflow metric names, figures."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers import reference_aupro
from kedro_ad.metrics.checkpoint import NO_CHECKPOINT, NOT_RECORDED, CheckpointRule
from kedro_ad.pipelines.evaluation.nodes import (
    compare_methods,
    compute_metrics_table,
    make_predictions,
    metrics_for_mlflow,
    metrics_markdown,
    overlays_figure,
)

DATA = {"source": "embedded", "root": "data/01_raw/x", "image_size": 16}


def _arrays_and_predictions(seed=0):
    rng = np.random.default_rng(seed)
    n = 24
    classes = np.array(["a"] * 12 + ["b"] * 12)
    splits = np.array((["val"] * 4 + ["test"] * 8) * 2)
    labels = np.zeros(n, dtype=np.int64)
    labels[[8, 9, 10, 11, 20, 21, 22, 23]] = 1
    masks = np.zeros((n, 16, 16), dtype=bool)
    masks[labels == 1, 4:9, 4:9] = True
    maps = rng.normal(0, 1, (n, 16, 16)).astype(np.float32) + 1.5 * masks
    arrays = {
        "images": rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8),
        "masks": masks,
        "labels": labels,
        "classes": classes,
        "splits": splits,
        "image_paths": np.array([f"img{i}.png" for i in range(n)]),
    }
    index = np.flatnonzero(splits == "test")
    predictions = {
        "index": index,
        "image_paths": arrays["image_paths"][index],
        "scores": maps[index].reshape(len(index), -1).max(axis=1),
        "maps": maps[index].astype(np.float16),
        "method": np.asarray("toy"),
        "description": np.asarray("a toy scorer"),
        "checkpoint_rule": np.asarray("mean(image_auroc) on synthetic_validation"),
    }
    return arrays, predictions


def _expected(arrays, predictions, cls):
    """Image AUROC, pixel AUROC and AU-PRO of one class by independent code:
    scikit-learn and the slow reference AU-PRO (tests/helpers.py)."""
    rows = np.flatnonzero(arrays["classes"][predictions["index"]] == cls)
    labels = arrays["labels"][predictions["index"][rows]]
    masks = arrays["masks"][predictions["index"][rows]]
    maps = predictions["maps"][rows].astype(np.float32)
    return {
        "image_auroc": roc_auc_score(labels, predictions["scores"][rows]),
        "pixel_auroc": roc_auc_score(masks.ravel(), maps.ravel()),
        "pixel_aupro": reference_aupro(masks, maps),
    }


def test_table_per_class_and_mean():
    arrays, predictions = _arrays_and_predictions()
    table = compute_metrics_table(
        predictions, arrays, {"aupro_fpr_limit": 0.3, "n_overlays": 2}
    )
    assert table["class"].tolist() == ["a", "b", "mean"]
    expected = {cls: _expected(arrays, predictions, cls) for cls in ("a", "b")}
    for row, cls in enumerate(("a", "b")):
        for name, value in expected[cls].items():
            assert table.loc[row, name] == pytest.approx(value, abs=1e-9), (cls, name)
    for name in ("image_auroc", "pixel_auroc", "pixel_aupro"):
        mean = np.mean([expected[cls][name] for cls in ("a", "b")])
        assert table.loc[2, name] == pytest.approx(mean, abs=1e-9)
    # the classes differ and are imperfect: a metric of the wrong rows would show
    for name in ("image_auroc", "pixel_aupro"):
        assert expected["a"][name] != pytest.approx(expected["b"][name])
        assert 0.5 < expected["a"][name] < 1
    assert table.loc[2, "n_images"] == 16 and table.loc[2, "n_classes"] == 2
    assert (
        table["checkpoint_rule"].eq("mean(image_auroc) on synthetic_validation").all()
    )
    metrics = metrics_for_mlflow(table)
    method = str(predictions["method"])
    assert table["method"].eq(method).all()
    assert metrics[f"{method}/pixel_aupro"]["value"] == table.loc[2, "pixel_aupro"]
    assert metrics[f"{method}/a/image_auroc"]["value"] == pytest.approx(
        expected["a"]["image_auroc"]
    )
    assert f"{method}/b/pixel_auroc" in metrics
    text = metrics_markdown(table, predictions, arrays, DATA)
    assert "test split of data.source=embedded" in text
    assert "validation split (8 good images)" in text
    assert "Checkpoint: mean(image_auroc) on synthetic_validation." in text
    assert f"{100 * expected['a']['pixel_aupro']:.1f}" in text


def test_comparison_names_the_one_checkpoint_rule_or_warns():
    arrays, predictions = _arrays_and_predictions()
    evaluation = {"aupro_fpr_limit": 0.3}
    rule = CheckpointRule().name
    inputs = []
    for method, checkpoint in (("x", rule), ("y", rule), ("z", NO_CHECKPOINT)):
        p = {**predictions, "method": np.asarray(method)}
        p["checkpoint_rule"] = np.asarray(checkpoint)
        inputs += [compute_metrics_table(p, arrays, evaluation), p]
    table, text = compare_methods(*inputs)
    assert table["checkpoint_rule"].tolist() == [rule, rule, NO_CHECKPOINT]
    assert (
        f"every trained method kept the step with the best {rule} (z: nothing "
        "trained)" in text
    )
    assert "different rules" not in text
    inputs[3] = {**inputs[3]}
    del inputs[3]["checkpoint_rule"]  # predictions that do not say
    inputs[2] = compute_metrics_table(inputs[3], arrays, evaluation)
    table, text = compare_methods(*inputs)
    assert table["checkpoint_rule"].tolist()[1] == NOT_RECORDED
    assert "**The methods chose their checkpoints by different rules**" in text


def test_predictions_on_validation_rows_are_refused():
    arrays, predictions = _arrays_and_predictions()
    predictions["index"] = predictions["index"].copy()
    predictions["index"][0] = 0  # a validation row
    with pytest.raises(ValueError, match="outside the test split"):
        compute_metrics_table(predictions, arrays, {"aupro_fpr_limit": 0.3})


def test_overlays_show_best_and_worst():
    arrays, predictions = _arrays_and_predictions()
    fig = overlays_figure(predictions, arrays, {"n_overlays": 2})
    assert len(fig.axes) == 4 * 4
    captions = [ax.get_ylabel() for ax in fig.axes[::4]]
    assert [c.split(" |")[0] for c in captions] == ["best", "best", "worst", "worst"]
    plt.close(fig)


def test_class_without_anomalies_is_left_out_of_the_mean_and_said_so():
    arrays, predictions = _arrays_and_predictions()
    arrays["labels"][arrays["classes"] == "b"] = 0
    arrays["masks"][arrays["classes"] == "b"] = False
    table = compute_metrics_table(predictions, arrays, {"aupro_fpr_limit": 0.3})
    assert np.isnan(table.loc[1, "image_auroc"])
    assert table.loc[2, "n_classes"] == 1
    assert table.loc[2, "image_auroc"] == table.loc[0, "image_auroc"]
    assert not any("/b/image_auroc" in k for k in metrics_for_mlflow(table))
    arrays["labels"][:] = 0
    arrays["masks"][:] = False
    fig = overlays_figure(predictions, arrays, {"n_overlays": 2})
    assert "no anomalous test image" in fig.axes[0].texts[0].get_text()
    plt.close(fig)


def test_predictions_of_other_data_are_refused():
    arrays, predictions = _arrays_and_predictions()
    arrays["image_paths"] = arrays["image_paths"].copy()
    arrays["image_paths"][predictions["index"][3]] = "replaced.png"
    with pytest.raises(ValueError, match="other images"):
        compute_metrics_table(predictions, arrays, {"aupro_fpr_limit": 0.3})
    predictions["index"] = predictions["index"][:0]
    with pytest.raises(ValueError, match="no test images"):
        compute_metrics_table(predictions, arrays, {"aupro_fpr_limit": 0.3})


def test_make_predictions_is_the_format_evaluation_reads():
    arrays, predictions = _arrays_and_predictions()
    index = predictions["index"]
    made = make_predictions(
        arrays,
        index,
        predictions["scores"].astype(np.float64),
        predictions["maps"].astype(np.float32),
        "toy",
        "a toy scorer",
        "mean(image_auroc) on synthetic_validation",
        train_seconds=2,
    )
    assert made["scores"].dtype == np.float32 and made["maps"].dtype == np.float16
    assert made["train_seconds"] == 2.0 and "score_seconds" not in made
    for key in ("index", "image_paths", "method", "description", "checkpoint_rule"):
        np.testing.assert_array_equal(made[key], predictions[key])
    table = compute_metrics_table(made, arrays, {"aupro_fpr_limit": 0.3})
    assert table["checkpoint_rule"].iloc[0] == str(predictions["checkpoint_rule"])
