"""Anomaly synthesis: masks, labels, blending, sources, foreground, textures."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from kedro_ad.synthesis import (
    TextureFolderError,
    augment,
    build_synthetic_set,
    foreground_masks,
    grid_shuffle,
    load_textures,
    perlin_masks,
    perlin_noise,
    random_augment,
    synthesize_batch,
    texture_rows,
)

SIZE = 32


def _objects(n, size=SIZE, seed=0):
    """Noisy dark background with a bright disc (radius size/4) in the middle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disc = yy**2 + xx**2 <= (size / 4) ** 2
    base = np.where(disc[..., None], [210.0, 200.0, 190.0], [25.0, 30.0, 35.0])
    images = np.clip(base + rng.normal(0, 5, (n, size, size, 3)), 0, 255)
    return images.astype(np.uint8), np.broadcast_to(disc, (n, size, size)).copy()


def _textures(k=3, size=SIZE, seed=5):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (k, size, size, 3), dtype=np.uint8)


def test_perlin_noise_is_seeded_smooth_and_masks_never_empty():
    a = perlin_noise(np.random.default_rng(0), 6, SIZE, SIZE)
    b = perlin_noise(np.random.default_rng(0), 6, SIZE, SIZE)
    c = perlin_noise(np.random.default_rng(1), 6, SIZE, SIZE)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (6, SIZE, SIZE) and a.dtype == np.float32
    assert np.abs(a).max() < 1.5 and a.std() > 0.1
    # one lattice cell per side: neighbouring pixels differ little (smooth noise)
    smooth = perlin_noise(np.random.default_rng(2), 4, SIZE, SIZE, (0, 1))
    assert np.abs(np.diff(smooth, axis=2)).max() < 0.2
    # a high threshold inside a 2x2 foreground: retries and the fallback still
    # give every sample a defect, and only inside the foreground
    fg = np.zeros((20, SIZE, SIZE), dtype=bool)
    fg[:, 10:12, 20:22] = True
    masks = perlin_masks(np.random.default_rng(3), fg, threshold=0.95, max_tries=2)
    assert masks.reshape(20, -1).any(axis=1).all()
    assert not (masks & ~fg).any()


def test_synthesize_batch_is_deterministic_under_a_seed():
    images, disc = _objects(8)
    textures = _textures()

    def run(seed):
        return synthesize_batch(
            images,
            np.random.default_rng(seed),
            textures=textures,
            object_mask=disc,
            is_texture=np.array([True, False] * 4),
        )

    first, again, other = run(7), run(7), run(8)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(first[0], other[0])


def test_labels_match_masks_half_normal_and_changes_only_inside_masks():
    images, disc = _objects(32)
    out, masks, labels = synthesize_batch(
        images, np.random.default_rng(0), object_mask=disc
    )
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert masks.dtype == bool and masks.shape == (32, SIZE, SIZE)
    assert labels.sum() == 16
    np.testing.assert_array_equal(labels == 1, masks.reshape(32, -1).any(axis=1))
    np.testing.assert_array_equal(out[labels == 0], images[labels == 0])
    outside = ~masks[..., None].repeat(3, axis=-1)
    np.testing.assert_array_equal(out[outside], images[outside])
    assert (out[labels == 1] != images[labels == 1]).any()
    # an odd batch (and a batch of one) is rounded at random: right on average
    counts = [
        synthesize_batch(images[:1], np.random.default_rng(s))[2].sum()
        for s in range(200)
    ]
    assert 0.35 < np.mean(counts) < 0.65
    everything = synthesize_batch(images, np.random.default_rng(1), anomaly_fraction=1)
    assert everything[2].all()


def test_defects_stay_inside_the_object_foreground():
    images, disc = _objects(16)
    _, masks, labels = synthesize_batch(
        images, np.random.default_rng(4), object_mask=disc, anomaly_fraction=1.0
    )
    assert labels.all()
    assert not (masks & ~disc).any()


def test_blend_lies_between_normal_and_source_with_beta_in_range():
    normal = np.zeros((16, SIZE, SIZE, 3), dtype=np.uint8)
    textures = np.full((2, SIZE, SIZE, 3), 200, dtype=np.uint8)
    out, masks, labels = synthesize_batch(
        normal,
        np.random.default_rng(0),
        textures=textures,
        anomaly_fraction=1.0,
        augment_textures=False,
    )
    # S = beta * 0 + (1 - beta) * 200 with beta in [0.2, 0.8]: 40..160, and one
    # beta per image
    inside = out[masks]
    assert inside.min() >= 40 and inside.max() <= 160
    for i in range(16):
        assert np.unique(out[i][masks[i]]).size == 1
    assert np.ptp([out[i][masks[i]][0, 0] for i in range(16)]) > 30

    images, disc = _objects(12)
    out, masks, _, details = synthesize_batch(
        images,
        np.random.default_rng(1),
        textures=_textures(),
        object_mask=disc,
        anomaly_fraction=1.0,
        beta_range=(0.3, 0.6),
        return_details=True,
    )
    beta = details["beta"]
    assert ((beta >= 0.3) & (beta <= 0.6)).all()
    normal, source = images.astype(float), details["anomaly"].astype(float)
    b = beta[:, None, None, None]
    expected = b * normal + (1 - b) * source
    m = masks[..., None].repeat(3, axis=-1)
    assert np.abs(out[m] - expected[m]).max() <= 0.5 + 1e-6
    low, high = np.minimum(normal, source), np.maximum(normal, source)
    assert ((out[m] >= np.floor(low[m])) & (out[m] <= np.ceil(high[m]))).all()


def test_sources_textures_for_texture_classes_self_without_a_folder():
    images, disc = _objects(16)
    kwargs = {"object_mask": disc, "anomaly_fraction": 1.0, "return_details": True}
    no_folder = synthesize_batch(images, np.random.default_rng(0), **kwargs)[3]
    assert set(no_folder["source"]) == {"self"}
    textures = _textures()
    as_textures = synthesize_batch(
        images,
        np.random.default_rng(0),
        textures=textures,
        is_texture=np.ones(16, dtype=bool),
        **kwargs,
    )[3]
    assert set(as_textures["source"]) == {"texture"}
    mixed = synthesize_batch(
        images, np.random.default_rng(0), textures=textures, **kwargs
    )[3]
    assert set(mixed["source"]) == {"texture", "self"}
    never_self = synthesize_batch(
        images,
        np.random.default_rng(0),
        textures=textures,
        self_augment_probability=0.0,
        **kwargs,
    )[3]
    assert set(never_self["source"]) == {"texture"}
    # texture content comes from the textures (all of a sample's source pixels
    # are pixels of one texture when it is not augmented)
    plain = synthesize_batch(
        images,
        np.random.default_rng(0),
        textures=textures,
        self_augment_probability=0.0,
        augment_textures=False,
        **kwargs,
    )[3]
    for content in plain["anomaly"]:
        assert any(
            np.array_equal(np.sort(content.ravel()), np.sort(t.ravel()))
            for t in textures
        )


def test_grid_shuffle_permutes_cells_and_leaves_the_remainder():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 35, 34, 3), dtype=np.uint8)
    out = grid_shuffle(images, np.random.default_rng(1), grid=8)
    np.testing.assert_array_equal(out[:, 32:], images[:, 32:])
    np.testing.assert_array_equal(out[:, :, 32:], images[:, :, 32:])

    def cells(a):
        return sorted(
            a[y : y + 4, x : x + 4].tobytes()
            for y in range(0, 32, 4)
            for x in range(0, 32, 4)
        )

    for before, after in zip(images, out, strict=True):
        assert cells(before) == cells(after)
        assert not np.array_equal(before[:32, :32], after[:32, :32])


def _colour_batch(seed=0):
    """Random uint8 images of narrow and full ranges, a dark one, a flat channel."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (8, 24, 20, 3), dtype=np.uint8)
    images[1] //= 3  # a dark image: equalize and autocontrast do something
    images[2] = 40 + images[2] // 4  # a narrow range
    images[3, ..., 1] = 90  # a flat channel: autocontrast leaves it alone
    return images


def _pil(images, op, params=None):
    params = [None] * len(images) if params is None else params
    return np.stack(
        [
            np.asarray(
                op(Image.fromarray(im)) if p is None else op(Image.fromarray(im), p)
            )
            for im, p in zip(images, params, strict=True)
        ]
    )


def test_colour_operations_equal_pil_bit_for_bit():
    images = _colour_batch()
    n = len(images)
    rng = np.random.default_rng(0)
    for name, reference in (
        ("equalize", ImageOps.equalize),
        ("autocontrast", ImageOps.autocontrast),
        ("invert", ImageOps.invert),
    ):
        ours = getattr(augment, name)(images, rng)
        np.testing.assert_array_equal(ours, _pil(images, reference), err_msg=name)
    # the operations with a parameter draw it per image from the generator
    factor = np.random.default_rng(9).uniform(0.0, 2.0, n)
    np.testing.assert_array_equal(
        augment.sharpness(images, np.random.default_rng(9)),
        _pil(images, lambda im, f: ImageEnhance.Sharpness(im).enhance(f), factor),
    )
    bits = np.random.default_rng(5).integers(1, 8, n)
    np.testing.assert_array_equal(
        augment.posterize(images, np.random.default_rng(5)),
        _pil(images, ImageOps.posterize, bits.tolist()),
    )
    threshold = np.random.default_rng(6).integers(32, 129, n)
    np.testing.assert_array_equal(
        augment.solarize(images, np.random.default_rng(6)),
        _pil(images, ImageOps.solarize, threshold.tolist()),
    )
    g = np.random.default_rng(7).uniform(0.5, 2.0, (n, 3, 1)).astype(np.float32)
    levels = np.arange(256, dtype=np.float32)
    table = np.rint(255 * (levels / 255) ** g).astype(np.uint8)  # [n, 3, 256]
    expected = np.stack(
        [
            np.stack([table[i, c][images[i, ..., c]] for c in range(3)], -1)
            for i in range(n)
        ]
    )
    np.testing.assert_array_equal(
        augment.gamma(images, np.random.default_rng(7)), expected
    )
    # every image gets exactly two operations, in a seeded order
    a = random_augment(images, np.random.default_rng(3))
    b = random_augment(images, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == images.shape and a.dtype == np.uint8


def test_torchvision_still_differs_where_augment_keeps_its_own():
    """augment.py keeps its own autocontrast and gamma because torchvision's give
    other pixels; if this fails, torchvision now matches: use it there too."""
    import torch
    from torchvision.transforms.v2 import functional as TF

    images = _colour_batch(1)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    theirs = TF.autocontrast(tensor).permute(0, 2, 3, 1).numpy()
    assert (theirs != _pil(images, ImageOps.autocontrast)).any()
    gamma = augment.gamma(images[:1], np.random.default_rng(0))  # per channel
    g = np.random.default_rng(0).uniform(0.5, 2.0, (1, 3, 1))
    theirs = TF.adjust_gamma(tensor[:1, :1], float(g[0, 0, 0]))[0, 0].numpy()
    assert (theirs != gamma[0, ..., 0]).any()


def test_foreground_estimate_finds_the_object_and_keeps_textures_whole():
    images, disc = _objects(4, size=64)
    fg = foreground_masks(images, np.array([False, False, True, False]))
    for i in (0, 1, 3):
        iou = (fg[i] & disc[i]).sum() / (fg[i] | disc[i]).sum()
        assert iou > 0.85
    assert fg[2].all()
    # a ring: its large hole is background, as a washer's centre should be
    yy, xx = np.mgrid[:64, :64] - 31.5
    ring = (yy**2 + xx**2 <= 22**2) & (yy**2 + xx**2 >= 10**2)
    image = np.where(ring[..., None], [200, 190, 180], 30).astype(np.uint8)[None]
    fg = foreground_masks(image, np.array([False]))[0]
    assert not fg[28:36, 28:36].any() and fg[ring].mean() > 0.9
    # nothing stands out from the border: the whole image is allowed
    flat = np.random.default_rng(0).normal(100, 3, (1, 64, 64, 3)).astype(np.uint8)
    assert foreground_masks(flat, np.array([False])).all()
    assert texture_rows(np.array(["wood", "pcb"]), ["wood"]).tolist() == [True, False]


def test_load_textures(tmp_path):
    assert load_textures(None, 16) is None
    with pytest.raises(TextureFolderError, match="missing_dir.*does not exist"):
        load_textures(tmp_path / "missing_dir", 16)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(TextureFolderError, match="bad holds no readable image"):
        load_textures(bad, 16)
    good = tmp_path / "good" / "banded"
    good.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.jpg"):
        pixels = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(good / name)
    (good / "broken.png").write_bytes(b"")
    (good / "notes.txt").write_text("not an image")
    textures = load_textures(tmp_path / "good", 16)
    assert textures.shape == (2, 16, 16, 3) and textures.dtype == np.uint8


def test_build_synthetic_set_pairs_each_image_with_a_defective_copy():
    images, _ = _objects(6)
    classes = np.array(["pill"] * 3 + ["wood"] * 3)
    index = np.array([10, 11, 12, 20, 21, 22])

    def build(seed):
        return build_synthetic_set(
            images, classes, index, seed, texture_classes=["wood"], copies=2
        )

    out = build(0)
    assert out["images"].shape == (18, SIZE, SIZE, 3)
    assert out["labels"].tolist() == [0] * 6 + [1] * 12
    np.testing.assert_array_equal(out["source_index"], np.tile(index, 3))
    np.testing.assert_array_equal(out["classes"], np.tile(classes, 3))
    np.testing.assert_array_equal(out["images"][:6], images)
    np.testing.assert_array_equal(
        out["labels"] == 1, out["masks"].reshape(18, -1).any(axis=1)
    )
    assert np.isnan(out["betas"][:6]).all() and (out["betas"][6:] >= 0.2).all()
    assert set(out["anomaly_sources"][6:]) == {"self"}
    again = build(0)
    for key in out:
        np.testing.assert_array_equal(out[key], again[key])
    assert not np.array_equal(build(1)["images"], out["images"])


def test_shape_defects_are_seeded_and_change_only_the_masked_pixels():
    """The second defect family (ellipses, strokes, rectangles): deterministic,
    labels exactly where masks are non-empty, pixels changed only where painted,
    and a family apart from the Perlin one (straight edges, no blobs)."""
    from kedro_ad.synthesis.shapes import shape_defects

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    a = shape_defects(images, np.random.default_rng(5), anomaly_probability=0.5)
    b = shape_defects(images, np.random.default_rng(5), anomaly_probability=0.5)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    out, masks, labels = a
    assert 0 < labels.sum() < len(labels)
    np.testing.assert_array_equal(labels, masks.reshape(16, -1).any(1))
    changed = (out != images).any(-1)
    assert not changed[labels == 0].any(), "normal rows are untouched"
    # inside a mask the defect is painted (anti-aliased edges may spill a pixel)
    assert changed[masks].mean() > 0.9
    grown = masks | np.roll(masks, 1, 1) | np.roll(masks, -1, 1)
    grown |= np.roll(grown, 1, 2) | np.roll(grown, -1, 2)
    assert not (changed & ~grown).any()
    full, masks, labels = shape_defects(
        images, np.random.default_rng(1), anomaly_probability=1.0
    )
    assert labels.all() and masks.mean() < 0.3
    with pytest.raises(ValueError, match="uint8"):
        shape_defects(images.astype(np.float32), rng)
