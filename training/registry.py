"""The model registry: the only module that writes to it.

Registered model `lead-scorer`; aliases `challenger` (the newest trained model) and
`champion` (the one serving loads). Never the deprecated stages. `promote` moves the
champion alias to the challenger only when the challenger beats the champion on the
shared recent holdout by the required margin; `promote(version=N)` rolls back (or
forward) to any registered version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from features.crm import load_crm
from features.models import MODEL_NAME
from features.scorer import load_scorer, tracking_uri
from features.snapshots import SnapshotConfig

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


def client() -> MlflowClient:
    mlflow.set_tracking_uri(tracking_uri())
    return MlflowClient()


def set_alias(name: str, alias: str, version: str) -> None:
    client().set_registered_model_alias(name, alias, version)


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    """Tags on a registered version (e.g. its kind), visible in the registry's UI."""
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, value)


def alias_version(name: str, alias: str) -> str | None:
    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


@dataclass
class Promotion:
    promoted: bool
    champion: str | None  # the champion version after the call
    message: str


def promote(
    name: str = MODEL_NAME,
    version: str | None = None,
    force: bool = False,
    data: str | Path | None = None,
    metric: str = "roc_auc",
    min_improvement: float = 0.0,
) -> Promotion:
    """Make the challenger (or ``version``) the champion, if it earns it."""
    c = client()
    if version is not None:
        try:
            c.get_model_version(name, version)
        except MlflowException as exc:
            raise ValueError(f"{name} has no version {version}") from exc
        previous = alias_version(name, CHAMPION)
        c.set_registered_model_alias(name, CHAMPION, version)
        return Promotion(
            True,
            version,
            f"{name} version {version} is now the champion (was {previous or 'none'})",
        )
    challenger = alias_version(name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{name} has no challenger; train a model first (leadscore train)")
    champion = alias_version(name, CHAMPION)
    if champion == challenger:
        return Promotion(False, champion, f"version {challenger} is already the champion")
    if champion is None or force:
        c.set_registered_model_alias(name, CHAMPION, challenger)
        why = "forced" if force else "there was no champion yet"
        return Promotion(True, challenger, f"version {challenger} is now the champion ({why})")
    from training.holdout import model_metrics, recent_holdout, rule_points

    challenger_scorer, _ = load_scorer(f"models:/{name}/{challenger}")
    champion_scorer, _ = load_scorer(f"models:/{name}/{champion}")
    if challenger_scorer.kind != champion_scorer.kind:
        raise ValueError(
            f"{name}: the champion scores {champion_scorer.kind} data and the challenger "
            f"{challenger_scorer.kind} data; register them under different names"
        )
    if challenger_scorer.kind == "table":
        from training.table_train import table_holdout

        test, where = table_holdout(challenger_scorer, data)
        new = test.metric(challenger_scorer, metric)
        old = test.metric(champion_scorer, metric)
        return _decide(
            name, challenger, champion, metric, new, old, min_improvement,
            f"{metric} on the challenger's holdout ({where})",
        )  # fmt: skip
    source = data or challenger_scorer.metadata.get("data_source")
    if source is None or not Path(source).is_dir():
        raise ValueError(
            "no CRM export to compare on: pass --data DIR (the challenger's training "
            f"data {source!r} is not a folder here)"
        )
    horizon = int(challenger_scorer.metadata.get("horizon_days", 90))
    holdout = recent_holdout(load_crm(source), SnapshotConfig(horizon_days=horizon))
    rules = challenger_scorer.rules
    share = float(rule_points(rules, holdout.store, holdout.frame)[1].mean()) if rules else 0.1
    new = model_metrics(challenger_scorer, holdout, share)[metric]
    old = model_metrics(champion_scorer, holdout, share)[metric]
    window = f"{holdout.frame['as_of'].min().date()}..{holdout.frame['as_of'].max().date()}"
    return _decide(
        name, challenger, champion, metric, new, old, min_improvement,
        f"{metric} on the recent holdout ({len(holdout.frame):,} snapshots, {window})",
    )  # fmt: skip


def _decide(
    name: str,
    challenger: str,
    champion: str,
    metric: str,
    new: float,
    old: float,
    min_improvement: float,
    where: str,
) -> Promotion:
    """Promote when the challenger beats the champion by more than the margin."""
    lower_is_better = metric in ("log_loss", "brier", "ece")
    gain = (old - new) if lower_is_better else (new - old)
    detail = f"{where}: challenger v{challenger} {new:.4f}, champion v{champion} {old:.4f}"
    c = client()
    if gain > min_improvement:  # it must beat the champion, by more than the margin
        c.set_registered_model_alias(name, CHAMPION, challenger)
        return Promotion(True, challenger, f"promoted v{challenger}: {detail}")
    return Promotion(
        False,
        champion,
        f"not promoted: {detail}; the required improvement is "
        f"{min_improvement:g} (use --force to promote anyway)",
    )
