"""DiffusionAD's Kedro nodes: training with validation-chosen checkpoints, resume
after a kill, test scoring in the predictions format, serving, parameters."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import kedro_ad.synthesis as synthesis_module
from kedro_ad.metrics.checkpoint import CheckpointRule
from kedro_ad.pipelines.diffusionad import (
    create_inference_pipeline,
    create_pipeline,
    nodes,
)

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32

PARAMS = {
    "model": {
        "image_size": SIZE,
        "per_class": False,
        "num_train_timesteps": 1000,
        "beta_start": 1e-4,
        "beta_end": 2e-2,
        "denoiser": {
            "block_out_channels": [8, 16],
            "layers_per_block": 1,
            "attention_resolutions": [16],
            "attention_head_dim": 8,
            "norm_num_groups": 4,
        },
        "segmentation": {"block_out_channels": [8, 16, 16]},
    },
    "loss": {
        "timestep_ranges": [[0, 399]],
        "noise_loss_on": "normal",
        "focal_weight": 5.0,
        "focal_alpha": 0.5,
        "focal_gamma": 4.0,
    },
    "training": {
        "max_steps": 6,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "checkpoint_dir": None,
        "checkpoint_every": 2,
        "validate_every": 3,
        "seed": 0,
    },
    "inference": {"timesteps": [100, 200], "batch_size": 8, "seed": 0},
}
SYNTHESIS = {
    "texture_dir": None,
    "texture_classes": ["tex"],
    "synthesis": {"beta_range": [0.2, 0.8]},
}


def _arrays(size=48, n_train=6, n_val=3, n_test=4):
    """Two classes; test rows carry a bright square (label 1) in half of them."""
    rng = np.random.default_rng(0)
    rows = []
    for cls, level in (("tex", 90), ("obj", 160)):
        for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
            rows += [(cls, split, level)] * n
    n = len(rows)
    images = np.zeros((n, size, size, 3), np.uint8)
    masks = np.zeros((n, size, size), bool)
    labels = np.zeros(n, np.int64)
    for i, (_, split, level) in enumerate(rows):
        images[i] = np.clip(rng.normal(level, 6, (size, size, 3)), 0, 255)
        if split == "test" and i % 2:
            images[i, 10:20, 12:22] = 250
            masks[i, 10:20, 12:22] = True
            labels[i] = 1
    return {
        "images": images,
        "masks": masks,
        "labels": labels,
        "classes": np.array([r[0] for r in rows]),
        "splits": np.array([r[1] for r in rows]),
        "image_paths": np.array([f"img_{i}.png" for i in range(n)]),
    }


def _validation(arrays):
    from kedro_ad.pipelines.anomaly_synthesis.nodes import build_synthetic_validation

    return build_synthetic_validation(arrays, {**SYNTHESIS, "seed": 1})


def _params(**training):
    params = copy.deepcopy(PARAMS)
    params["training"].update(training)
    return params


def _weights(model):
    return {
        f"{name}.{k}": v.clone()
        for name in ("unet", "seg")
        for k, v in model[name].state_dict().items()
    }


class _Killed(RuntimeError):
    pass


@pytest.mark.slow
def test_a_killed_run_resumes_and_matches_and_test_rows_are_never_read(
    tmp_path, monkeypatch
):
    arrays = _arrays()
    val = _validation(arrays)
    # the reference run also sees other test images: training must not read them
    changed = copy.deepcopy(arrays)
    changed["images"][changed["splits"] == "test"] = 0
    reference, ref_history, _ = nodes.train_diffusionad(
        changed, val, _params(checkpoint_dir=str(tmp_path / "a")), SYNTHESIS
    )

    real = synthesis_module.synthesize_batch
    calls = {"n": 0}

    def dies_at_step_5(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # step index 4: checkpoints exist for steps 2 and 4
            raise _Killed("killed mid-training")
        return real(*args, **kwargs)

    folder = tmp_path / "b"
    monkeypatch.setattr(synthesis_module, "synthesize_batch", dies_at_step_5)
    with pytest.raises(_Killed):
        nodes.train_diffusionad(
            arrays, val, _params(checkpoint_dir=str(folder)), SYNTHESIS
        )
    assert (folder / "checkpoint_4").is_dir()
    monkeypatch.setattr(synthesis_module, "synthesize_batch", real)
    resumed, history, _ = nodes.train_diffusionad(
        arrays, val, _params(checkpoint_dir=str(folder)), SYNTHESIS
    )
    for key, value in _weights(reference).items():
        torch.testing.assert_close(_weights(resumed)[key], value, msg=key)
    assert history["val_score"] == ref_history["val_score"]
    assert not any(folder.glob("checkpoint_*"))  # a clean finish leaves nothing


@pytest.mark.slow
def test_scoring_writes_predictions_of_the_test_split_at_dataset_size():
    arrays = _arrays()
    model, history, figure = nodes.train_diffusionad(
        arrays, _validation(arrays), _params(), SYNTHESIS
    )
    assert model["settings"]["image_size"] == SIZE
    assert model["settings"]["classes"] is None
    assert {"loss", "noise_mse", "focal", "smooth_l1", "val_score"} <= set(history)
    assert [p["step"] for p in history["val_score"]] == [3, 6]
    assert figure is not None
    predictions, figure = nodes.score_diffusionad(model, arrays, PARAMS)
    test = np.flatnonzero(arrays["splits"] == "test")
    np.testing.assert_array_equal(predictions["index"], test)
    np.testing.assert_array_equal(
        predictions["image_paths"], arrays["image_paths"][test]
    )
    assert predictions["maps"].shape == (len(test), 48, 48)
    assert predictions["maps"].dtype == np.float16
    assert predictions["scores"].shape == (len(test),)
    assert str(predictions["method"]) == "diffusionad"
    assert str(predictions["checkpoint_rule"]) == CheckpointRule().name
    assert len(figure.axes) == 2 * 4  # one anomalous test image per class
    # serving the same test images gives the same scores; maps follow the input size
    served = nodes.predict_diffusionad(model, arrays["images"][test], PARAMS)
    np.testing.assert_allclose(served["scores"], predictions["scores"], atol=1e-5)
    odd = nodes.predict_diffusionad(model, arrays["images"][test][:, :40, :36], PARAMS)
    assert odd["maps"].shape == (len(test), 40, 36)


@pytest.mark.slow
def test_per_class_models_need_the_classes():
    arrays = _arrays()
    params = _params(max_steps=2, validate_every=2)
    params["model"]["per_class"] = True
    model, history, _ = nodes.train_diffusionad(
        arrays, _validation(arrays), params, SYNTHESIS
    )
    assert model["settings"]["classes"] == ["obj", "tex"]
    assert {"unet_0", "seg_0", "unet_1", "seg_1"} <= set(model)
    assert "tex/val_score" in history and "obj/loss" in history
    test = arrays["splits"] == "test"
    with pytest.raises(ValueError, match="pass"):
        nodes.predict_diffusionad(model, arrays["images"][test], params)
    with pytest.raises(ValueError, match=r"classes \['zzz'\] are unknown"):
        nodes.predict_diffusionad(
            model, {"images": arrays["images"][:2], "classes": ["tex", "zzz"]}, params
        )
    out = nodes.predict_diffusionad(
        model,
        {"images": arrays["images"][test], "classes": arrays["classes"][test]},
        params,
    )
    assert out["scores"].shape == (int(test.sum()),)


def test_pipelines_are_wired_as_the_registry_expects():
    pipeline = create_pipeline()
    train = next(n for n in pipeline.nodes if n.name.endswith("train_diffusionad_node"))
    assert train.inputs == [
        "dataset_arrays",
        "synthetic_validation",
        "params:diffusionad",
        "params:anomaly_synthesis",
        "params:checkpoint_rule",
    ]
    assert train.outputs == [
        "diffusionad.model",
        "diffusionad.training_history",
        "diffusionad.figure_training",
    ]
    assert "diffusionad.evaluation_table" in pipeline.all_outputs()
    inference = create_inference_pipeline()
    (node,) = inference.nodes
    assert node.tags == {"inference"}
    assert node.inputs == [
        "diffusionad.model",
        "diffusionad.images",
        "params:diffusionad",
    ]
    assert node.outputs == ["diffusionad.inference_output"]
    own = [n for n in pipeline.nodes if "diffusionad_node" in n.name]
    assert len(own) == 2 and all("training" in n.tags for n in own)


@pytest.mark.parametrize("env", ["base", "paper"])
def test_parameter_files_build_networks(env):
    params = yaml.safe_load(
        (ROOT / f"conf/{env}/parameters_diffusionad.yml").read_text()
    )
    params = params["diffusionad"]
    base = yaml.safe_load((ROOT / "conf/base/parameters_diffusionad.yml").read_text())
    assert set(params) == set(base["diffusionad"])  # paper repeats the whole block
    network = nodes.build_network(params)
    size = params["model"]["image_size"]
    assert network.unet.config.sample_size == size
    attn = [t for t in network.unet.config.down_block_types if t.startswith("Attn")]
    assert len(attn) == len(params["model"]["denoiser"]["attention_resolutions"])
