"""Tests for kedro_ad.data.io: reading images and masks, describing files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from helpers import make_mvtec_tree
from kedro_ad.data.io import (
    DESCRIBE_COLUMNS,
    ImageReadError,
    describe_files,
    file_sha256,
    read_image,
    read_mask,
)


def save(array: np.ndarray, path: Path, mode: str | None = None) -> Path:
    Image.fromarray(array, mode=mode).save(path)
    return path


@pytest.fixture
def gray_png(tmp_path: Path) -> Path:
    ramp = np.tile(np.arange(0, 240, 8, dtype=np.uint8), (20, 1))  # 20 x 30
    return save(ramp, tmp_path / "gray.png")


def test_read_image_converts_grayscale_to_rgb(gray_png: Path) -> None:
    image = read_image(gray_png)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    assert (image[..., 0] == image[..., 1]).all() and (
        image[..., 1] == image[..., 2]
    ).all()
    assert image[0, 1, 0] == 8


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "1"])
def test_read_image_converts_other_modes_to_rgb(tmp_path: Path, mode: str) -> None:
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, 12:] = 255
    path = tmp_path / f"{mode}.png"
    Image.fromarray(rgb).convert(mode).save(path)
    image = read_image(path)
    assert image.shape == (16, 24, 3) and image.dtype == np.uint8
    assert image[:, :12].max() == 0 and image[:, 12:].min() == 255


def test_read_image_sixteen_bit(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(path)
    assert read_image(path).min() == 255


def test_read_image_resizes_to_a_square(gray_png: Path, tmp_path: Path) -> None:
    assert read_image(gray_png, size=12).shape == (12, 12, 3)
    flat = save(np.full((50, 70, 3), 77, np.uint8), tmp_path / "flat.png")
    resized = read_image(flat, size=16)
    assert resized.shape == (16, 16, 3) and (resized == 77).all()
    # Antialiased: a fine checkerboard shrinks to its mean, not to aliased stripes.
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    small = read_image(save(checker, tmp_path / "checker.png"), size=8)
    assert np.abs(small.astype(int) - 127).max() <= 2


def test_read_image_errors_name_the_file(tmp_path: Path, gray_png: Path) -> None:
    truncated = tmp_path / "cut.png"
    data = gray_png.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "text.png"
    text.write_text("hello")
    cut_jpeg = tmp_path / "cut.jpg"
    Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    ).save(cut_jpeg)
    cut_jpeg.write_bytes(cut_jpeg.read_bytes()[:-200])
    no_end = tmp_path / "no_end.png"  # pixel data complete, end chunk cut off
    no_end.write_bytes(data[:-12])
    cases = [
        (truncated, "truncated"),
        (no_end, "truncated"),
        (cut_jpeg, "truncated"),
        (text, "not an image file"),
        (tmp_path / "absent.png", "file not found"),
    ]
    for path, problem in cases:
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        assert str(info.value).startswith(f"{path}: {problem}")
        assert "\n" not in str(info.value)
        assert isinstance(info.value, ValueError)


def test_read_mask_thresholds_and_resizes_nearest(tmp_path: Path) -> None:
    levels = np.zeros((10, 20), np.uint8)
    levels[:, 10:] = 255
    levels[0, 0] = 100  # anti-aliasing noise below the threshold
    mask = read_mask(save(levels, tmp_path / "m.png"))
    assert mask.dtype == bool and mask.shape == (10, 20)
    assert mask[:, 10:].all() and not mask[:, :10].any()
    small = read_mask(tmp_path / "m.png", size=4)
    assert small.shape == (4, 4) and small[:, 2:].all() and not small[:, :2].any()


def test_read_mask_of_label_ids(tmp_path: Path) -> None:
    """Masks storing small label ids (VisA) mark every nonzero pixel."""
    labels = np.zeros((6, 6), np.uint8)
    labels[1:3, 1:3] = 1
    labels[4, 4] = 2
    mask = read_mask(save(labels, tmp_path / "ids.png"))
    assert mask.sum() == 5


def test_file_sha256(gray_png: Path) -> None:
    assert file_sha256(gray_png) == hashlib.sha256(gray_png.read_bytes()).hexdigest()


def _rows(root: Path) -> pd.DataFrame:
    widget = root / "widget"
    images = sorted((widget / "train" / "good").glob("*.png"))
    rows = [("train", 0, str(p), None) for p in images]
    for p in sorted((widget / "test" / "scratch").glob("*.png")):
        mask = widget / "ground_truth" / "scratch" / f"{p.stem}_mask.png"
        rows.append(("test", 1, str(p), str(mask)))
    frame = pd.DataFrame(rows, columns=["split", "label", "image_path", "mask_path"])
    frame.index = [f"r{i}" for i in range(len(frame))]
    return frame


def test_describe_files_records_facts(tmp_path: Path) -> None:
    root = make_mvtec_tree(tmp_path, n_train=3, n_per_defect=2, size=24)
    rows = _rows(root)
    out = describe_files(rows, progress=False)
    assert list(out.index) == list(rows.index)
    assert list(out.columns) == list(rows.columns) + list(DESCRIBE_COLUMNS)
    assert out["image_ok"].all() and (out["image_error"] == "").all()
    assert (out[["width", "height"]] == 24).all().all()
    assert set(out["mode"]) == {"RGB"}
    assert out["sha256"].nunique() == len(out)
    assert out.loc["r0", "sha256"] == file_sha256(rows.loc["r0", "image_path"])
    good, bad = out[out["label"] == 0], out[out["label"] == 1]
    assert (good["mask_width"] == -1).all() and good["mask_binary"].all()
    assert (good["mask_fraction"] == 0.0).all()
    assert (bad[["mask_width", "mask_height"]] == 24).all().all()
    assert bad["mask_binary"].all() and (bad["mask_fraction"] > 0).all()
    assert out["width"].dtype == np.int64 and out["image_ok"].dtype == bool


def test_describe_files_never_raises_for_bad_files(tmp_path: Path) -> None:
    root = make_mvtec_tree(tmp_path, n_train=3, n_per_defect=2, size=24)
    rows = _rows(root)
    train0 = Path(rows.loc["r0", "image_path"])
    train0.write_bytes(train0.read_bytes()[:80])
    Path(rows.loc["r1", "image_path"]).write_text("not a picture")
    Path(rows.loc["r2", "image_path"]).unlink()
    ramp = np.tile(np.linspace(0, 255, 24).astype(np.uint8), (24, 1))
    save(ramp, Path(rows.loc["r3", "mask_path"]))
    Path(rows.loc["r4", "mask_path"]).unlink()
    out = describe_files(rows, progress=False)
    assert out.loc["r0", "image_error"].startswith("truncated")
    assert out.loc["r1", "image_error"] == "not an image file"
    assert out.loc["r2", "image_error"] == "file not found"
    assert out.loc["r2", "sha256"] == ""
    for key in ("r0", "r1", "r2"):
        assert not out.loc[key, "image_ok"]
        assert out.loc[key, "width"] == -1 and out.loc[key, "mode"] == ""
    assert out.loc["r0", "sha256"] != ""  # bytes are there, just broken
    assert not out.loc["r3", "mask_binary"] and out.loc["r3", "mask_error"] == ""
    assert out.loc["r4", "mask_error"] == "file not found"
    assert out.loc["r4", "mask_width"] == -1


def test_describe_files_catches_truncation_even_if_pil_is_lenient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "x.jpg"
    Image.fromarray(
        np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)
    ).save(image)
    image.write_bytes(image.read_bytes()[:-300])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    out = describe_files(pd.DataFrame({"image_path": [str(image)]}), progress=False)
    assert out.loc[0, "image_error"].startswith("truncated")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored afterwards


def test_describe_files_many_rows_keep_their_order(tmp_path: Path) -> None:
    """The thread pool (and progress bar) path: every row described, in order."""
    root = make_mvtec_tree(
        tmp_path, n_train=300, n_test_good=0, n_per_defect=0, size=16
    )
    paths = sorted(str(p) for p in (root / "widget" / "train" / "good").glob("*.png"))
    rows = pd.DataFrame({"image_path": paths * 7, "mask_path": None})
    out = describe_files(rows, progress=True)
    assert len(out) == 2100 and out["image_ok"].all()
    assert out["image_path"].tolist() == rows["image_path"].tolist()
    by_path = out.groupby("image_path")["sha256"].nunique()
    assert (by_path == 1).all() and out["sha256"].nunique() == 300
