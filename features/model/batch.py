"""Batch scoring of a CRM export: every eligible contact at one as_of, as a table.

The output is what a CRM imports back: one row per contact with the points, the MQL
flag, the grade and the rules that moved the score most. The model's probability is
added by the training side (`leadscore score` with a model); the rules are computed
here because they are part of what must behave the same offline and online.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.crm.load import CRM
from features.model.scorer import LeadScorer
from features.pipeline.kernel import compute_features
from features.pipeline.registry import label
from features.pipeline.snapshots import data_end, eligibility, to_epoch
from features.pipeline.store import EventStore
from features.points.engine import RuleScores, score_rules
from features.points.matrix import RulesConfig
from features.points.table_sheet import score_table_rules
from features.table.cells import input_columns, require_columns
from features.table.spec import TableError


def eligible_contacts(store: EventStore, as_of: int) -> np.ndarray:
    """Contacts that exist at as_of and have no deal open (those are already with sales)."""
    masks = eligibility(store, as_of, active_days=None)
    return np.flatnonzero(masks["created"] & ~masks["blocked"])


def resolve_as_of(crm: CRM, as_of: str | pd.Timestamp | None) -> pd.Timestamp:
    """The scoring moment: the given one (UTC when no offset is given), or the end of the data."""
    if as_of is None:
        return data_end(crm)
    ts = pd.Timestamp(as_of)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def rules_table(
    crm: CRM, config: RulesConfig, as_of: pd.Timestamp, store: EventStore | None = None
) -> tuple[pd.DataFrame, RuleScores, np.ndarray]:
    """Points of every eligible contact at as_of; returns (table, scores, contact indices)."""
    store = store or EventStore.from_crm(crm)
    moment = to_epoch(as_of)
    contacts = eligible_contacts(store, moment)
    scores = score_rules(config, store, contacts, np.full(len(contacts), moment))
    table = pd.DataFrame(
        {
            "contact_id": store.contact_ids[contacts],
            "account_id": store.per_contact(store.account_ids, None)[contacts],
            "rule_points": scores.total.round(2),
            "fit_points": scores.fit.round(2),
            "engagement_points": scores.engagement.round(2),
            "mql": scores.mql,
            "grade": scores.grade,
            "top_rules": [scores.top_rules(i) for i in range(len(contacts))],
        }
    )
    return table, scores, contacts


def model_table(
    crm: CRM, scorer: LeadScorer, config: RulesConfig, as_of: pd.Timestamp, reasons: int = 3
) -> pd.DataFrame:
    """The points table plus the model's probability and, unless ``reasons`` is 0, the
    labels of its top positive reasons (TreeSHAP, the costliest part of a batch)."""
    store = EventStore.from_crm(crm)
    table, _, contacts = rules_table(crm, config, as_of, store=store)
    block = compute_features(store, contacts, np.full(len(contacts), to_epoch(as_of)))
    x = scorer.matrix(block)
    # (full precision: the live store's scores are compared with these to 1e-9)
    table.insert(2, "probability", scorer.predict(x))
    if reasons > 0:
        table.insert(3, "top_reasons", top_reasons(scorer, x, reasons))
    return table


def top_reasons(scorer: LeadScorer, x: np.ndarray, k: int) -> list[str]:
    """Per row of ``x``, the labels of its ``k`` largest positive TreeSHAP contributions."""
    contributions = scorer.contributions(x)[:, :-1]
    names = [label(f) for f in scorer.feature_names]
    top = np.argsort(-contributions, axis=1)[:, :k]
    return [
        "; ".join(names[j] for j in row if contributions[i, j] > 0) for i, row in enumerate(top)
    ]


def table_scores(raw: pd.DataFrame, scorer: LeadScorer, reasons: int = 3) -> pd.DataFrame:
    """Probability, points, MQL and reasons for every row of a lead table (a table model).

    Refuses, naming the column and rows, a table without the model's input columns or
    with text in a numeric column: a silently missing value would change the score.
    """
    spec = scorer.table_spec
    require_columns(raw, spec.columns, "the columns the model was trained on")
    inputs, bad = input_columns({name: raw[name].tolist() for name in spec.columns}, spec)
    if bad:
        lines = []
        for name, rows in bad.items():
            examples = ", ".join(f"row {i + 1}: {raw[name].iloc[i]!r}" for i in rows[:5])
            lines.append(f"  {name!r}: {len(rows)} cells are not numbers ({examples})")
        raise TableError("numeric columns hold text:\n" + "\n".join(lines))
    x = scorer.matrix_from_columns(inputs)
    ids = raw[spec.id_column] if spec.id_column in raw.columns else np.arange(1, len(raw) + 1)
    table = pd.DataFrame({"lead_id" if spec.id_column is None else spec.id_column: ids})
    table["probability"] = scorer.predict(x).round(6)
    if scorer.table_rules is not None:
        points = score_table_rules(scorer.table_rules, inputs)
        table["points"] = points.total.round(2)
        table["mql"] = points.mql
        table["top_rules"] = [points.top_rules(i) for i in range(len(raw))]
    if reasons > 0:  # (a table's columns have no registry label: `label` gives the name)
        table["top_reasons"] = top_reasons(scorer, x, reasons)
    return table.reset_index(drop=True)
