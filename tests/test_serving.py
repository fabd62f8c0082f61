"""What a served model takes and gives back (kedro_ad.serving)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kedro_ad.serving import as_image_batch, input_size, requirements, served_output


def test_as_image_batch_accepts_uint8_float_gray_and_dicts():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 20, 30, 3), dtype=np.uint8)
    batch, classes = as_image_batch(images, 20)
    assert batch.shape == (2, 3, 20, 20) and classes is None
    assert input_size(images) == (20, 30)
    same, _ = as_image_batch(images[:, :, :20], 20)
    torch.testing.assert_close(
        same, torch.from_numpy(images[:, :, :20] / 255).permute(0, 3, 1, 2).float()
    )
    gray, _ = as_image_batch(images[..., 0], 8)
    assert gray.shape == (2, 3, 8, 8) and torch.equal(gray[:, 0], gray[:, 2])
    _, classes = as_image_batch({"images": images, "classes": ["x", "y"]}, 8)
    assert classes.tolist() == ["x", "y"]
    with pytest.raises(ValueError, match="2 images"):
        as_image_batch({"images": images, "classes": ["x"]}, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        as_image_batch(images.astype(np.float32), 8)
    with pytest.raises(ValueError, match="shape"):
        as_image_batch(np.zeros((2, 3, 4, 5, 6)), 8)


def test_served_output_brings_maps_to_the_input_size():
    images = np.zeros((2, 20, 30, 3), dtype=np.uint8)
    maps = torch.zeros(2, 8, 8)
    maps[:, 4:, 4:] = 1.0  # the lower right quarter
    out = served_output(torch.tensor([1.0, 2.0], dtype=torch.float64), maps, images)
    assert out["scores"].dtype == np.float32 and out["scores"].tolist() == [1.0, 2.0]
    assert out["maps"].shape == (2, 20, 30) and out["maps"].dtype == np.float32
    assert out["maps"][0, 0, 0] == 0.0 and out["maps"][0, -1, -1] == 1.0
    same = served_output(np.ones(1), np.ones((1, 20, 30)), images[:1])
    assert np.array_equal(same["maps"], np.ones((1, 20, 30), np.float32))


def test_requirements_are_pinned_to_this_environment():
    pins = dict(p.split("==") for p in requirements())
    assert pins["torch"] == torch.__version__.split("+")[0]
