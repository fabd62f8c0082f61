"""The mean-image baseline finds an obvious defect and uses validation for norms."""

import numpy as np
import pytest

from kedro_ad.models import mean_image


def _images(rng, n, size=24):
    base = np.full((n, size, size, 3), 120, dtype=np.float32)
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def test_bright_spot_scores_higher_and_is_localised():
    rng = np.random.default_rng(0)
    train, val, test = _images(rng, 20), _images(rng, 6), _images(rng, 4)
    test[2:, 8:14, 8:14] = 250
    cls = np.array(["a"])
    model = mean_image.fit(
        train, np.repeat(cls, 20), val, np.repeat(cls, 6), smoothing_sigma=1.0
    )
    scores, maps = mean_image.predict(model, test, np.repeat(cls, 4))
    assert scores[2:].min() > scores[:2].max()
    peak = np.unravel_index(maps[3].argmax(), maps[3].shape)
    assert 7 <= peak[0] <= 14 and 7 <= peak[1] <= 14


def test_maps_are_normalised_by_validation_statistics():
    rng = np.random.default_rng(1)
    train, val = _images(rng, 20), _images(rng, 30)
    cls = np.array(["a"])
    model = mean_image.fit(train, np.repeat(cls, 20), val, np.repeat(cls, 30))
    _, maps = mean_image.predict(model, val, np.repeat(cls, 30))
    assert abs(float(maps.mean())) < 1e-3 and abs(float(maps.std()) - 1) < 1e-2


def test_unknown_class_and_missing_validation_fail_clearly():
    rng = np.random.default_rng(2)
    train = _images(rng, 4)
    with pytest.raises(ValueError, match="no validation images"):
        mean_image.fit(train, np.repeat(["a"], 4), train[:0], np.array([], dtype=str))
    model = mean_image.fit(train, np.repeat(["a"], 4), train, np.repeat(["a"], 4))
    with pytest.raises(ValueError, match="class b"):
        mean_image.predict(model, train, np.repeat(["b"], 4))


def test_pipeline_fit_never_reads_the_test_split():
    from kedro_ad.pipelines.mean_image.nodes import fit_mean_image

    rng = np.random.default_rng(3)
    images = _images(rng, 30)
    arrays = {
        "images": images,
        "classes": np.repeat(["a"], 30),
        "splits": np.array(["train"] * 18 + ["val"] * 6 + ["test"] * 6),
    }
    params = {"smoothing_sigma": 1.0, "std_floor": 0.02}
    before = fit_mean_image(arrays, params)
    arrays["images"] = images.copy()
    arrays["images"][24:] = 255 - arrays["images"][24:]  # change only the test rows
    after = fit_mean_image(arrays, params)
    for key in set(before) - {"train_seconds"}:  # wall time differs, nothing else
        np.testing.assert_array_equal(before[key], after[key])
    arrays["images"][20:24] = 0  # validation rows do set the normalisation
    assert fit_mean_image(arrays, params)["a/map_mu"] != before["a/map_mu"]
