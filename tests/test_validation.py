"""Tests for kedro_ad.data.validation: each broken dataset fails, naming its file."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import make_mvtec_tree
from kedro_ad.data.io import describe_files
from kedro_ad.data.layouts import COLUMNS
from kedro_ad.data.validation import (
    DataValidationError,
    check_report,
    validate_manifest,
)

CLASSES = ["widget"]


def tree_rows(root: Path, classes: list[str]) -> pd.DataFrame:
    """The samples table of a make_mvtec_tree folder, built here without a scanner.

    Follows the contract of kedro_ad.data.layouts: mask_path is None for good images
    and where an anomalous image's mask file is missing (expected_mask_path says
    where it should be).
    """
    rows = []
    for cls in classes:
        base = root / cls
        for image in sorted((base / "train" / "good").glob("*.png")):
            rows.append((cls, "train", 0, "good", str(image), None, None))
        for folder in sorted((base / "test").glob("*")):
            for image in sorted(folder.glob("*.png")):
                if folder.name == "good":
                    rows.append((cls, "test", 0, "good", str(image), None, None))
                    continue
                expected = (
                    base / "ground_truth" / folder.name / f"{image.stem}_mask.png"
                )
                mask = str(expected) if expected.is_file() else None
                rows.append(
                    (cls, "test", 1, folder.name, str(image), mask, str(expected))
                )
    return pd.DataFrame(rows, columns=COLUMNS)


def manifest_of(root: Path, classes: list[str] = CLASSES) -> pd.DataFrame:
    return describe_files(tree_rows(root, classes), progress=False)


def failure_message(manifest: pd.DataFrame, classes: list[str] = CLASSES) -> str:
    report = validate_manifest(manifest, classes, min_train_images=5)
    json.dumps(report)  # must be JSON-serialisable as it is
    assert report["success"] is False
    with pytest.raises(DataValidationError) as info:
        check_report(report, report_path="out/report.json")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Data validation failed: ")
    assert message.endswith("full report in out/report.json")
    return message


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_mvtec_tree(tmp_path / "mvtec", classes=CLASSES, defects=("crack",))


def test_clean_dataset_passes(tree: Path) -> None:
    report = validate_manifest(manifest_of(tree), CLASSES, min_train_images=5)
    assert json.loads(json.dumps(report)) == report
    assert report["success"] is True
    assert report["n_rows"] == 6 + 2 + 2
    assert report["classes"] == CLASSES
    assert report["modes"] == {"RGB": 10}
    assert report["gx_version"].startswith("1.")
    assert len(report["expectations"]) == 10
    for entry in report["expectations"]:
        assert entry["success"] is True, entry
        assert entry["unexpected_count"] == 0
        assert entry["description"] and entry["expectation"].startswith("expect_")
    check_report(report)  # does not raise


def _truncate(root: Path) -> tuple[Path, pd.DataFrame | None]:
    path = root / "widget" / "test" / "crack" / "001.png"
    path.write_bytes(path.read_bytes()[:150])
    return path, None


def _not_an_image(root: Path) -> tuple[Path, pd.DataFrame | None]:
    path = root / "widget" / "train" / "good" / "002.png"
    path.write_text("this is not a picture\n")
    return path, None


def _mask_size_mismatch(root: Path) -> tuple[Path, pd.DataFrame | None]:
    mask = root / "widget" / "ground_truth" / "crack" / "001_mask.png"
    Image.fromarray(np.full((30, 32), 255, np.uint8)).save(mask)
    return root / "widget" / "test" / "crack" / "001.png", None


def _missing_mask(root: Path) -> tuple[Path, pd.DataFrame | None]:
    (root / "widget" / "ground_truth" / "crack" / "000_mask.png").unlink()
    return root / "widget" / "test" / "crack" / "000.png", None


def _same_image_in_both_splits(root: Path) -> tuple[Path, pd.DataFrame | None]:
    test_copy = root / "widget" / "test" / "good" / "001.png"
    shutil.copyfile(root / "widget" / "train" / "good" / "004.png", test_copy)
    return test_copy, None


def _non_binary_mask(root: Path) -> tuple[Path, pd.DataFrame | None]:
    mask = root / "widget" / "ground_truth" / "crack" / "001_mask.png"
    ramp = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (32, 1))
    Image.fromarray(ramp).save(mask)
    return root / "widget" / "test" / "crack" / "001.png", None


def _empty_mask(root: Path) -> tuple[Path, pd.DataFrame | None]:
    mask = root / "widget" / "ground_truth" / "crack" / "000_mask.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(mask)
    return root / "widget" / "test" / "crack" / "000.png", None


def _unreadable_mask(root: Path) -> tuple[Path, pd.DataFrame | None]:
    (root / "widget" / "ground_truth" / "crack" / "001_mask.png").write_bytes(b"")
    return root / "widget" / "test" / "crack" / "001.png", None


def _mask_on_good_image(root: Path) -> tuple[Path, pd.DataFrame | None]:
    rows = tree_rows(root, CLASSES)
    good = root / "widget" / "test" / "good" / "000.png"
    mask = root / "widget" / "ground_truth" / "crack" / "000_mask.png"
    rows.loc[rows["image_path"] == str(good), "mask_path"] = str(mask)
    return good, rows


def _anomalous_in_train(root: Path) -> tuple[Path, pd.DataFrame | None]:
    rows = tree_rows(root, CLASSES)
    image = root / "widget" / "train" / "good" / "003.png"
    rows.loc[rows["image_path"] == str(image), ["label", "defect_type"]] = (1, "crack")
    return image, rows


Case = Callable[[Path], tuple[Path, "pd.DataFrame | None"]]
FAILING_CASES: list[tuple[Case, list[str], str]] = [
    (_truncate, ["truncated"], "expect_column_values_to_be_in_set"),
    (_not_an_image, ["not an image file"], "expect_column_values_to_be_in_set"),
    (
        _mask_size_mismatch,
        ["mask of a different size (mask 32x30, image 32x32)"],
        "expect_column_pair_values_to_be_equal",
    ),
    (
        _missing_mask,
        ["has no mask", "ground_truth/crack/000_mask.png"],
        "expect_column_values_to_not_be_null",
    ),
    (
        _same_image_in_both_splits,
        ["same content as", "train/good/004.png"],
        "expect_column_values_to_be_null",
    ),
    (
        _non_binary_mask,
        ["not binary", "001_mask.png"],
        "expect_column_values_to_be_in_set",
    ),
    (_empty_mask, ["empty mask", "000_mask.png"], "expect_column_values_to_be_between"),
    (
        _unreadable_mask,
        ["001_mask.png does not decode", "not an image file"],
        "expect_column_values_to_be_in_set",
    ),
    (
        _mask_on_good_image,
        ["good image has a non-empty mask"],
        "expect_column_values_to_be_between",
    ),
    (
        _anomalous_in_train,
        ["train image is labelled anomalous"],
        "expect_column_values_to_be_in_set",
    ),
]


@pytest.mark.parametrize(
    ("breaker", "fragments", "expectation"),
    FAILING_CASES,
    ids=[case[0].__name__.strip("_") for case in FAILING_CASES],
)
def test_broken_dataset_fails_naming_the_file(
    tree: Path, breaker: Case, fragments: list[str], expectation: str
) -> None:
    bad_file, rows = breaker(tree)
    rows = tree_rows(tree, CLASSES) if rows is None else rows
    message = failure_message(describe_files(rows, progress=False))
    assert f"Data validation failed: {bad_file}: " in message
    for fragment in fragments:
        assert fragment in message
    assert f"[{expectation}]" in message


def test_message_counts_the_other_problems(tree: Path) -> None:
    _truncate(tree)
    _missing_mask(tree)
    _same_image_in_both_splits(tree)
    message = failure_message(manifest_of(tree))
    assert "001.png: image file does not decode: truncated" in message
    assert "; 2 more problems, full report in" in message


def test_class_without_train_images_fails(tmp_path: Path) -> None:
    root = make_mvtec_tree(tmp_path / "mvtec", classes=("widget", "hollow"), seed=1)
    for image in (root / "hollow" / "train" / "good").iterdir():
        image.unlink()
    manifest = manifest_of(root, ["widget", "hollow"])
    message = failure_message(manifest, ["widget", "hollow"])
    assert f"Data validation failed: {root / 'hollow'}: " in message
    assert "class 'hollow' has 0 train images (at least 5 needed)" in message
    assert "[expect_column_values_to_be_between]" in message


def test_expected_class_absent_from_table_fails(tree: Path) -> None:
    report = validate_manifest(manifest_of(tree), ["widget", "ghost"], 5)
    assert report["class_train_images"] == {"widget": 6, "ghost": 0}
    with pytest.raises(DataValidationError, match="class 'ghost' has 0 train images"):
        check_report(report)


def test_too_few_train_images_fails(tree: Path) -> None:
    report = validate_manifest(manifest_of(tree), CLASSES, min_train_images=7)
    with pytest.raises(DataValidationError, match="'widget' has 6 train images"):
        check_report(report)


def test_missing_mask_survives_parquet_round_trip(tree: Path, tmp_path: Path) -> None:
    """The catalog stores the manifest as parquet: None comes back as a null."""
    bad_file, _ = _missing_mask(tree)
    manifest = manifest_of(tree)
    manifest.to_parquet(tmp_path / "manifest.parquet")
    message = failure_message(pd.read_parquet(tmp_path / "manifest.parquet"))
    assert f"{bad_file}: anomalous image has no mask" in message


def test_mixed_grayscale_and_rgb_pass_and_report_modes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    classes = ["rgbish", "grayish"]
    root = make_mvtec_tree(
        tmp_path / "mvtec", classes=classes, gray_classes=["grayish"]
    )
    with caplog.at_level(logging.INFO, logger="kedro_ad.data.validation"):
        report = validate_manifest(manifest_of(root, classes), classes, 5)
    assert report["success"] is True
    assert report["modes"] == {"L": 10, "RGB": 10}
    assert any(
        "L (10), RGB (10)" in r.getMessage() and "converted to RGB" in r.getMessage()
        for r in caplog.records
    )


def test_scan_mvtec_tree_validates(tmp_path: Path) -> None:
    from kedro_ad.data.layouts import scan_mvtec

    root = make_mvtec_tree(tmp_path / "mvtec", classes=("widget", "gear"), seed=3)
    report = validate_manifest(describe_files(scan_mvtec(root)), "all", 5)
    assert report["success"] is True, report
    assert report["classes"] == ["gear", "widget"]

    (root / "gear" / "ground_truth" / "scratch" / "001_mask.png").unlink()
    report = validate_manifest(describe_files(scan_mvtec(root)), ["gear", "widget"], 5)
    with pytest.raises(DataValidationError) as info:
        check_report(report)
    expected = root / "gear" / "ground_truth" / "scratch" / "001_mask.png"
    assert f"{root / 'gear' / 'test' / 'scratch' / '001.png'}: " in str(info.value)
    assert f"(expected {expected})" in str(info.value)


def test_validation_stays_offline_without_analytics(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kedro_ad.data import validation

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    report = validate_manifest(manifest_of(tree), CLASSES, 5)
    assert report["success"] is True
    assert os.environ["GX_ANALYTICS_ENABLED"] == "False"
    assert validation._gx_context().config.analytics_enabled is False


def test_manifest_without_file_facts_is_refused(tree: Path) -> None:
    with pytest.raises(ValueError, match="describe_files"):
        validate_manifest(tree_rows(tree, CLASSES), CLASSES)


def test_check_report_of_an_errored_expectation() -> None:
    report = {
        "success": False,
        "expectations": [
            {
                "expectation": "expect_column_values_to_be_in_set",
                "description": "Every image file exists and decodes completely",
                "success": False,
                "unexpected_count": 0,
                "unexpected_files": [],
                "details": [],
                "error": 'The column "image_ok" in BatchData does not exist.',
            }
        ],
    }
    with pytest.raises(DataValidationError, match="could not be checked: The column"):
        check_report(report, "r.json")
