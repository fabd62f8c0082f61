"""``kedro-ad predict`` and the inference pipeline: a folder scored by the champion."""

from __future__ import annotations

import tomllib
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers import SMALL_SYNTHETIC, run_session
from kedro_ad.batch import collect_files, overlay
from kedro_ad.console import main

REPO = Path(__file__).resolve().parents[1]


def test_the_console_script_is_declared_and_folders_are_walked(tmp_path):
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kedro-ad"] == "kedro_ad.console:main"
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/2.png", "a/b/1.png", "a/.hidden.png", "c.png"):
        (tmp_path / name).write_bytes(b"x")
    files, missing = collect_files([tmp_path / "a", tmp_path / "c.png", "nope.png"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a/2.png",
        "a/b/1.png",
        "c.png",
    ]
    assert missing == [{"path": "nope.png", "reason": "not found"}]


def test_overlays_are_framed_by_decision_and_cool_below_the_threshold():
    image = np.full((40, 40, 3), 128, np.uint8)
    amap = np.zeros((40, 40), np.float32)
    amap[10:20, 10:20] = 5.0
    ng = overlay(image, amap, threshold=2.0, decision="NG")
    ok = overlay(image, amap * 0.1, threshold=2.0, decision="OK")
    assert tuple(ng[0, 20]) == (220, 30, 30) and tuple(ok[0, 20]) == (30, 170, 60)
    # a map far below the threshold barely tints the image
    assert (
        np.abs(ok[15, 15].astype(int) - 128).max()
        < np.abs(ng[15, 15].astype(int) - 128).max()
    )


def _listing(root: Path, skip: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and skip not in p.parents and p.name != "mlflow.db"
    }


@pytest.mark.slow
def test_predict_scores_a_folder_with_the_champion_and_skips_bad_files(
    project, tmp_path, capsys
):
    one_class = {**SMALL_SYNTHETIC, "data.classes": ["pill"]}
    run_session(project, "mean_image_served", one_class)
    run_session(project, "promote", {"promote.model_name": "kedro-ad-mean_image"})
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")

    inbox = tmp_path / "inbox"
    (inbox / "more").mkdir(parents=True)
    tests = sorted((project / "data/01_raw/embedded/pill/test").rglob("*.png"))[:5]
    for i, path in enumerate(tests):
        (inbox / ("more" if i % 2 else "") / f"{i}_{path.name}").write_bytes(
            path.read_bytes()
        )
    Image.open(tests[0]).resize((48, 40)).save(inbox / "other_size.png")
    (inbox / "notes.txt").write_text("not an image")
    (inbox / "broken.png").write_bytes(tests[0].read_bytes()[:60])
    before = _listing(project, project / "out"), _listing(inbox, inbox / "none")

    out = project / "out"
    status = main(
        [
            "predict",
            str(inbox),
            "--model",
            "models:/kedro-ad-mean_image@champion",
            "--out",
            str(out),
            "--batch-size",
            "2",
        ]
    )
    assert status == 1  # some files were skipped
    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["path", "score", "decision", "threshold", "overlay"]
    assert len(table) == 6 and set(table["decision"]) <= {"NG", "OK"}
    expected = np.where(table["score"] >= table["threshold"], "NG", "OK")
    assert table["decision"].tolist() == expected.tolist()
    for name in table["overlay"]:
        assert (out / name).is_file()
    size = Image.open(
        out / table["overlay"][table["path"].str.endswith("other_size.png")].item()
    ).size
    assert size == (48, 40)  # overlays at each image's own size
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(Path(p).name for p in skipped["path"]) == ["broken.png", "notes.txt"]
    assert (
        "not an image" in skipped.set_index("path")["reason"][str(inbox / "notes.txt")]
    )
    # nothing written outside --out (the MLflow store is only read)
    assert (_listing(project, out), _listing(inbox, inbox / "none")) == before
    assert sorted(p.name for p in out.iterdir()) == [
        "overlays",
        "predictions.csv",
        "skipped.csv",
    ]

    # the same model scores the same images in the inference pipeline
    run_session(
        project,
        "inference",
        {
            "inference.inputs": [str(inbox)],
            "inference.model_uri": "models:/kedro-ad-mean_image@champion",
        },
    )
    again = pd.read_csv(project / "data/07_model_output/inference/predictions.csv")
    np.testing.assert_allclose(again["score"], table["score"], rtol=1e-6)
    assert len(pd.read_csv(project / "data/07_model_output/inference/skipped.csv")) == 2

    # nothing to start on: one line, exit status 2
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    args = [
        "--model",
        "models:/kedro-ad-mean_image@champion",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(["predict", str(tmp_path / "empty"), *args]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert not (tmp_path / "o").exists()
    bad = ["--model", "models:/kedro-ad-nothing@champion", "--out", str(tmp_path / "o")]
    assert main(["predict", str(inbox), *bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kedro-ad predict: error: cannot load model ")
    assert "\n" not in err
    assert not (tmp_path / "o").exists()
