"""The compare pipeline: stored predictions of every method, one table per data
version, per class, per defect type and the class mean."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from helpers import reference_aupro
from kedro_ad.pipelines.compare.nodes import compare_stored
from kedro_ad.pipelines.evaluation.nodes import make_predictions

DATA = {"source": "embedded", "root": "x", "image_size": 16}


def _arrays(version: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    classes, defects, labels = [], [], []
    for cls, kinds in (("a", ("dent", "scratch")), ("b", ("hole",))):
        for kind in ("good", "good", "good", *[k for k in kinds for _ in range(2)]):
            classes.append(cls)
            defects.append(kind)
            labels.append(int(kind != "good"))
    n = len(labels)
    masks = np.zeros((n, 16, 16), dtype=bool)
    for i in np.flatnonzero(labels):
        top, left = rng.integers(0, 10, 2)
        masks[i, top : top + 5, left : left + 5] = True
    return {
        "images": np.zeros((n, 16, 16, 3), np.uint8),
        "masks": masks,
        "labels": np.asarray(labels),
        "classes": np.asarray(classes),
        "splits": np.asarray(["test"] * n),
        "defect_types": np.asarray(defects),
        "image_paths": np.asarray([f"{version}/{i}.png" for i in range(n)]),
        "data_version": np.asarray(version),
    }


def _predictions(arrays: dict, method: str, seed: int, **timings) -> dict:
    rng = np.random.default_rng(seed)
    maps = arrays["masks"] * 1.0 + rng.normal(0, 0.7, arrays["masks"].shape)
    scores = maps.reshape(len(maps), -1).max(axis=1)
    index = np.arange(len(scores))
    return make_predictions(
        arrays, index, scores, maps, method, f"{method} method", "rule", **timings
    )


def test_one_table_per_data_version_with_classes_defect_types_and_means():
    current, older = _arrays("v1"), _arrays("v0", seed=1)
    new = _predictions(current, "new", 0, train_seconds=10.0, score_seconds=2.0)
    old_format = _predictions(current, "legacy", 1)
    for key in ("labels", "classes", "defect_types", "masks", "data_version"):
        old_format.pop(key)  # what predictions written before now look like
    stranger = dict(old_format, image_paths=np.asarray(["elsewhere.png"] * 12))
    stranger["method"] = np.asarray("stranger")
    stored = {
        "new": new,
        "legacy": old_format,
        "before": _predictions(older, "before", 2),
        "stranger": stranger,
    }
    table, text, figure = compare_stored(
        {k: (lambda v=v: v) for k, v in stored.items()},
        current,
        {"aupro_fpr_limit": 0.3},
        DATA,
    )
    versions = table.groupby("data_version")["method"].unique()
    assert sorted(versions["v1"]) == ["legacy", "new"]
    assert list(versions["v0"]) == ["before"]
    assert "stranger" not in set(table["method"]) and "'stranger'" in text
    assert text.index("`v1`") < text.index("`v0`")  # the current data first
    assert len(figure.axes) == 2

    rows = table[(table["method"] == "new")].set_index(
        ["level", "class", "defect_type"]
    )
    assert len(rows.loc["defect_type"]) == 3  # a/dent, a/scratch, b/hole
    # a defect type: its images against the class's good ones, checked by sklearn
    sel = (current["classes"] == "a") & np.isin(
        current["defect_types"], ["good", "dent"]
    )
    maps = new["maps"][sel].astype(np.float32)
    expected = roc_auc_score(current["labels"][sel], new["scores"][sel])
    dent = rows.loc[("defect_type", "a", "dent")]
    assert dent["image_auroc"] == pytest.approx(expected)
    assert dent["pixel_aupro"] == pytest.approx(
        reference_aupro(current["masks"][sel], maps), abs=1e-6
    )
    assert dent["n_images"] == 5 and dent["n_anomalous"] == 2
    mean = rows.loc[("mean", "mean", "all")]
    by_class = rows.loc["class"]
    assert mean["pixel_auroc"] == pytest.approx(by_class["pixel_auroc"].mean())
    assert mean["images_per_second"] == pytest.approx(12 / 2.0)
    assert mean["train_seconds"] == 10.0
    assert np.isnan(table[table["method"] == "legacy"]["train_seconds"]).all()
