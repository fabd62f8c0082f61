"""PaDiM: the data's Gaussians, a Mahalanobis distance, defects that light up."""

import numpy as np
import pytest
import torch

from kedro_ad.models.maps import to_unit_images
from kedro_ad.models.padim import (
    build_padim,
    mahalanobis_sq,
    padim_from_arrays,
    padim_to_arrays,
    select_channels,
)
from kedro_ad.pipelines.padim.nodes import fit_padim, predict_padim, score_padim

BACKBONE = {"name": "tf_efficientnet_lite0", "layers": [1, 2, 3], "pretrained": True}


def _images(rng, n, size=32):
    """Smooth textured images around a grey level (the 'normal' class)."""
    ramp = np.linspace(60, 180, size, dtype=np.float32)
    base = (ramp[None, :, None] + ramp[:, None, None]) / 2
    out = base[None] + rng.normal(0, 6, (n, size, size, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def test_fit_matches_numpy_mean_and_inverse_covariance():
    rng = np.random.default_rng(0)
    images = _images(rng, 11)
    model = build_padim(BACKBONE, n_features=12, class_names=["a"], image_size=32)
    model.fit([images], batch_size=4, progress=False)  # three batches, streamed
    emb = model.embed(to_unit_images(images, 32)).double()  # [N, d, 8, 8]
    flat = emb.flatten(2).permute(2, 0, 1).numpy()  # [P, N, d]
    for p in (0, 27, 63):
        np.testing.assert_allclose(model.mean[0, p], flat[p].mean(0), atol=1e-5)
        cov = np.cov(flat[p], rowvar=False) + 0.01 * np.eye(12)
        np.testing.assert_allclose(
            model.inv_covariance[0, p].numpy(), np.linalg.inv(cov), rtol=2e-3, atol=2e-3
        )


def test_mahalanobis_matches_explicit_formula():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(2, 3, 2, 2, generator=g)
    mean = torch.randn(4, 3, generator=g)
    a = torch.randn(4, 3, 3, generator=g)
    inv = a @ a.transpose(1, 2) + torch.eye(3)
    dist = mahalanobis_sq(emb, mean, inv)
    for b in range(2):
        for p in range(4):
            delta = emb[b, :, p // 2, p % 2] - mean[p]
            assert torch.isclose(dist[b, p // 2, p % 2], delta @ inv[p] @ delta)


def test_channel_subset():
    index = select_channels(176, 100, seed=3)
    assert len(set(index.tolist())) == 100 and index.max() < 176
    assert np.array_equal(index, select_channels(176, 100, seed=3))
    with pytest.raises(ValueError, match="n_features"):
        select_channels(10, 11, 0)


def _arrays(rng, size=32):
    n_train, n_val, n_test = 16, 4, 6
    images = _images(rng, n_train + n_val + n_test, size)
    masks = np.zeros(images.shape[:3], bool)
    test = slice(n_train + n_val, None)
    images[n_train + n_val + 3 :, 18:26, 6:14] = (240, 20, 20)  # a red patch
    masks[n_train + n_val + 3 :, 18:26, 6:14] = True
    n = len(images)
    return {
        "images": images,
        "masks": masks,
        "labels": masks.reshape(n, -1).any(1).astype(int),
        "classes": np.repeat("a", n),
        "splits": np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test),
        "image_paths": np.array([f"img{i}.png" for i in range(n)]),
    }, test


PARAMS = {
    "backbone": BACKBONE,
    "n_features": 40,
    "covariance_eps": 0.01,
    "smoothing_sigma": 2.0,
    "seed": 0,
    "batch_size": 8,
}


@pytest.mark.slow
def test_nodes_find_and_localise_a_defect_without_reading_test():
    arrays, _ = _arrays(np.random.default_rng(1))
    model = fit_padim(arrays, PARAMS)
    pred = score_padim(model, arrays, PARAMS)
    assert pred["scores"][3:].min() > pred["scores"][:3].max()
    peak = np.unravel_index(pred["maps"][4].astype(np.float32).argmax(), (32, 32))
    assert 16 <= peak[0] <= 28 and 4 <= peak[1] <= 16
    # the test rows never reach the model; the validation rows set its scale
    changed = {**arrays, "images": arrays["images"].copy()}
    changed["images"][20:] = 255 - changed["images"][20:]
    again = fit_padim(changed, PARAMS)
    np.testing.assert_array_equal(model["inv_covariance"], again["inv_covariance"])
    np.testing.assert_array_equal(model["val_map_mean"], again["val_map_mean"])
    changed["images"][16:20] = 0
    assert fit_padim(changed, PARAMS)["val_map_mean"][0] != model["val_map_mean"][0]


def test_arrays_round_trip_and_served_prediction():
    arrays, _ = _arrays(np.random.default_rng(2))
    model = fit_padim(arrays, PARAMS)
    again = padim_from_arrays(padim_to_arrays(padim_from_arrays(model)))
    assert torch.equal(again.inv_covariance, torch.from_numpy(model["inv_covariance"]))
    test = arrays["images"][20:]
    big = np.repeat(np.repeat(test, 2, axis=1), 2, axis=2)  # 64x64 input
    out = predict_padim(model, big, PARAMS)
    assert out["maps"].shape == (6, 64, 64) and out["maps"].dtype == np.float32
    assert out["scores"][3:].min() > out["scores"][:3].max()
    with pytest.raises(ValueError, match=r"classes \[.b.\] are unknown"):
        predict_padim(model, {"images": test, "classes": np.repeat("b", 6)}, PARAMS)


def test_pipelines_wire_the_catalog_names():
    from kedro_ad.pipelines.padim import create_inference_pipeline, create_pipeline

    pipeline = create_pipeline()
    assert pipeline.inputs() >= {"dataset_arrays", "params:padim"}
    assert {"padim.model", "padim.predictions", "padim.evaluation_table"} <= set(
        pipeline.all_outputs()
    )
    inference = create_inference_pipeline()
    assert len(inference.nodes) == 1 and inference.nodes[0].tags == {"inference"}
    assert inference.inputs() == {"padim.model", "padim.images", "params:padim"}


def test_multi_class_model_needs_classes():
    rng = np.random.default_rng(4)
    model = build_padim(BACKBONE, 8, ["a", "b"], image_size=32)
    model.fit([_images(rng, 3), _images(rng, 3)], progress=False)
    with pytest.raises(ValueError, match="pass each image's class"):
        model.class_ids(None, 2)
