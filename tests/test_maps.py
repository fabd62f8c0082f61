"""The shared map, image and mask resizing, the Gaussian, map z-scores against
the validation normals, and the class lookup."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torchvision.transforms.v2 import functional as TF

from kedro_ad.models.common import class_ids, device
from kedro_ad.models.maps import (
    gaussian_blur,
    gaussian_kernel1d,
    map_statistics,
    resize_images,
    resize_maps,
    resize_masks,
    standardize_leave_one_out,
    standardize_maps,
    to_unit_images,
)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.0])
def test_gaussian_blur_matches_scipy_and_torchvision(sigma):
    maps = torch.rand(3, 40, 36, generator=torch.Generator().manual_seed(0))
    ours = gaussian_blur(maps, sigma)
    # scipy's "mirror" is torch's "reflect"; truncate=4 is anomalib's kernel rule
    ref = gaussian_filter(maps.numpy(), sigma=(0, sigma, sigma), mode="mirror")
    np.testing.assert_allclose(ours.numpy(), ref, atol=2e-6)
    size = len(gaussian_kernel1d(sigma))
    assert size == 2 * int(4 * sigma + 0.5) + 1
    tv = TF.gaussian_blur(maps[:, None], [size, size], [sigma, sigma])[:, 0]
    torch.testing.assert_close(ours, tv, atol=2e-6, rtol=0)


def test_gaussian_blur_keeps_flat_maps_and_tiny_ones():
    flat = torch.full((1, 20, 20), 3.0)
    torch.testing.assert_close(gaussian_blur(flat, 4.0), flat)
    assert gaussian_blur(torch.rand(1, 5, 5), 4.0).shape == (1, 5, 5)  # replicate
    same = torch.rand(2, 6, 6)
    assert gaussian_blur(same, 0.0) is same


def test_resize_maps_keeps_the_array_type_and_blurs_after_resizing():
    spot = torch.zeros(1, 8, 8)
    spot[0, 4, 4] = 1
    up = resize_maps(spot, 32, sigma=1.0)
    assert isinstance(up, torch.Tensor) and up.shape == (1, 32, 32)
    assert 14 <= int(up[0].argmax()) // 32 <= 19
    plain = torch.nn.functional.interpolate(
        spot[:, None], size=(32, 32), mode="bilinear"
    )
    torch.testing.assert_close(resize_maps(spot, (32, 32)), plain[:, 0])
    torch.testing.assert_close(up, gaussian_blur(plain[:, 0], 1.0))
    as_numpy = resize_maps(spot.numpy().astype(np.float16), (16, 24))
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32
    assert as_numpy.shape == (1, 16, 24)


def test_resize_masks_nearest_stays_binary_area_is_the_covered_fraction():
    masks = np.zeros((1, 8, 8), dtype=bool)
    masks[0, :2, :3] = True  # 6 pixels
    small = resize_masks(masks, 4)
    assert small.dtype == bool and small.shape == (1, 4, 4)
    soft = resize_masks(torch.from_numpy(masks), 4, soft=True)
    assert isinstance(soft, torch.Tensor) and soft.dtype == torch.float32
    assert soft[0, 0].tolist() == [1.0, 0.5, 0.0, 0.0]
    assert float(soft.sum()) * 4 == masks.sum()


def test_to_unit_images_from_uint8_arrays_and_tensors():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    x = to_unit_images(images, 16)
    expected = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    assert torch.equal(x, expected)
    assert torch.equal(to_unit_images(expected, 16), expected)  # floats: [0, 1]
    assert torch.equal(
        to_unit_images(torch.from_numpy(images).permute(0, 3, 1, 2), 16), x
    )
    small = to_unit_images(images, 8)
    assert small.shape == (2, 3, 8, 8) and 0 <= small.min() and small.max() <= 1
    with pytest.raises(ValueError, match="shape"):
        to_unit_images(images[0], 8)


def test_resize_images_keeps_any_range():
    x = torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    out = resize_images(x, 4)
    assert out.shape == (1, 1, 4, 4) and out.min() < 0
    assert resize_images(x, (8, 8)) is x


def test_class_ids_clear_errors():
    assert class_ids(["b", "a", "b"], ["a", "b"], 3, "m").tolist() == [1, 0, 1]
    assert class_ids(np.array(["a"]), np.array(["a"]), 1, "m").dtype == torch.long
    assert class_ids(None, ["only"], 2, "m").tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"m: the model is class-conditioned"):
        class_ids(None, ["a", "b"], 2, "m")
    with pytest.raises(ValueError, match=r"m: classes \['z'\] are unknown"):
        class_ids(["a", "z"], ["a", "b"], 2, "m")


def test_device_is_a_torch_device():
    assert device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def _normals(seed=0):
    """Two classes of 8x8 maps: class 0 noisy in its left half, class 1 offset."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(12, 8, 8, generator=g)
    maps[:6, :, :4] *= 5
    maps[6:] += 10
    return maps, torch.tensor([0] * 6 + [1] * 6)


def test_position_statistics_are_each_pixels_mean_and_std():
    maps, ids = _normals()
    mean, std = map_statistics(maps, ids, 3, mode="position", shrink=0.0)
    torch.testing.assert_close(mean[0], maps[:6].mean(0))
    torch.testing.assert_close(std[1], maps[6:].std(0))
    # a class without maps passes unchanged
    assert torch.equal(mean[2], torch.zeros(8, 8)) and torch.equal(
        std[2], torch.ones(8, 8)
    )
    z = standardize_maps(maps, ids, mean, std)
    torch.testing.assert_close(z[:6].mean(0), torch.zeros(8, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[6:].std(0), torch.ones(8, 8), atol=1e-5, rtol=0)


def test_shrink_pulls_every_pixel_to_the_class_variance_and_class_mode_is_flat():
    maps, ids = _normals()
    _, own = map_statistics(maps, ids, 2, mode="position", shrink=0.0)
    _, pooled = map_statistics(maps, ids, 2, mode="position", shrink=1.0)
    # the noisy left half of class 0 has the larger own std, not the pooled one
    assert own[0, :, :4].mean() > 2 * own[0, :, 4:].mean()
    torch.testing.assert_close(pooled[0], pooled[0, 0, 0].expand(8, 8))
    mean, std = map_statistics(maps, ids, 2, mode="class")
    assert float(mean[1].std()) < 1e-6 and float(std[1].std()) < 1e-6
    np.testing.assert_allclose(float(mean[1, 0, 0]), float(maps[6:].mean()), rtol=1e-6)
    np.testing.assert_allclose(float(std[1, 0, 0]), float(maps[6:].std()), rtol=0.1)
    mean, std = map_statistics(maps, ids, 2, mode="none")
    torch.testing.assert_close(standardize_maps(maps, ids, mean, std), maps)
    with pytest.raises(ValueError, match="standardize"):
        map_statistics(maps, ids, 2, mode="pixel")


def test_leave_one_out_scores_each_normal_against_the_others():
    maps, ids = _normals()
    maps[3] += 20  # one odd normal must stand out, not be absorbed by its own stats
    loo = standardize_leave_one_out(maps, ids, mode="position", shrink=0.0)
    others = torch.cat([maps[:3], maps[4:6]])
    expected = (maps[3] - others.mean(0)) / others.std(0)
    torch.testing.assert_close(loo[3], expected)
    mean, std = map_statistics(maps, ids, 2, mode="position", shrink=0.0)
    in_sample = standardize_maps(maps, ids, mean, std)
    assert float(loo[3].mean()) > 3 * float(in_sample[3].mean())
