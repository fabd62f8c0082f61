"""ModelFolderDataset round trips: networks, arrays and settings in one folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from kedro.io import DatasetError

from kedro_ad.data.datasets import ModelFolderDataset


def _unet():
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
    )


def test_round_trip_networks_arrays_and_settings(tmp_path):
    unet = _unet()
    data = {
        "unet": unet,
        "mean": np.arange(6, dtype=np.float32).reshape(2, 3),
        "classes": np.array(["a", "b"]),
        "config": {"image_size": 16, "timesteps": [5, 50]},
    }
    dataset = ModelFolderDataset(str(tmp_path / "model"))
    assert not dataset.exists()
    dataset.save(data)
    loaded = dataset.load()
    assert isinstance(loaded["unet"], UNet2DModel) and not loaded["unet"].training
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded["unet"](x, 3).sample, unet(x, 3).sample)
    np.testing.assert_array_equal(loaded["mean"], data["mean"])
    np.testing.assert_array_equal(loaded["classes"], data["classes"])
    assert loaded["config"] == data["config"]


def test_failed_save_keeps_the_old_model(tmp_path):
    dataset = ModelFolderDataset(str(tmp_path / "model"))
    dataset.save({"config": {"version": 1}})
    with pytest.raises(DatasetError, match="not JSON-able"):
        dataset.save({"config": {"version": 2}, "bad": object()})
    assert dataset.load() == {"config": {"version": 1}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_plain_torch_module_is_refused_with_its_name(tmp_path):
    dataset = ModelFolderDataset(str(tmp_path / "model"))
    with pytest.raises(DatasetError, match="'net' is a Linear"):
        dataset.save({"net": torch.nn.Linear(2, 2)})


def test_missing_model_says_what_to_run(tmp_path):
    with pytest.raises(DatasetError, match="run the pipeline that trains it"):
        ModelFolderDataset(str(tmp_path / "none")).load()
