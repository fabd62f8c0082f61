"""Promotion: the newest version of a registered model against its champion.

Every training run registers a version of ``kedro-ad-<method>`` tagged with its
figures (:func:`kedro_ad.hooks.model_version_tags`). ``promote`` reads the newest
version and the one holding the alias (``champion``), compares one figure (a tag,
higher is better) and moves the alias only when the newcomer is better by more
than the margin. It never creates, overwrites or deletes a version: it sets the
alias and a ``promotion`` tag on the newcomer, nothing else. A version whose
figure cannot be read, or two versions measured on different data, are a
refusal (:class:`PromotionRefused`), never a guess.

A person can move the alias too, in the MLflow UI (the model version's page,
"Aliases"); the next ``promote`` compares against whatever holds it then.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)


class PromotionRefused(ValueError):
    """Promotion cannot decide; the message says which version lacks what."""


@dataclass(frozen=True)
class Candidate:
    """One model version as promotion sees it."""

    version: int
    tags: dict[str, str]

    def figure(self, metric: str) -> float | None:
        """The tag ``metric`` as a number, or None when missing or not a number."""
        try:
            value = float(self.tags[metric])
        except (KeyError, TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Decision:
    """What promote decided, with the figures it decided on."""

    model_name: str
    alias: str
    metric: str
    margin: float
    newcomer: int
    newcomer_value: float
    champion: int | None
    champion_value: float | None
    promoted: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    model_name: str,
    newcomer: Candidate,
    champion: Candidate | None,
    metric: str,
    margin: float,
    alias: str = "champion",
    same_data: bool = True,
) -> Decision:
    """Whether ``newcomer`` takes the alias from ``champion`` (pure: no MLflow).

    Promoted when there is no champion yet, or when the newcomer's ``metric`` is
    greater than the champion's plus ``margin``. Raises :class:`PromotionRefused`
    when a figure is missing or, with ``same_data``, when the two versions were
    measured on different data versions.
    """
    name = f"{model_name} version"
    value = newcomer.figure(metric)
    if value is None:
        raise PromotionRefused(
            f"{name} {newcomer.version} (the newest) has no readable tag {metric!r} "
            f"(it has {sorted(newcomer.tags)}): nothing to compare"
        )
    common = dict(
        model_name=model_name,
        alias=alias,
        metric=metric,
        margin=float(margin),
        newcomer=newcomer.version,
        newcomer_value=value,
    )
    if champion is None:
        return Decision(
            **common,
            champion=None,
            champion_value=None,
            promoted=True,
            reason=f"no version holds {alias!r} yet: version {newcomer.version} "
            f"becomes {alias} ({metric} {value:.4f})",
        )
    held = champion.figure(metric)
    if champion.version == newcomer.version:
        return Decision(
            **common,
            champion=champion.version,
            champion_value=held,
            promoted=False,
            reason=f"version {newcomer.version} is already {alias}",
        )
    if held is None:
        raise PromotionRefused(
            f"{name} {champion.version} holds {alias!r} but its tag {metric!r} "
            f"cannot be read (tags: {sorted(champion.tags)}); tag it or move the "
            "alias by hand in the MLflow UI"
        )
    if same_data:
        ours, theirs = (
            newcomer.tags.get("data_version"),
            champion.tags.get("data_version"),
        )
        if ours is None or theirs is None or ours != theirs:
            raise PromotionRefused(
                f"{name} {newcomer.version} was measured on data {ours} and "
                f"{alias} version {champion.version} on {theirs}: their {metric} "
                "do not compare (promote.same_data: false compares them anyway)"
            )
    better = value > held + float(margin)
    verdict = "beats" if better else "does not beat"
    return Decision(
        **common,
        champion=champion.version,
        champion_value=held,
        promoted=better,
        reason=f"version {newcomer.version} {verdict} {alias} version "
        f"{champion.version}: {metric} {value:.4f} vs {held:.4f} + margin "
        f"{float(margin):g}",
    )


def _registry_state(client, model_name: str, alias: str):
    from mlflow.exceptions import MlflowException

    versions = client.search_model_versions(f"name = '{model_name}'")
    if not versions:
        raise PromotionRefused(
            f"no version of {model_name!r} is registered: run its training "
            "pipeline first"
        )
    newest = max(versions, key=lambda v: int(v.version))
    try:
        held = client.get_model_version_by_alias(model_name, alias)
    except MlflowException:  # no version holds the alias yet
        held = None
    as_candidate = {
        int(v.version): Candidate(int(v.version), dict(v.tags)) for v in versions
    }
    champion = as_candidate[int(held.version)] if held is not None else None
    return as_candidate[int(newest.version)], champion


def promote(params: dict) -> tuple[dict, str, dict]:
    """Compare the newest version of ``params["model_name"]`` with the holder of
    ``params["alias"]`` and move the alias when the newcomer wins.

    Returns the decision (with both versions' tags, logged to MLflow as JSON), a
    Markdown table of both versions' figures, and the two figures as MLflow
    metrics (``promote.newcomer``, ``promote.champion`` through the catalog).
    """
    import mlflow

    model_name, alias = str(params["model_name"]), str(params.get("alias", "champion"))
    metric, margin = str(params["metric"]), float(params.get("margin", 0.0))
    client = mlflow.MlflowClient()
    newcomer, champion = _registry_state(client, model_name, alias)
    decision = decide(
        model_name,
        newcomer,
        champion,
        metric,
        margin,
        alias=alias,
        same_data=bool(params.get("same_data", True)),
    )
    if decision.promoted:
        client.set_registered_model_alias(model_name, alias, str(newcomer.version))
    client.set_model_version_tag(
        model_name,
        str(newcomer.version),
        "promotion",
        ("promoted: " if decision.promoted else "not promoted: ") + decision.reason,
    )
    logger.info("promote %s: %s", model_name, decision.reason)
    record = decision.as_dict()
    record["versions"] = {
        "newcomer": {"version": newcomer.version, "tags": newcomer.tags},
        "champion": None
        if champion is None
        else {"version": champion.version, "tags": champion.tags},
    }
    metrics = {"newcomer": {"value": decision.newcomer_value, "step": 0}}
    if decision.champion_value is not None:
        metrics["champion"] = {"value": decision.champion_value, "step": 0}
    return record, _table(decision, newcomer, champion), metrics


def _table(decision: Decision, newcomer: Candidate, champion: Candidate | None) -> str:
    """Both versions' figures side by side, headed by the decision."""
    shown = [
        decision.metric,
        "val_score",
        "val_image_auroc",
        "val_pixel_aupro",
        "test_image_auroc",
        "test_pixel_auroc",
        "test_pixel_aupro",
        "threshold",
        "data_version",
        "git_commit",
    ]
    shown = list(dict.fromkeys(shown))
    rows = [
        (
            "",
            f"newcomer v{newcomer.version}",
            "champion" + (f" v{champion.version}" if champion else " (none)"),
        )
    ]
    for key in shown:
        rows.append(
            (
                key,
                newcomer.tags.get(key, "-"),
                champion.tags.get(key, "-") if champion else "-",
            )
        )
    lines = ["| " + " | ".join(rows[0]) + " |", "|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    verdict = "**promoted**" if decision.promoted else "**not promoted**"
    return (
        f"# Promotion of {decision.model_name} ({decision.alias})\n\n"
        f"{verdict}: {decision.reason}.\n\n" + "\n".join(lines) + "\n"
    )
