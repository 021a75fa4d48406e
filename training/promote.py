"""Promotion: does the challenger earn the champion alias? And rollback to any version.

`promote` moves the champion alias to the challenger only when the challenger beats the
champion on the shared recent holdout by the required margin; `promote(version=N)`
rolls back (or forward) to any registered version. The comparison reads models and
data; the alias itself is written by `training.registry`, the registry's only writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from features.crm.database import is_database_url
from features.crm.load import CsvFormat, load_crm
from features.model.names import MODEL_NAME
from features.model.pyfunc import load_scorer
from features.pipeline.snapshots import SnapshotConfig
from training.holdout import model_metrics, recent_holdout, rule_points
from training.registry import (
    CHALLENGER,
    CHAMPION,
    WEAK_TAG,
    alias_version,
    has_version,
    set_alias,
    version_tags,
)
from training.table_train import table_holdout


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
    """Make the challenger (or ``version``) the champion, if it earns it.

    A version registered although its booster learned nothing (`--allow-weak`) is never
    made champion without ``force``. The challenger is judged by its selection twin (the
    same recipe fitted without the holdout): the registered model was refitted on every
    row, the holdout included. The champion is judged by the model it serves; if it saw
    part of this holdout, the comparison leans its way, on purpose.
    """
    if version is not None:
        if not has_version(name, version):
            raise ValueError(f"{name} has no version {version}")
        _refuse_weak(name, version, force)
        previous = alias_version(name, CHAMPION)
        message = f"{name} version {version} is now the champion (was {previous or 'none'})"
        set_alias(name, CHAMPION, version, f"chosen by hand: {message}")
        return Promotion(True, version, message)
    challenger = alias_version(name, CHALLENGER)
    if challenger is None:
        raise ValueError(f"{name} has no challenger; train a model first (leadscore train)")
    champion = alias_version(name, CHAMPION)
    if champion == challenger:
        return Promotion(False, champion, f"version {challenger} is already the champion")
    _refuse_weak(name, challenger, force)
    if champion is None or force:
        why = "forced" if force else "there was no champion yet"
        message = f"version {challenger} is now the champion ({why})"
        set_alias(name, CHAMPION, challenger, message)
        return Promotion(True, challenger, message)
    challenger_scorer, _ = load_scorer(f"models:/{name}/{challenger}")
    champion_scorer, _ = load_scorer(f"models:/{name}/{champion}")
    if challenger_scorer.kind != champion_scorer.kind:
        raise ValueError(
            f"{name}: the champion scores {champion_scorer.kind} data and the challenger "
            f"{challenger_scorer.kind} data; register them under different names"
        )
    judge = challenger_scorer.selection or challenger_scorer
    if challenger_scorer.kind == "table":
        test, where = table_holdout(challenger_scorer, data)
        new = test.metric(judge, metric)
        old = test.metric(champion_scorer, metric)
        return _decide(
            name, challenger, champion, metric, new, old, min_improvement,
            f"{metric} on the challenger's holdout ({where})",
        )  # fmt: skip
    source = data or challenger_scorer.metadata.get("data_source")
    if source is None or not (is_database_url(str(source)) or Path(source).is_dir()):
        raise ValueError(
            "no CRM export to compare on: pass --data DIR (the challenger's training "
            f"data {source!r} is not a folder here)"
        )
    horizon = int(challenger_scorer.metadata.get("horizon_days", 90))
    csv_format = CsvFormat(**challenger_scorer.metadata.get("csv_format", {}))
    holdout = recent_holdout(load_crm(source, csv_format), SnapshotConfig(horizon_days=horizon))
    rules = challenger_scorer.rules
    share = float(rule_points(rules, holdout.store, holdout.frame)[1].mean()) if rules else 0.1
    new = model_metrics(judge, holdout, share)[metric]
    old = model_metrics(champion_scorer, holdout, share)[metric]
    window = f"{holdout.frame['as_of'].min().date()}..{holdout.frame['as_of'].max().date()}"
    return _decide(
        name, challenger, champion, metric, new, old, min_improvement,
        f"{metric} on the recent holdout ({len(holdout.frame):,} snapshots, {window})",
    )  # fmt: skip


def _refuse_weak(name: str, version: str, force: bool) -> None:
    why = version_tags(name, version).get(WEAK_TAG)
    if why and not force:
        raise ValueError(
            f"{name} version {version} learned nothing worth serving ({why}); it was "
            "registered with --allow-weak. promote --force makes it champion anyway."
        )


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
    if gain > min_improvement:  # it must beat the champion, by more than the margin
        message = f"promoted v{challenger}: {detail}"
        set_alias(name, CHAMPION, challenger, message)
        return Promotion(True, challenger, message)
    return Promotion(
        False,
        champion,
        f"not promoted: {detail}; the required improvement is "
        f"{min_improvement:g} (use --force to promote anyway)",
    )
