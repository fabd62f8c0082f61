"""notebooks/compare_and_maps.ipynb runs headless against a project with a comparison
in MLflow: it opens the latest one and draws anomaly maps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import SMALL_SYNTHETIC, run_session

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "compare_and_maps.ipynb"


@pytest.mark.slow
def test_the_notebook_opens_the_latest_comparison_and_browses_maps(
    project, monkeypatch
):
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[test]'")
    run_session(project, None, SMALL_SYNTHETIC)  # the mean-image baseline
    run_session(project, "compare", SMALL_SYNTHETIC)
    assert (project / "data/08_reporting/compare/comparison.md").is_file()

    monkeypatch.setenv("KEDRO_AD_PROJECT", str(project))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(project)}},
    )
    client.execute(env=dict(os.environ))  # raises CellExecutionError on any error
    outputs = [o for cell in notebook.cells for o in cell.get("outputs", [])]
    text = "\n".join(
        str(o.get("text", ""))
        + str(o.get("data", {}).get("text/plain", ""))
        + str(o.get("data", {}).get("text/markdown", ""))
        for o in outputs
    )
    assert "mean_image" in text and "data version" in text.lower()
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the comparison figure and a method's maps
