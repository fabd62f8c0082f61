"""Fixtures shared by the tests that run whole Kedro sessions."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest

from helpers import git

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the project's configuration, as the working directory."""
    from kedro.framework.startup import bootstrap_project

    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(
        REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local")
    )
    (root / "conf" / "local").mkdir()
    # An absolute store per test: MLflow caches stores by URI string, so the
    # relative sqlite:///mlflow.db would reach the first test's database.
    (root / "conf" / "local" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: sqlite:///{root}/mlflow.db\n"
    )
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(REPO / ".telemetry", root / ".telemetry")
    # bootstrap_project wants <root>/src; the installed kedro_ad package is used
    (root / "src" / "kedro_ad").mkdir(parents=True)
    git(root, "init", "-q")
    git(root, "add", "conf", "pyproject.toml")
    git(root, "commit", "-q", "-m", "the project under test")
    monkeypatch.chdir(root)
    bootstrap_project(root)
    yield root
    # RunTagsHook closes each session's run: none may be left open in the process
    assert mlflow.active_run() is None
