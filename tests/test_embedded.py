"""Tests of the embedded dataset generator (kedro_ad.data.embedded)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from kedro_ad.data import embedded as syn
from kedro_ad.data.embedded import (
    EMBEDDED_CLASSES,
    EMBEDDED_DEFECTS,
    FINGERPRINT_FILE,
    MAX_MASK_FRACTION,
    MIN_MASK_FRACTION,
    PART_DEFECT_TYPES,
    generate_embedded_dataset,
    render_sample,
    writer,
)

SMALL = {"image_size": 64, "n_train": 3, "n_test_good": 2, "n_test_per_defect": 2}


def _tree_hash(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by its relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _siblings(root: Path) -> list[str]:
    """Names next to ``root`` other than ``root`` itself (temp / old folders)."""
    return sorted(p.name for p in root.parent.iterdir() if p.name != root.name)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One small dataset of every class, shared by the read-only tests."""
    root = tmp_path_factory.mktemp("gen") / "embedded"
    summary = generate_embedded_dataset(root, seed=3, **SMALL)
    return root, summary


def test_registry_has_textures_objects_and_part_defects() -> None:
    kinds = list(EMBEDDED_CLASSES.values())
    assert len(EMBEDDED_CLASSES) >= 6
    assert set(kinds) == {"texture", "object"}
    assert kinds.count("texture") >= 3
    assert kinds.count("object") >= 3
    assert set(EMBEDDED_DEFECTS) == set(EMBEDDED_CLASSES)
    allowed = {"scratch", "crack", "hole", "stain", "contamination"} | PART_DEFECT_TYPES
    for name, defects in EMBEDDED_DEFECTS.items():
        assert len(set(defects)) == len(defects) >= 3, name
        assert set(defects) <= allowed, name
        if EMBEDDED_CLASSES[name] == "texture":
            assert not set(defects) & PART_DEFECT_TYPES, name
    objects = [c for c, k in EMBEDDED_CLASSES.items() if k == "object"]
    with_part = [c for c in objects if set(EMBEDDED_DEFECTS[c]) & PART_DEFECT_TYPES]
    assert with_part, "no object has a missing / misplaced part defect"


def test_layout_counts_and_summary(small_dataset: tuple[Path, dict]) -> None:
    root, summary = small_dataset
    assert summary["reused"] is False
    assert summary["seed"] == 3 and summary["image_size"] == 64
    assert summary["classes"] == list(EMBEDDED_CLASSES)
    assert (root / FINGERPRINT_FILE).is_file()
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [*EMBEDDED_CLASSES, FINGERPRINT_FILE]
    )
    n_images = 0
    for c, defects in EMBEDDED_DEFECTS.items():
        assert sorted(p.name for p in (root / c).iterdir()) == [
            "ground_truth",
            "test",
            "train",
        ]
        assert [p.name for p in (root / c / "train").iterdir()] == ["good"]
        assert sorted(p.name for p in (root / c / "test").iterdir()) == sorted(
            ["good", *defects]
        )
        assert sorted(p.name for p in (root / c / "ground_truth").iterdir()) == sorted(
            defects
        )
        train = sorted(p.name for p in (root / c / "train" / "good").iterdir())
        assert train == ["000.png", "001.png", "002.png"]
        good = sorted(p.name for p in (root / c / "test" / "good").iterdir())
        assert good == ["000.png", "001.png"]
        counts = summary["counts"][c]
        assert counts["train"] == {"good": 3}
        assert counts["test"] == {"good": 2, **{d: 2 for d in defects}}
        assert counts["ground_truth"] == {d: 2 for d in defects}
        for d in defects:
            imgs = sorted(p.name for p in (root / c / "test" / d).iterdir())
            masks = sorted(p.name for p in (root / c / "ground_truth" / d).iterdir())
            assert imgs == ["000.png", "001.png"]
            assert masks == ["000_mask.png", "001_mask.png"]
        n_images += 3 + 2 + 2 * len(defects)
    assert summary["n_images"] == n_images
    assert _siblings(root) == []


def test_images_rgb_and_masks_binary_nonempty(small_dataset: tuple[Path, dict]) -> None:
    root, _ = small_dataset
    for img_path in root.rglob("*.png"):
        if "ground_truth" in img_path.parts:
            continue
        with Image.open(img_path) as im:
            assert im.mode == "RGB" and im.size == (64, 64), img_path
        defect = img_path.parent.name
        if defect == "good":
            continue
        mask_path = (
            root
            / img_path.parts[-4]
            / "ground_truth"
            / defect
            / (img_path.stem + "_mask.png")
        )
        with Image.open(mask_path) as mm:
            assert mm.mode == "L" and mm.size == (64, 64), mask_path
            mask = np.asarray(mm)
        assert set(np.unique(mask).tolist()) == {0, 255}, mask_path
        frac = float((mask > 0).mean())
        assert MIN_MASK_FRACTION <= frac <= MAX_MASK_FRACTION, (mask_path, frac)


def test_written_files_equal_render_sample(small_dataset: tuple[Path, dict]) -> None:
    root, _ = small_dataset
    for c, defects in EMBEDDED_DEFECTS.items():
        img, mask, clean = render_sample(c, 1, "train", None, 3, 64)
        assert np.array_equal(
            np.asarray(Image.open(root / c / "train/good/001.png")), img
        )
        assert np.array_equal(img, clean) and not mask.any()
        d = defects[-1]
        img, mask, _ = render_sample(c, 0, "test", d, 3, 64)
        assert np.array_equal(
            np.asarray(Image.open(root / c / "test" / d / "000.png")), img
        )
        gt = np.asarray(Image.open(root / c / "ground_truth" / d / "000_mask.png"))
        assert np.array_equal(gt, mask)


@pytest.mark.parametrize("class_name", list(EMBEDDED_CLASSES))
def test_mask_is_exactly_the_changed_pixels(class_name: str) -> None:
    for defect in EMBEDDED_DEFECTS[class_name]:
        for index in range(2):
            img, mask, clean = render_sample(class_name, index, "test", defect, 0, 64)
            assert img.shape == clean.shape == (64, 64, 3) and img.dtype == np.uint8
            assert mask.shape == (64, 64) and mask.dtype == np.uint8
            changed = (img != clean).any(-1)
            assert changed.any(), (class_name, defect, index)
            # bit-identical outside the mask, different everywhere inside it
            assert np.array_equal(mask, changed.astype(np.uint8) * 255)
            diff = np.abs(img.astype(int) - clean.astype(int)).max(-1)
            assert diff[changed].min() > syn.MASK_TOLERANCE


def test_part_defect_masks_are_one_local_region() -> None:
    # A missing / moved part must not change anything elsewhere in the scene
    # (e.g. shadows of the other parts): its mask is one compact region.
    for c, defects in EMBEDDED_DEFECTS.items():
        for d in set(defects) & PART_DEFECT_TYPES:
            for index in range(6):
                _, mask, _ = render_sample(c, index, "test", d, 5, 96)
                grown = ndimage.binary_dilation(mask > 0, iterations=2)
                assert ndimage.label(grown)[1] == 1, (c, d, index)
                assert (mask > 0).mean() < 0.1, (c, d, index)


def test_default_size_defects_are_sized_and_images_look_smooth() -> None:
    for c, defects in EMBEDDED_DEFECTS.items():
        img, _, _ = render_sample(c, 0, "train", None, 0, 256)
        g = img.astype(float).mean(-1)
        # structured images, not noise: neighbouring pixels are strongly correlated
        r = np.corrcoef(g[:, :-1].ravel(), g[:, 1:].ravel())[0, 1]
        assert r > 0.5, (c, r)
        assert g.std() > 8, c  # and not a flat field either
        for d in defects:
            _, mask, _ = render_sample(c, 0, "test", d, 0, 256)
            frac = float((mask > 0).mean())
            assert MIN_MASK_FRACTION <= frac <= MAX_MASK_FRACTION, (c, d, frac)


def test_render_sample_depends_on_seed_class_and_index() -> None:
    a = render_sample("wood", 0, "train", None, 0, 64)[0]
    assert np.array_equal(a, render_sample("wood", 0, "train", None, 0, 64)[0])
    assert not np.array_equal(a, render_sample("wood", 0, "train", None, 1, 64)[0])
    assert not np.array_equal(a, render_sample("wood", 1, "train", None, 0, 64)[0])
    assert not np.array_equal(a, render_sample("wood", 0, "test", None, 0, 64)[0])


def test_render_sample_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        render_sample("no_such_class", 0)
    with pytest.raises(ValueError):
        render_sample("wood", 0, "train", "scratch")  # defects only in test
    with pytest.raises(ValueError):
        render_sample("wood", 0, "test", "missing_hole")  # not a wood defect
    with pytest.raises(ValueError):
        render_sample("wood", 0, "val")


def test_deterministic_for_seed_and_different_for_other_seed(tmp_path: Path) -> None:
    kw = {**SMALL, "classes": ["fabric", "pill"]}
    a = tmp_path / "a" / "embedded"
    b = tmp_path / "b" / "embedded"
    c = tmp_path / "c" / "embedded"
    generate_embedded_dataset(a, seed=7, **kw)
    generate_embedded_dataset(b, seed=7, **kw)
    generate_embedded_dataset(c, seed=8, **kw)
    ha, hb, hc = _tree_hash(a), _tree_hash(b), _tree_hash(c)
    assert ha == hb
    assert ha.keys() == hc.keys()
    pngs = [k for k in ha if k.endswith(".png") and "ground_truth" not in k]
    assert all(ha[k] != hc[k] for k in pngs)


def test_reuse_when_fingerprint_matches_and_regenerate_otherwise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data" / "embedded"
    kw = {**SMALL, "classes": ["wood", "washer"]}
    first = generate_embedded_dataset(root, seed=1, **kw)
    probe = root / "wood" / "train" / "good" / "000.png"
    stamp = probe.stat().st_mtime_ns, probe.stat().st_ino
    before = _tree_hash(root)

    with caplog.at_level("INFO", logger="kedro_ad.data.embedded"):
        again = generate_embedded_dataset(root, seed=1, **kw)
    assert again["reused"] is True
    assert "reusing" in caplog.text
    assert {k: v for k, v in again.items() if k != "reused"} == {
        k: v for k, v in first.items() if k != "reused"
    }
    assert (probe.stat().st_mtime_ns, probe.stat().st_ino) == stamp

    other = generate_embedded_dataset(root, seed=2, **kw)
    assert other["reused"] is False and other["seed"] == 2
    stored = json.loads((root / FINGERPRINT_FILE).read_text())
    assert stored["fingerprint"]["seed"] == 2
    assert (
        _tree_hash(root)[probe.relative_to(root).as_posix()]
        != before[probe.relative_to(root).as_posix()]
    )

    bigger = generate_embedded_dataset(root, seed=2, **{**kw, "n_train": 4})
    assert bigger["reused"] is False
    assert bigger["counts"]["wood"]["train"] == {"good": 4}
    assert _siblings(root) == []


def test_incomplete_dataset_is_regenerated(tmp_path: Path) -> None:
    root = tmp_path / "embedded"
    kw = {**SMALL, "classes": ["pcb"]}
    generate_embedded_dataset(root, seed=0, **kw)
    victim = root / "pcb" / "test" / "good" / "001.png"
    victim.unlink()
    summary = generate_embedded_dataset(root, seed=0, **kw)
    assert summary["reused"] is False
    assert victim.is_file()


def test_refuses_to_overwrite_foreign_folder(tmp_path: Path) -> None:
    root = tmp_path / "embedded"
    root.mkdir()
    (root / "precious.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        generate_embedded_dataset(root, **SMALL)
    assert (root / "precious.txt").read_text() == "user data"
    assert _siblings(root) == []


def test_failure_leaves_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "embedded"
    calls = {"n": 0}
    real = writer.render_sample

    def flaky(*args, **kwargs):
        """render_sample that fails part-way through the first class."""
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "render_sample", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_embedded_dataset(root, **SMALL)
    assert not root.exists()
    assert list(tmp_path.iterdir()) == []


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_embedded_dataset(tmp_path / "x", classes=["fabric", "unicorn"])
    with pytest.raises(ValueError):
        generate_embedded_dataset(tmp_path / "x", image_size=8)
    with pytest.raises(ValueError):
        generate_embedded_dataset(tmp_path / "x", n_train=-1)
    assert list(tmp_path.iterdir()) == []
