"""RAN: Eq. 10-11 as written, a working class-conditioned UNet, Algorithm 1, nodes."""

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from sklearn.metrics import roc_auc_score

from kedro_ad.data.datasets import ModelFolderDataset
from kedro_ad.metrics.checkpoint import CheckpointRule
from kedro_ad.models.maps import to_unit_images
from kedro_ad.models.padim import build_padim
from kedro_ad.models.ran import (
    RanUNet,
    build_ran,
    ensemble,
    feature_mahalanobis_map,
    feature_mse_map,
    fit_residual_gaussian,
    gradient_denoise,
    kl_weights,
    pixel_kl_map,
    ran_from_parts,
    ran_to_parts,
)
from kedro_ad.pipelines.ran.nodes import (
    predict_ran,
    score_ran,
    train_ran,
)

BACKBONE = {"name": "tf_efficientnet_lite0", "layers": [1, 2], "pretrained": True}
MODEL = {
    "image_size": 16,
    "backbone": BACKBONE,
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "attention": [False, True],
    "norm_num_groups": 4,
    "attention_head_dim": 8,
}
SCORING = {
    "timesteps": [5, 50],
    "alpha": 0.5,
    "smoothing_sigma": 0.0,
    "noise_samples": 1,
}


def test_pixel_term_is_the_ddpm_kl_between_posterior_and_model():
    """Independent check: the KL of two Gaussians with the posterior variance."""
    sched = DDPMScheduler(num_train_timesteps=1000)
    g = torch.Generator().manual_seed(0)
    x0, eps, eps_pred = (torch.randn(1, 3, 4, 4, generator=g) for _ in range(3))
    x0, eps, eps_pred = (v.double() for v in (x0, eps, eps_pred))
    for t, w in zip([5, 50, 100], kl_weights(sched, [5, 50, 100]), strict=True):
        a_bar = sched.alphas_cumprod[t].double()
        a_prev = sched.alphas_cumprod[t - 1].double()
        beta = sched.betas[t].double()
        x_t = a_bar.sqrt() * x0 + (1 - a_bar).sqrt() * eps
        c_x0 = a_prev.sqrt() * beta / (1 - a_bar)  # posterior mean coefficients
        c_xt = (1 - beta).sqrt() * (1 - a_prev) / (1 - a_bar)
        x0_model = (x_t - (1 - a_bar).sqrt() * eps_pred) / a_bar.sqrt()
        var = beta * (1 - a_prev) / (1 - a_bar)
        diff = c_x0 * x0 + c_xt * x_t - (c_x0 * x0_model + c_xt * x_t)
        kl = (diff**2 / (2 * var)).sum(1)
        torch.testing.assert_close(
            pixel_kl_map(eps, eps_pred, w.double()), kl, rtol=1e-4, atol=1e-6
        )
    with pytest.raises(ValueError, match=">= 1"):
        kl_weights(sched, [0, 5])


def test_ensemble_is_equation_11():
    pixel = torch.tensor([[[[3.0]], [[10.0]]]])  # [B=1, T=2, 1, 1]
    feature = torch.tensor([[[[0.2]], [[0.4]]]])
    mean, std = torch.tensor([[1.0, 4.0]]), torch.tensor([[2.0, 3.0]])
    a = ensemble(pixel, feature, mean, std, alpha=0.25)
    expected = 0.25 * ((3 - 1) / 2 + (10 - 4) / 3) + 0.75 * (0.2 + 0.4)
    assert torch.isclose(a[0, 0, 0], torch.tensor(expected))
    f = torch.zeros(1, 2, 3, 3)
    f[0, :, 1, 1] = torch.tensor([1.0, 3.0])
    assert feature_mse_map(f, torch.zeros_like(f))[0, 1, 1] == 5.0  # Eq. 10 mean


def test_unet_conditions_on_class_and_round_trips(tmp_path):
    torch.manual_seed(0)
    unet = RanUNet(
        sample_size=16,
        class_names=["a", "b"],
        feature_channels=5,
        feature_stride=2,
        block_out_channels=(8, 16),
        attention=(False, False),
        norm_num_groups=4,
    )
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 5])
    eps, feats = unet(x, t, unet.class_ids(["a", "a"], 2))
    assert eps.shape == (2, 3, 16, 16) and feats.shape == (2, 5, 8, 8)
    with torch.no_grad():  # class embeddings start at random, so classes differ
        other, _ = unet(x, t, unet.class_ids(["b", "b"], 2))
    assert not torch.allclose(eps, other)
    unet.save_pretrained(tmp_path / "unet")
    again = RanUNet.from_pretrained(tmp_path / "unet").eval()
    assert torch.allclose(
        again(x, t, torch.tensor([0, 1]))[0], unet.eval()(x, t, torch.tensor([0, 1]))[0]
    )
    with pytest.raises(ValueError, match="class-conditioned"):
        unet.class_ids(None, 2)
    with pytest.raises(ValueError, match=r"classes \[.c.\] are unknown"):
        unet.class_ids(["c"], 1)


def _ran(classes=("a",)):
    return build_ran(MODEL, SCORING, list(classes), feature_image_size=32, seed=0)


def test_normalisation_makes_the_pixel_term_standard_on_normal_images():
    ran = _ran(("a", "b")).eval()
    g = torch.Generator().manual_seed(1)
    images = torch.rand(6, 3, 32, 32, generator=g)
    ids = torch.tensor([0, 0, 0, 1, 1, 1])
    pixel, feature = ran.raw_maps(images, ids, torch.Generator().manual_seed(2), 4)
    assert pixel.shape == feature.shape == (6, 2, 16, 16)
    ran.set_normalisation(pixel, feature, ids)
    ran.alpha = 1.0  # pixel term only: each timestep contributes N(0, 1) values
    ran.sigma = 0.0
    maps = ran.combine(pixel, feature, ids, 16)[1]
    expected = torch.zeros(6, 16, 16)
    for c in (0, 1):
        for t in range(2):
            z = (pixel[ids == c, t] - ran.pixel_score_mean[c, t]) / (
                ran.pixel_score_std[c, t]
            )
            assert abs(float(z.mean())) < 1e-4 and abs(float(z.std()) - 1) < 1e-2
            expected[ids == c] += z
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="classes \\['b'\\]"):
        ran.set_normalisation(pixel[:3], feature[:3], ids[:3])


def test_feature_mahalanobis_is_the_errors_distance_to_their_gaussian():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(4, 4))
    residuals = torch.from_numpy(
        np.einsum("nchw,cd->ndhw", rng.normal(size=(50, 4, 2, 3)), mixing)
    ).float()
    mean, inv = fit_residual_gaussian(residuals, eps=0.01)
    assert mean.shape == (6, 4) and inv.shape == (6, 4, 4)
    at = residuals[:, :, 1, 2].double().numpy()  # position 1 * 3 + 2
    reference = np.linalg.inv(np.cov(at.T) + 0.01 * np.eye(4))
    np.testing.assert_allclose(inv[5].numpy(), reference, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean[5].numpy(), at.mean(0), atol=1e-6)
    x = torch.from_numpy(rng.normal(size=(1, 4, 2, 3))).float()
    dist = feature_mahalanobis_map(x, mean[None], inv[None])
    delta = x[0, :, 1, 2].double().numpy() - at.mean(0)
    assert float(dist[0, 1, 2]) == pytest.approx(
        float(np.sqrt(delta @ reference @ delta)), rel=1e-4
    )
    with pytest.raises(ValueError, match=">= 2 images"):
        fit_residual_gaussian(residuals[:1])


def test_position_normalisation_lets_a_small_defect_beat_a_busy_normal_spot():
    """Why RAN's image score lost to PaDiM on Magnetic Tile: one mean and std per
    map lets the place where every normal image is noisy win the max."""
    g = torch.Generator().manual_seed(0)
    normal = torch.rand(30, 1, 8, 8, generator=g)
    normal[:, :, 0, 0] += 5 * torch.rand(30, 1, generator=g)  # a busy corner
    anomaly = torch.rand(4, 1, 8, 8, generator=g)
    anomaly[:, :, 5, 5] += 3.0  # a defect where normals are calm
    pixel = torch.cat([normal, anomaly]).expand(-1, 2, -1, -1).contiguous()
    labels = np.r_[np.zeros(30), np.ones(4)]
    ids = torch.zeros(34, dtype=torch.long)
    aurocs = {}
    for mode in ("class", "position"):
        ran = build_ran(
            MODEL,
            {**SCORING, "normalisation": mode},
            ["a"],
            feature_image_size=32,
        ).eval()
        ran.alpha, ran.sigma = 1.0, 0.0
        pixel8 = torch.nn.functional.interpolate(pixel, size=16)
        ran.set_normalisation(pixel8[:30], pixel8[:30], ids[:30])
        scores = ran.combine(pixel8, pixel8, ids, 16)[0].numpy()
        aurocs[mode] = roc_auc_score(labels, scores)
    assert aurocs["position"] > 0.95 > aurocs["class"]


def test_mahalanobis_feature_term_is_fitted_saved_and_required():
    scoring = {**SCORING, "feature_metric": "mahalanobis", "residual_features": 8}
    ran = build_ran(MODEL, scoring, ["a", "b"], feature_image_size=32).eval()
    assert len(ran.residual_index) == 8
    g = torch.Generator().manual_seed(1)
    images = torch.rand(8, 3, 32, 32, generator=g)
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    with pytest.raises(RuntimeError, match="not fitted"):
        ran.raw_maps(images, ids, torch.Generator().manual_seed(2), 4)
    ran.fit_feature_gaussian(images, ids, torch.Generator().manual_seed(3), 4)
    assert ran.residual_mean.shape == (2, 64, 8)
    assert ran.residual_inv_covariance.shape == (2, 64, 8, 8)
    pixel, feature = ran.raw_maps(images, ids, torch.Generator().manual_seed(2), 4)
    assert torch.isfinite(feature).all() and (feature >= 0).all()
    ran.set_normalisation(pixel, feature, ids)
    again = ran_from_parts(ran_to_parts(ran))
    assert again.feature_metric == "mahalanobis" and again.normalisation == "class"
    p2, f2 = again.raw_maps(images, ids, torch.Generator().manual_seed(2), 4)
    torch.testing.assert_close(f2, feature)
    torch.testing.assert_close(
        again.combine(p2, f2, ids, 32)[0], ran.combine(pixel, feature, ids, 32)[0]
    )
    with pytest.raises(ValueError, match="feature_metric"):
        build_ran(MODEL, {**SCORING, "feature_metric": "l1"}, ["a"])


def test_a_model_saved_with_flat_statistics_still_loads():
    ran = _ran(("a", "b")).eval()
    parts = ran_to_parts(ran)
    for name in ("pixel_score_mean", "pixel_score_std"):
        parts[name] = np.full((2, 2), 3.0 if name.endswith("std") else 1.0, np.float32)
    for name in ("residual_mean", "residual_inv_covariance", "residual_index"):
        parts.pop(name)
    parts["config"].pop("feature_metric")
    loaded = ran_from_parts(parts)
    assert loaded.feature_metric == "mse"
    assert float(loaded.pixel_score_std[1, 1, 7, 7]) == 3.0


@pytest.mark.slow
def test_gradient_descent_lowers_padim_loss_and_denoising_keeps_range():
    g = torch.Generator().manual_seed(3)
    normal = 0.5 + 0.05 * torch.randn(12, 3, 32, 32, generator=g)
    padim = build_padim(BACKBONE, 20, ["a"], image_size=32)
    padim.fit([normal.clamp(0, 1)], progress=False)
    ran = _ran().eval()
    broken = normal[:2].clone().clamp(0, 1)
    broken[:, :, 8:16, 8:16] = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    ids = torch.zeros(2, dtype=torch.long)
    kwargs = {"steps": 10, "learning_rate": 0.05}
    _, losses = gradient_denoise(
        ran, padim, broken, ids, ids, denoise_every=99, **kwargs
    )
    assert losses[-1] < 0.8 * losses[0]  # Eq. 13 alone descends Eq. 12
    out, _ = gradient_denoise(ran, padim, broken, ids, ids, denoise_every=5, **kwargs)
    assert out.shape == broken.shape and 0 <= out.min() and out.max() <= 1
    # with omega < 1 the image decays towards grey (0 in [-1, 1])
    decayed, _ = gradient_denoise(
        ran,
        padim,
        broken,
        ids,
        ids,
        steps=5,
        learning_rate=0.0,
        weight_decay=0.5,
        denoise_every=99,
    )
    torch.testing.assert_close(decayed, ((broken * 2 - 1) * 0.5**5 + 1) / 2)


def _arrays(rng, size=32):
    per_class = {"train": 6, "val": 3, "test": 4}
    rows = []
    for cls, level in (("a", 90), ("b", 160)):
        for split, n in per_class.items():
            for i in range(n):
                image = np.clip(rng.normal(level, 8, (size, size, 3)), 0, 255)
                mask = np.zeros((size, size), bool)
                if split == "test" and i >= 2:
                    mask[10:18, 12:20] = True
                    image[mask] = (250, 250, 0)
                rows.append((image.astype(np.uint8), mask, cls, split))
    images, masks, classes, splits = (np.array(v) for v in zip(*rows, strict=True))
    n = len(images)
    arrays = {
        "images": images,
        "masks": masks,
        "labels": masks.reshape(n, -1).any(1).astype(int),
        "classes": classes,
        "splits": splits,
        "image_paths": np.array([f"{i}.png" for i in range(n)]),
    }
    val = np.flatnonzero(splits == "val")
    syn_images = np.concatenate([images[val], images[val]])
    syn_masks = np.concatenate([masks[val], masks[val]])
    syn_masks[len(val) :, 4:12, 4:12] = True
    syn_images[len(val) :, 4:12, 4:12] = 30
    synthetic = {
        "images": syn_images,
        "masks": syn_masks,
        "labels": np.repeat([0, 1], len(val)),
        "classes": np.concatenate([classes[val], classes[val]]),
        "source_index": np.concatenate([val, val]),
    }
    return arrays, synthetic


def _params(tmp_path):
    return {
        "seed": 0,
        "model": MODEL,
        "loss": {"max_timestep": 200, "feature_weight": 1.0},
        "training": {
            "max_steps": 4,
            "batch_size": 4,
            "learning_rate": 1e-3,
            "checkpoint_dir": str(tmp_path / "ckpt"),
            "checkpoint_every": 2,
            "validate_every": 2,
            "seed": 0,
        },
        "validation": {"max_images": 8, "alpha_images": 16},
        "scoring": {
            **SCORING,
            "alpha_candidates": [0.25, 0.75],
            "feature_metric": "mahalanobis",
            "residual_features": 8,
            "normalisation": "position",
        },
        "inference": {"batch_size": 8, "seed": 0, "return_repairs": True},
        "repair": {
            "steps": 2,
            "learning_rate": 0.02,
            "weight_decay": 1.0,
            "denoise_every": 2,
            "denoise_timestep": 50,
            "n_figure": 2,
        },
    }


@pytest.mark.slow
def test_nodes_train_score_and_serve(tmp_path):
    from kedro_ad.pipelines.padim.nodes import fit_padim

    arrays, synthetic = _arrays(np.random.default_rng(0))
    params = _params(tmp_path)
    padim_params = {
        "backbone": BACKBONE,
        "n_features": 16,
        "covariance_eps": 0.01,
        "smoothing_sigma": 2.0,
        "seed": 0,
        "batch_size": 8,
    }
    padim_model = fit_padim(arrays, padim_params)
    parts, history, _ = train_ran(arrays, synthetic, params)
    assert {"loss", "noise_mse", "feature_mse", "val_score"} <= set(history)
    assert parts["training"]["steps_done"] == 4
    # alpha chosen on synthetic_validation: the candidate with the best val_score
    table = parts["training"]["alpha_choice"]
    assert [row["alpha"] for row in table] == [0.25, 0.75]
    best = max(table, key=lambda row: row["val_score"])["alpha"]
    assert parts["config"]["alpha"] == best
    assert parts["residual_inv_covariance"].shape[-1] == 8
    # normalisation statistics come from validation rows only: test rows are free
    changed = {**arrays, "images": arrays["images"].copy()}
    changed["images"][changed["splits"] == "test"] = 0
    again, _, _ = train_ran(changed, synthetic, params)
    np.testing.assert_array_equal(parts["pixel_score_std"], again["pixel_score_std"])
    assert again["config"]["alpha"] == parts["config"]["alpha"]
    # the model folder round trip keeps the scores
    folder = ModelFolderDataset(str(tmp_path / "model"))
    folder.save(parts)
    loaded = folder.load()
    predictions, _ = score_ran(loaded, padim_model, arrays, params)
    direct, _ = score_ran(parts, padim_model, arrays, params)
    np.testing.assert_allclose(predictions["scores"], direct["scores"], rtol=1e-5)
    assert predictions["maps"].shape == (8, 32, 32)
    assert str(predictions["checkpoint_rule"]) == CheckpointRule().name
    test = arrays["splits"] == "test"
    served = predict_ran(
        loaded,
        padim_model,
        {"images": arrays["images"][test], "classes": arrays["classes"][test]},
        params,
    )
    np.testing.assert_allclose(served["scores"], predictions["scores"], rtol=1e-4)
    assert served["repaired"].shape == (8, 32, 32, 3)
    with pytest.raises(ValueError, match="class-conditioned"):
        predict_ran(loaded, padim_model, arrays["images"][test], params)
    rebuilt = ran_from_parts(ran_to_parts(ran_from_parts(loaded)))
    assert rebuilt.timesteps == [5, 50] and rebuilt.feature_image_size == 32
    assert to_unit_images(arrays["images"][:1], 16).shape == (1, 3, 16, 16)


def test_pipelines_wire_the_catalog_names():
    from kedro_ad.pipelines.ran import create_inference_pipeline, create_pipeline

    pipeline = create_pipeline()
    assert {"dataset_arrays", "synthetic_validation", "padim.model"} <= set(
        pipeline.inputs()
    )
    assert {"ran.model", "ran.predictions", "ran.figure_repairs"} <= set(
        pipeline.all_outputs()
    )
    assert all("training" in node.tags for node in pipeline.nodes)
    inference = create_inference_pipeline()
    assert len(inference.nodes) == 1 and inference.nodes[0].tags == {"inference"}
    assert inference.inputs() == {
        "ran.model",
        "padim.model",
        "ran.images",
        "params:ran",
    }
    assert inference.outputs() == {"ran.inference_output"}
