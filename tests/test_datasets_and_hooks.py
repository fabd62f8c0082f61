"""ArraysDataset round trip and atomic save; MLflow tag derivation."""

import os
from pathlib import Path

import numpy as np
import pytest
from kedro.io import DatasetError

from helpers import git
from kedro_ad.data.datasets import ArraysDataset
from kedro_ad.hooks import git_commit, pretrained_tag


def test_arrays_dataset_round_trip(tmp_path):
    ds = ArraysDataset(str(tmp_path / "sub" / "a.npz"))
    assert not ds.exists()
    data = {
        "images": np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3),
        "classes": np.array(["bottle", "screw"]),
        "scalar": np.asarray("mean_image"),
    }
    ds.save(data)
    back = ds.load()
    assert set(back) == set(data)
    np.testing.assert_array_equal(back["images"], data["images"])
    assert back["classes"].tolist() == ["bottle", "screw"]
    assert str(back["scalar"]) == "mean_image"
    assert list(Path(tmp_path / "sub").iterdir()) == [tmp_path / "sub" / "a.npz"]
    umask = os.umask(0)
    os.umask(umask)
    mode = (tmp_path / "sub" / "a.npz").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask  # like any other file, not mkstemp's 0600


def test_arrays_dataset_refuses_objects_and_leaves_nothing(tmp_path):
    ds = ArraysDataset(str(tmp_path / "b.npz"))
    with pytest.raises(DatasetError, match="dtype object"):
        ds.save({"x": np.array([{"a": 1}], dtype=object)})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DatasetError, match="does not exist"):
        ds.load()


def test_pretrained_tag_reads_backbones_of_the_pipeline():
    params = {
        "data": {"source": "embedded"},
        "diad": {"backbone": {"name": "tf_efficientnet_lite0", "pretrained": True}},
        "ran": {"padim": {"backbone": {"pretrained": False}}},
    }
    assert pretrained_tag(params, {"params:data", "manifest"}) == "none"
    assert pretrained_tag(params, {"params:diad"}) == "true"
    assert pretrained_tag(params, {"params:ran"}) == "false"
    assert pretrained_tag(params, {"params:diad", "params:ran"}) == "false"
    assert pretrained_tag(params, {"params:diad.backbone"}) == "true"


def test_git_commit_outside_a_repository(tmp_path):
    assert git_commit(tmp_path) == "unknown"


def test_git_commit_names_the_commit_and_a_dirty_tree(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "one")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert len(head) == 40 and git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("run outputs are not tracked")
    assert git_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("2")
    assert git_commit(tmp_path) == f"{head}-dirty"
