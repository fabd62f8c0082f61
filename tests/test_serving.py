"""What a served model takes and gives back (kedro_ad.serving)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kedro_ad.serving import (
    Guarded,
    ModelInputError,
    as_image_batch,
    input_size,
    requirements,
    served_output,
)


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


def test_requests_of_json_integers_are_images_and_bad_ones_are_refused_by_name():
    pixels = [[[0, 128, 255]] * 2] * 2  # what JSON carries: one 2x2 RGB image
    batch, _ = as_image_batch(np.asarray(pixels, dtype=np.int64), 2)
    assert batch.shape == (1, 3, 2, 2) and float(batch.max()) == 1.0
    for bad, message in [
        (np.full((1, 4, 4, 3), 300), r"0\.\.255 \(got 300\.\.300\)"),
        (np.full((1, 4, 4, 3), -1.0), r"\[0, 1\]"),
        (np.full((1, 4, 4, 3), np.nan), "NaN"),
        (np.zeros((1, 4, 4, 5)), r"shape \(1, 4, 4, 5\)"),
        (np.zeros((0, 4, 4, 3)), "shape"),
        (np.array([["a"]]), "numbers"),
        ([[[0, 0, 0]], [[0, 0]]], "same size"),
        ({"pixels": np.zeros((1, 4, 4, 3))}, "must hold 'images'"),
    ]:
        with pytest.raises(ModelInputError, match=message):
            as_image_batch(bad, 4)


def test_guarded_predict_answers_with_one_message_and_an_http_status():
    from mlflow.exceptions import MlflowException

    def predict(model, images, params):
        as_image_batch(images, 4)
        raise RuntimeError("out of memory")

    guarded = Guarded(predict)
    assert guarded.__name__ == "predict"
    with pytest.raises(ValueError, match="0..255") as refused:
        guarded({}, np.full((1, 4, 4, 3), 999), {})
    assert isinstance(refused.value, MlflowException)
    assert refused.value.get_http_status_code() == 400
    assert refused.value.__cause__ is None  # no traceback travels with it
    with pytest.raises(MlflowException, match="the model failed: RuntimeError") as e:
        guarded({}, np.zeros((1, 4, 4, 3), np.uint8), {})
    assert e.value.get_http_status_code() == 500
    assert "Traceback" not in e.value.serialize_as_json()
