"""Batch scoring of a CRM export: every eligible contact at one as_of, as a table.

The output is what a CRM imports back: one row per contact with the points, the MQL
flag, the grade and the rules that moved the score most. The model's probability is
added by the training side (`leadscore score` with a model); the rules are computed
here because they are part of what must behave the same offline and online.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.crm.load import CRM
from features.model.names import DEFAULT_REASONS_FOR
from features.pipeline.kernel import compute_features
from features.pipeline.registry import label
from features.pipeline.snapshots import data_end, eligibility, to_epoch
from features.pipeline.store import EventStore
from features.points.engine import RuleScores, score_rules
from features.points.matrix import RulesConfig
from features.points.table_sheet import score_table_rules
from features.table.cells import input_columns, require_columns
from features.table.spec import TableError

if TYPE_CHECKING:  # the rules-only path never loads a model: it need not import LightGBM
    from features.model.scorer import LeadScorer


def eligible_contacts(store: EventStore, as_of: int) -> np.ndarray:
    """Contacts that exist at as_of and have no deal open (those are already with sales)."""
    masks = eligibility(store, as_of, active_days=None)
    return np.flatnonzero(masks["created"] & ~masks["blocked"])


def resolve_as_of(crm: CRM, as_of: str | pd.Timestamp | None) -> pd.Timestamp:
    """The scoring moment: the given one (UTC when no offset is given), or the end of the data."""
    return data_end(crm) if as_of is None else in_utc(as_of)


def in_utc(moment: str | pd.Timestamp) -> pd.Timestamp:
    """A moment in UTC (UTC when it has no offset)."""
    ts = pd.Timestamp(moment)
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
            "top_rules": scores.top_rules_all(),
        }
    )
    return table, scores, contacts


@dataclass(frozen=True)
class ReasonsFor:
    """Which rows of a batch get reasons: `mql`, `top:K` (the K best by probability),
    `top:P%` (the best P %), `all`; several, comma-separated, add up."""

    all: bool = False
    mql: bool = False
    top: int = 0
    top_share: float = 0.0

    @classmethod
    def parse(cls, text: str) -> ReasonsFor:
        parts = [p.strip().lower() for p in text.split(",") if p.strip()]
        if not parts:
            raise ValueError("say which rows get reasons: mql, top:K, top:P%, all")
        found: dict[str, object] = {}
        for part in parts:
            if part == "all":
                found["all"] = True
            elif part == "mql":
                found["mql"] = True
            elif m := re.fullmatch(r"top:(\d+(?:\.\d+)?)%", part):
                share = float(m.group(1)) / 100
                if not 0 < share <= 1:
                    raise ValueError(f"{part!r}: a share between 0 and 100 %")
                found["top_share"] = share
            elif m := re.fullmatch(r"top:(\d+)", part):
                found["top"] = int(m.group(1))
            else:
                raise ValueError(f"{part!r} is not mql, top:K, top:P% or all")
        return cls(**found)  # type: ignore[arg-type]

    def __str__(self) -> str:
        """As `parse` reads it (e.g. "mql,top:5%")."""
        if self.all:
            return "all"
        parts = ["mql"] if self.mql else []
        parts += [f"top:{self.top}"] if self.top else []
        parts += [f"top:{self.top_share * 100:g}%"] if self.top_share else []
        return ",".join(parts)

    def best(self, n: int) -> int:
        """How many of n rows the top rules (`top:K`, `top:P%`) choose by probability."""
        k = max(self.top, int(np.ceil(self.top_share * n)) if self.top_share else 0)
        return min(k, n)

    def rows(self, probability: np.ndarray, mql: np.ndarray | None) -> np.ndarray:
        """The positions of the rows that get reasons, ascending."""
        n = len(probability)
        if self.all:
            return np.arange(n)
        chosen = np.zeros(n, dtype=bool)
        if self.mql and mql is not None:
            chosen |= np.asarray(mql, dtype=bool)
        k = self.best(n)
        if k:
            chosen[np.argsort(-probability, kind="stable")[:k]] = True
        return np.flatnonzero(chosen)


@dataclass(frozen=True)
class ReasonsCost:
    rows: int
    seconds: float

    @property
    def us_per_row(self) -> float:
        return self.seconds / self.rows * 1e6 if self.rows else 0.0


def model_table(
    crm: CRM,
    scorer: LeadScorer,
    config: RulesConfig,
    as_of: pd.Timestamp,
    reasons: int = 3,
    reasons_for: ReasonsFor | None = None,
) -> pd.DataFrame:
    """The points table plus the model's probability and, unless ``reasons`` is 0, the
    labels of its top positive reasons for the rows of ``reasons_for`` (default: the MQLs
    and the best 5 %; TreeSHAP is the costliest part of a batch). What they cost is in
    ``table.attrs["reasons"]`` (a `ReasonsCost`)."""
    table, x = model_rows(crm, scorer, config, as_of)
    if reasons > 0:
        chosen = (reasons_for or ReasonsFor.parse(DEFAULT_REASONS_FOR)).rows(
            table["probability"].to_numpy(), table["mql"].to_numpy()
        )
        add_reasons(table, scorer, x, chosen, reasons)
    return table


def model_rows(
    crm: CRM, scorer: LeadScorer, config: RulesConfig, as_of: pd.Timestamp
) -> tuple[pd.DataFrame, np.ndarray]:
    """The points table with the model's probability, and the rows' model inputs (for
    reasons chosen afterwards: over a whole partitioned export, say)."""
    store = EventStore.from_crm(crm)
    table, _, contacts = rules_table(crm, config, as_of, store=store)
    block = compute_features(store, contacts, np.full(len(contacts), to_epoch(as_of)))
    x = scorer.matrix(block)
    # (full precision: the live store's scores are compared with these to 1e-9)
    table.insert(2, "probability", scorer.predict(x))
    return table, x


def add_reasons(
    table: pd.DataFrame, scorer: LeadScorer, x: np.ndarray, rows: np.ndarray, k: int
) -> None:
    """The `top_reasons` column (empty but for ``rows``) and its cost in ``attrs``."""
    texts, cost = reasons_of_rows(scorer, x, rows, k)
    table.insert(3, "top_reasons", texts)
    table.attrs["reasons"] = cost


def reasons_of_rows(
    scorer: LeadScorer, x: np.ndarray, rows: np.ndarray, k: int
) -> tuple[np.ndarray, ReasonsCost]:
    """The reasons text of `rows` (every other row: empty), and what they cost."""
    clock = time.perf_counter()
    texts = np.full(len(x), "", dtype=object)
    if len(rows):
        texts[rows] = top_reasons(scorer, x[rows], k)
    return texts, ReasonsCost(len(rows), time.perf_counter() - clock)


def top_reasons(scorer: LeadScorer, x: np.ndarray, k: int) -> list[str]:
    """Per row of ``x``, the labels of its ``k`` largest positive TreeSHAP contributions."""
    contributions = scorer.contributions(x)[:, :-1]
    names = [label(f) for f in scorer.feature_names]
    top = np.argsort(-contributions, axis=1)[:, :k]
    return [
        "; ".join(names[j] for j in row if contributions[i, j] > 0) for i, row in enumerate(top)
    ]


def table_scores(
    raw: pd.DataFrame,
    scorer: LeadScorer,
    reasons: int = 3,
    reasons_for: ReasonsFor | None = None,
) -> pd.DataFrame:
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
    probability = scorer.predict(x)
    table["probability"] = probability.round(6)
    if scorer.table_rules is not None:
        points = score_table_rules(scorer.table_rules, inputs)
        table["points"] = points.total.round(2)
        table["mql"] = points.mql
        table["top_rules"] = [points.top_rules(i) for i in range(len(raw))]
    if reasons > 0:  # (a table's columns have no registry label: `label` gives the name)
        mql = table["mql"].to_numpy() if "mql" in table else None
        chosen = (reasons_for or ReasonsFor.parse(DEFAULT_REASONS_FOR)).rows(probability, mql)
        table["top_reasons"], cost = reasons_of_rows(scorer, x, chosen, reasons)
        table.attrs["reasons"] = cost
    return table.reset_index(drop=True)
