"""atomic_path: a target is replaced whole or not at all."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kedro_ad.data.atomic import atomic_path


def test_file_is_replaced_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "sub" / "arrays.npz"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".npz"
        np.savez(tmp, a=np.arange(3))  # savez keeps a name ending in .npz
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert np.load(target)["a"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in target.parent.iterdir()) == ["arrays.npz"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_folder_is_swapped_whole_and_a_failure_keeps_the_old_one(tmp_path):
    target = tmp_path / "model"
    with atomic_path(target, folder=True) as tmp:
        (tmp / "v").write_text("1")
    with atomic_path(target, folder=True) as tmp:
        assert not any(tmp.iterdir())
        (tmp / "v").write_text("2")
    assert (target / "v").read_text() == "2"
    with pytest.raises(KeyboardInterrupt), atomic_path(target, folder=True) as tmp:
        (tmp / "v").write_text("3")
        raise KeyboardInterrupt
    assert (target / "v").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
