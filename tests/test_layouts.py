"""Dataset folders -> samples table (scanning reads no pixels, so empty files do)."""

from pathlib import Path

import pandas as pd
import pytest

from kedro_ad.data.layouts import (
    COLUMNS,
    DatasetLayoutError,
    assign_validation_split,
    scan_dataset,
    scan_folder,
    scan_mvtec,
    scan_visa,
)


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def mvtec_root(tmp_path):
    root = tmp_path / "mvtec"
    for cls in ("bottle", "screw"):
        for i in range(5):
            touch(root / cls / "train" / "good" / f"{i:03d}.png")
        touch(root / cls / "test" / "good" / "000.png")
        touch(root / cls / "test" / "crack" / "000.png")
        touch(root / cls / "ground_truth" / "crack" / "000_mask.png")
        touch(root / cls / "test" / "crack" / "001.png")  # mask missing on purpose
    touch(root / "bottle" / "train" / "good" / "notes.txt")  # not an image suffix
    (root / "not_a_class").mkdir()
    return root


def test_scan_mvtec_rows_and_masks(mvtec_root):
    rows = scan_mvtec(mvtec_root)
    assert list(rows.columns) == COLUMNS
    assert sorted(rows["class"].unique()) == ["bottle", "screw"]
    bottle = rows[rows["class"] == "bottle"]
    assert (bottle["split"] == "train").sum() == 5
    assert set(bottle.loc[bottle["split"] == "train", "label"]) == {0}
    crack = bottle[bottle["defect_type"] == "crack"].set_index(
        bottle[bottle["defect_type"] == "crack"]["image_path"].map(
            lambda p: Path(p).name
        )
    )
    assert crack.loc["000.png", "label"] == 1
    assert crack.loc["000.png", "mask_path"].endswith("ground_truth/crack/000_mask.png")
    assert pd.isna(crack.loc["001.png", "mask_path"])
    assert crack.loc["001.png", "expected_mask_path"].endswith("crack/001_mask.png")
    good_test = bottle[(bottle["split"] == "test") & (bottle["label"] == 0)]
    assert len(good_test) == 1 and good_test["mask_path"].isna().all()


def test_scan_mvtec_class_selection_and_errors(mvtec_root, tmp_path):
    assert set(scan_mvtec(mvtec_root, ["screw"])["class"]) == {"screw"}
    with pytest.raises(DatasetLayoutError, match="nope"):
        scan_mvtec(mvtec_root, ["nope"])
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        scan_mvtec(tmp_path / "missing")
    with pytest.raises(DatasetLayoutError, match="not one of"):
        scan_dataset("kaggle", mvtec_root)


def test_scan_folder_single_class_and_root(mvtec_root):
    one = scan_folder(mvtec_root / "screw")
    assert set(one["class"]) == {"screw"} and len(one) == 8
    both = scan_folder(mvtec_root)
    assert set(both["class"]) == {"bottle", "screw"}


def test_mask_named_without_suffix_is_found(tmp_path):
    root = tmp_path / "r"
    touch(root / "tile" / "train" / "good" / "a.jpg")
    touch(root / "tile" / "test" / "crack" / "b.jpg")
    touch(root / "tile" / "ground_truth" / "crack" / "b.png")
    rows = scan_mvtec(root)
    assert rows.loc[rows["label"] == 1, "mask_path"].iloc[0].endswith("crack/b.png")


def test_scan_visa_from_split_csv(tmp_path):
    root = tmp_path / "visa"
    records = []
    for obj in ("candle", "pcb1"):
        for i in range(3):
            rel = f"{obj}/Data/Images/Normal/{i:04d}.JPG"
            touch(root / rel)
            records.append((obj, "train", "normal", rel, None))
        rel = f"{obj}/Data/Images/Normal/0100.JPG"
        touch(root / rel)
        records.append((obj, "test", "normal", rel, None))
        rel = f"{obj}/Data/Images/Anomaly/0000.JPG"
        mask = f"{obj}/Data/Masks/Anomaly/0000.png"
        touch(root / rel)
        touch(root / mask)
        records.append((obj, "test", "anomaly", rel, mask))
    (root / "split_csv").mkdir(parents=True)
    pd.DataFrame(records, columns=["object", "split", "label", "image", "mask"]).to_csv(
        root / "split_csv" / "1cls.csv", index=False
    )
    rows = scan_visa(root)
    assert len(rows) == 10
    anomalous = rows[rows["label"] == 1]
    assert len(anomalous) == 2 and (anomalous["split"] == "test").all()
    assert anomalous["mask_path"].str.endswith("Masks/Anomaly/0000.png").all()
    assert set(rows.loc[rows["label"] == 0, "defect_type"]) == {"good"}
    assert set(scan_dataset("visa", root, ["pcb1"])["class"]) == {"pcb1"}
    (root / "split_csv" / "1cls.csv").write_text("object,split\ncandle,train\n")
    with pytest.raises(DatasetLayoutError, match="columns"):
        scan_visa(root)


def test_validation_split_is_seeded_per_class_and_only_from_train(mvtec_root):
    rows = scan_mvtec(mvtec_root)
    a = assign_validation_split(rows, 0.4, seed=3)
    b = assign_validation_split(rows, 0.4, seed=3)
    pd.testing.assert_frame_equal(a, b)
    for cls in ("bottle", "screw"):
        sel = a[a["class"] == cls]
        assert (sel["split"] == "val").sum() == 2
        assert (sel["split"] == "train").sum() == 3
    assert (a.loc[a["split"] == "val", "label"] == 0).all()
    assert (a["split"] == "test").sum() == (rows["split"] == "test").sum()
    # at least one train image always stays in train, even with a large fraction
    tiny = rows[(rows["class"] == "bottle")].copy()
    d = assign_validation_split(tiny, 0.99, seed=0)
    assert (d["split"] == "train").sum() == 1
    many = pd.DataFrame(
        {"class": "x", "split": "train", "label": 0, "image_path": map(str, range(50))}
    )
    picks = {
        tuple(assign_validation_split(many, 0.2, seed=s)["split"] == "val")
        for s in range(3)
    }
    assert len(picks) == 3  # the seed really drives the choice
    with pytest.raises(ValueError, match="val_fraction"):
        assign_validation_split(rows, 1.0, seed=0)


def test_a_class_split_does_not_depend_on_other_classes(mvtec_root):
    rows = scan_mvtec(mvtec_root)
    both = assign_validation_split(rows, 0.4, seed=7)
    alone = assign_validation_split(rows[rows["class"] == "screw"], 0.4, seed=7)
    val_both = both.loc[(both["class"] == "screw") & (both["split"] == "val")]
    val_alone = alone.loc[alone["split"] == "val"]
    assert sorted(val_both["image_path"]) == sorted(val_alone["image_path"])


def test_validation_split_is_required(mvtec_root):
    with pytest.raises(ValueError, match="validation split is required"):
        assign_validation_split(scan_mvtec(mvtec_root), 0.0, seed=0)


def _write_visa_csv(root: Path, records) -> None:
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records, columns=["object", "split", "label", "image", "mask"]).to_csv(
        root / "split_csv" / "1cls.csv", index=False
    )


def test_visa_windows_paths_and_bad_rows(tmp_path):
    root = tmp_path / "visa"
    touch(root / "candle/Data/Images/Anomaly/0000.JPG")
    touch(root / "candle/Data/Masks/Anomaly/0000.png")
    _write_visa_csv(
        root,
        [
            (
                "candle",
                "test",
                "anomaly",
                "candle\\Data\\Images\\Anomaly\\0000.JPG",
                "candle\\Data\\Masks\\Anomaly\\0000.png",
            )
        ],
    )
    (row,) = scan_visa(root).itertuples(index=False)
    assert Path(row.image_path).is_file() and Path(row.mask_path).is_file()
    _write_visa_csv(root, [("candle", "validation", "normal", "a.JPG", None)])
    with pytest.raises(DatasetLayoutError, match="line 2.*validation"):
        scan_visa(root)
    _write_visa_csv(root, [("candle", "test", "broken", "a.JPG", None)])
    with pytest.raises(DatasetLayoutError, match="line 2.*broken"):
        scan_visa(root)
