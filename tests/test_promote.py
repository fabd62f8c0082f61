"""Promotion: the champion alias moves only to a better version, never by guess."""

from __future__ import annotations

import json

import mlflow
import pytest

from helpers import SMALL_SYNTHETIC, run_session
from kedro_ad.pipelines.promote.nodes import (
    Candidate,
    PromotionRefused,
    decide,
)

DATA = {"data_version": "abc"}


def _decide(new: dict, old: dict | None, margin: float = 0.0, **kwargs):
    champion = None if old is None else Candidate(1, {**DATA, **old})
    return decide(
        "m", Candidate(2, {**DATA, **new}), champion, "val_score", margin, **kwargs
    )


def test_the_alias_moves_only_when_the_newcomer_is_better_by_the_margin():
    assert _decide({"val_score": "0.5"}, None).promoted  # the first champion
    assert _decide({"val_score": "0.9"}, {"val_score": "0.8"}).promoted
    kept = _decide({"val_score": "0.85"}, {"val_score": "0.8"}, margin=0.1)
    assert not kept.promoted and "does not beat" in kept.reason
    assert not _decide({"val_score": "0.8"}, {"val_score": "0.8"}).promoted
    assert (kept.newcomer_value, kept.champion_value) == (0.85, 0.8)


def test_unreadable_figures_and_other_data_are_refused_by_name():
    with pytest.raises(
        PromotionRefused, match="version 1 holds 'champion'.*'val_score'"
    ):
        _decide({"val_score": "0.9"}, {"val_score": "nan"})
    with pytest.raises(PromotionRefused, match="version 1 holds"):
        _decide({"val_score": "0.9"}, {})
    with pytest.raises(PromotionRefused, match="version 2 .the newest. has no"):
        _decide({}, {"val_score": "0.9"})
    with pytest.raises(PromotionRefused, match="measured on data"):
        _decide({"val_score": "0.9", "data_version": "new"}, {"val_score": "0.8"})
    other = _decide(
        {"val_score": "0.9", "data_version": "new"},
        {"val_score": "0.8"},
        same_data=False,
    )
    assert other.promoted


def _train(project, sigma: float) -> str:
    """Register a version of kedro-ad-mean_image; return its val_score tag."""
    run_session(
        project,
        "mean_image_served",
        {**SMALL_SYNTHETIC, "mean_image.smoothing_sigma": sigma},
    )
    client = mlflow.MlflowClient()
    newest = max(
        client.search_model_versions("name='kedro-ad-mean_image'"),
        key=lambda v: int(v.version),
    )
    return newest.tags["val_score"]


def _promote(project, **params) -> dict:
    run_session(
        project,
        "promote",
        {
            "promote.model_name": "kedro-ad-mean_image",
            **{f"promote.{k}": v for k, v in params.items()},
        },
    )
    return json.loads(
        (project / "data/08_reporting/promotion/decision.json").read_text()
    )


def _champion() -> int:
    client = mlflow.MlflowClient()
    return int(
        client.get_model_version_by_alias("kedro-ad-mean_image", "champion").version
    )


@pytest.mark.slow
def test_two_trained_versions_the_alias_goes_to_the_better_one_only(project):
    """On a fresh project: train, promote, train a better one, promote."""
    mlflow.set_tracking_uri(f"sqlite:///{project}/mlflow.db")
    client = mlflow.MlflowClient()
    worse = float(_train(project, 4.0))  # version 1
    first = _promote(project)
    assert first["promoted"] and first["champion"] is None and _champion() == 1

    better = float(_train(project, 0.0))  # version 2, same data
    assert better > worse + 0.1
    kept = _promote(project, margin=better - worse + 0.01)  # not by this margin
    assert not kept["promoted"] and _champion() == 1
    assert kept["versions"]["champion"]["tags"]["val_score"] == f"{worse:.6f}"
    moved = _promote(project, margin=0.0)
    assert moved["promoted"] and (moved["newcomer"], moved["champion"]) == (2, 1)
    assert _champion() == 2
    assert (
        "promoted: version 2 beats champion version 1"
        in client.get_model_version("kedro-ad-mean_image", "2").tags["promotion"]
    )
    (run,) = client.search_runs(
        [client.get_experiment_by_name("kedro-ad").experiment_id],
        filter_string="tags.pipeline = 'promote'",
        max_results=1,
    )
    assert run.data.metrics["promote.newcomer"] == pytest.approx(better, abs=1e-6)
    assert run.data.metrics["promote.champion"] == pytest.approx(worse, abs=1e-6)
    assert {a.path for a in client.list_artifacts(run.info.run_id, "promotion")} == {
        "promotion/decision.json",
        "promotion/decision.md",
    }

    # a person moves the alias back by hand (as in the UI), and the champion's
    # figure is gone: promote refuses, changes nothing, deletes nothing
    client.set_registered_model_alias("kedro-ad-mean_image", "champion", "1")
    client.delete_model_version_tag("kedro-ad-mean_image", "1", "val_score")
    with pytest.raises(PromotionRefused, match="version 1 holds 'champion' but"):
        _promote(project)
    assert _champion() == 1
    versions = client.search_model_versions("name='kedro-ad-mean_image'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
