"""The OK/NG threshold: one rule (F1-max on synthetic_validation) for every method,
the node that applies it to a method's own predict function, and the served answer."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner
from sklearn.metrics import f1_score

from kedro_ad.metrics.threshold import NG, OK, choose_threshold, decide
from kedro_ad.pipelines.threshold import create_pipeline
from kedro_ad.serving import served_inference


def test_threshold_maximises_f1_and_sits_between_the_two_classes():
    labels = [0, 0, 0, 0, 1, 0, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9]
    chosen = choose_threshold(labels, scores)
    # brute force over every cut: no threshold does better on these images
    best = max(f1_score(labels, np.asarray(scores) >= t) for t in sorted(set(scores)))
    assert chosen["f1"] == pytest.approx(best)
    assert chosen["threshold"] == pytest.approx((0.4 + 0.35) / 2)
    decisions = decide(scores, chosen["threshold"])
    assert f1_score(labels, decisions == NG) == pytest.approx(best)
    assert chosen["precision"] == pytest.approx(4 / 5)
    assert chosen["recall"] == 1.0 and chosen["false_positive_rate"] == 0.2
    assert (chosen["n_images"], chosen["n_anomalous"]) == (9, 4)
    assert "synthetic_validation" in chosen["rule"]


def test_ties_keep_the_highest_threshold_and_bad_inputs_are_refused():
    # NG from 0.9 up or from 0.6 up: F1 = 2/3 both; the stricter one rejects less
    chosen = choose_threshold([1, 0, 0, 1], [0.9, 0.8, 0.7, 0.6])
    assert chosen["threshold"] == pytest.approx(0.85)
    assert decide([0.9, 0.85, 0.84], 0.85).tolist() == [NG, NG, OK]
    with pytest.raises(ValueError, match="good and defective"):
        choose_threshold([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        choose_threshold([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="2 labels for 3 scores"):
        choose_threshold([0, 1], [0.1, 0.2, 0.3])


def _brightness(model: dict, images, params: dict) -> dict:
    """A toy method: the score is the mean brightness times the model's gain."""
    x = np.asarray(images["images"], dtype=np.float32) / 255
    maps = x.mean(axis=-1) * model["gain"]
    return {"scores": maps.reshape(len(x), -1).mean(axis=1), "maps": maps}


def test_threshold_node_runs_the_methods_own_predict_on_synthetic_validation():
    rng = np.random.default_rng(0)
    n = 40
    labels = np.arange(n) % 2
    images = rng.integers(0, 100, (n, 8, 8, 3)).astype(np.uint8)
    masks = np.zeros((n, 8, 8), dtype=bool)
    images[labels == 1, 2:6, 2:6] += 120  # the defects are bright squares
    masks[labels == 1, 2:6, 2:6] = True
    inference = Pipeline(
        [
            Node(
                _brightness,
                ["toy.model", "toy.images", "params:toy"],
                "toy.inference_output",
                name="predict_toy_node",
            )
        ]
    )
    catalog = DataCatalog(
        {
            "toy.model": MemoryDataset({"gain": 2.0}),
            "params:toy": MemoryDataset({}),
            "params:checkpoint_rule": MemoryDataset(None),
            "synthetic_validation": MemoryDataset(
                {
                    "images": images,
                    "classes": np.array(["c"] * n),
                    "labels": labels,
                    "masks": masks,
                }
            ),
            "toy.threshold": MemoryDataset(),
            "toy.threshold_metrics": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline("toy", inference), catalog)
    threshold = catalog.load("toy.threshold")
    scores = _brightness({"gain": 2.0}, {"images": images}, {})["scores"]
    expected = choose_threshold(labels, scores)
    assert {k: threshold[k] for k in expected} == pytest.approx(expected)
    assert threshold["f1"] == 1.0  # the toy separates its defects perfectly
    assert threshold["val_metrics"]["val_image_auroc"] == 1.0
    assert "val_pixel_aupro" in threshold["val_metrics"]
    metrics = catalog.load("toy.threshold_metrics")
    assert metrics["toy/threshold"]["value"] == pytest.approx(threshold["threshold"])

    # the served pipeline: the same predict node, then the shared decision
    served = served_inference("toy", inference)
    assert served.inputs() == {"toy.model", "toy.images", "toy.threshold", "params:toy"}
    assert served.outputs() == {"toy.inference_output"}
    catalog["toy.images"] = MemoryDataset({"images": images[:4]})
    SequentialRunner().run(served, catalog)
    out = catalog.load("toy.inference_output")
    assert set(out) == {"scores", "maps", "decisions", "threshold"}
    assert out["decisions"].tolist() == [OK, NG, OK, NG]
    assert out["threshold"] == threshold["threshold"]
