"""Evaluate any registered model on any CRM export, on its most recent snapshots.

The shared recent holdout is the last `test_fraction` of the export's mature as_of
dates: the period a newly trained challenger did not train on, and the one that matters
for the next quarter. `promote` compares challenger and champion on it; `leadscore
evaluate` prints the same comparison for any model URI, next to the points score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.crm.load import CRM, load_crm
from features.model.pyfunc import load_scorer
from features.model.scorer import LeadScorer
from features.pipeline.snapshots import SnapshotConfig, build_snapshots
from features.pipeline.store import EventStore, seconds
from features.points.engine import score_rules
from features.points.matrix import RulesConfig, load_rules
from training import evaluate as E


@dataclass
class Holdout:
    frame: pd.DataFrame
    store: EventStore


def recent_holdout(crm: CRM, cfg: SnapshotConfig, test_fraction: float = 0.25) -> Holdout:
    """The most recent `test_fraction` of mature snapshot dates of the export."""
    store = EventStore.from_crm(crm)
    frame, _ = build_snapshots(crm, cfg, store=store)
    dates = np.sort(frame["as_of"].unique())
    if len(dates) == 0:
        raise ValueError(
            "the export has no mature snapshot (its history is shorter than the horizon)"
        )
    first = dates[min(len(dates) - 1, int(len(dates) * (1 - test_fraction)))]
    return Holdout(frame[frame["as_of"] >= first].reset_index(drop=True), store)


def model_metrics(scorer: LeadScorer, holdout: Holdout, share: float) -> dict[str, float]:
    y = holdout.frame["converted"].to_numpy()
    p = scorer.predict(scorer.matrix_from_frame(holdout.frame))
    return E.metrics(y, p, p, E.select_top(p, share))


def rule_points(
    rules: RulesConfig, store: EventStore, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """(points, MQL flag) of each snapshot row of ``frame`` (contact_id, as_of)."""
    contacts = store.contact_index(frame["contact_id"].astype(str).tolist())
    scores = score_rules(rules, store, contacts, seconds(frame["as_of"]))
    return scores.total, scores.mql


def evaluate_model(
    model_uri: str,
    data: str | Path,
    horizon_days: int | None = None,
    test_fraction: float = 0.25,
    crm: CRM | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Comparison table of the model and the points score on the export's recent holdout
    (``crm``: the export at ``data``, when already loaded)."""
    scorer, info = load_scorer(model_uri)
    if scorer.kind != "touchpoint":
        raise ValueError(
            f"{model_uri} scores a lead table, not a CRM export; its evaluation is the "
            "comparison printed by `leadscore train --table` (and logged in its MLflow run)"
        )
    horizon = horizon_days or int(scorer.metadata.get("horizon_days", 90))
    crm = crm or load_crm(data)
    holdout = recent_holdout(crm, SnapshotConfig(horizon_days=horizon), test_fraction)
    y = holdout.frame["converted"].to_numpy()
    if y.sum() == 0:
        raise ValueError(f"the recent holdout ({len(y):,} snapshots) has no conversion to rank")
    rules = scorer.rules or load_rules()
    points, mql = rule_points(rules, holdout.store, holdout.frame)
    share = float(mql.mean())
    results = {
        f"model {info.get('name') or model_uri} v{info.get('version') or '?'}": model_metrics(
            scorer, holdout, share
        ),
        "rules": E.metrics(y, points, None, mql),
    }
    table = E.comparison_table(results)
    window = {
        "holdout_from": str(holdout.frame["as_of"].min()),
        "holdout_to": str(holdout.frame["as_of"].max()),
        "snapshots": str(len(y)),
        "conversions": str(int(y.sum())),
        "warning": seen_holdout_warning(scorer, holdout.frame["as_of"].min()),
    }
    return table, window


def seen_holdout_warning(scorer: LeadScorer, holdout_from: pd.Timestamp) -> str:
    """Says so when the model was refitted on data that reaches into the holdout: its
    figures there are partly in-sample (its run's comparison table has the honest ones)."""
    window = scorer.metadata.get("training_window") or []
    if len(window) < 2 or "refit" not in scorer.metadata:
        return ""
    trained_to = pd.Timestamp(window[1])
    if trained_to < holdout_from:
        return ""
    return (
        f"this model was refitted on snapshots up to {trained_to.date()}, inside this holdout "
        f"(from {holdout_from.date()}): its figures here are partly in-sample; the honest "
        "ones are its training run's comparison (the selection fit on unseen rows)"
    )
