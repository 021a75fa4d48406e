"""Score leads: request bodies in, probabilities, points and reasons out.

The same functions as training: the request becomes `LeadContext`s, the `EventStore`
door for leads turns them into arrays, the kernel computes the features, the model's
scorer encodes and predicts, and the points engine scores the same store. Many leads
of a batch share one store (each with its own copy of its account), so a batch costs
one kernel pass per distinct as_of.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Sequence

import numpy as np

from features.model.scorer import LeadScorer
from features.pipeline.kernel import compute_features
from features.pipeline.lead import LeadContext
from features.pipeline.registry import label
from features.pipeline.store import EventStore, lead_rows, to_seconds
from features.points.engine import score_rules
from features.points.matrix import RulesConfig, load_rules
from features.points.table_sheet import score_table_rules
from features.table.cells import input_columns
from serving.schemas import (
    AccountRollup,
    ModelRef,
    Reason,
    RuleLine,
    RulesResult,
    ScoreRequest,
    ScoreResponse,
)
from serving.state import LoadedModel


def _context(request: ScoreRequest) -> LeadContext:
    # One model_dump of the whole request: one call into pydantic-core instead of one
    # per touchpoint.
    d = request.model_dump()
    return LeadContext(
        contact=d["contact"],
        account=d["account"],
        touchpoints=d["touchpoints"],
        committee=[(m["contact"], m["touchpoints"]) for m in d["committee"]],
        opportunities=d["opportunities"],
    )


class InputError(ValueError):
    """Leads the model cannot score: (lead index, field path, message) per problem."""

    def __init__(self, problems: Sequence[tuple[int, tuple[str, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(path)}: {msg}" for _, path, msg in problems))
        self.problems = list(problems)


def score_requests(
    requests: Sequence[ScoreRequest],
    model: LoadedModel,
    reasons: int,
    now: dt.datetime | None = None,
) -> list[ScoreResponse]:
    """Score leads with one model; `now` (UTC) is the default as_of.

    Raises InputError for leads that do not fit the model's kind (a touchpoint model
    needs `contact`, a table model `attributes` with numbers where it expects them).
    """
    now = now or dt.datetime.now(dt.UTC)
    if model.scorer.kind == "table":
        return _score_table(requests, model, reasons, now)
    missing = [
        (k, ("contact",), "required: this model scores a contact and its touchpoints")
        for k, r in enumerate(requests)
        if r.contact is None
    ]
    if missing:
        raise InputError(missing)
    leads = [_context(r) for r in requests]
    as_of_dt = [r.as_of or now for r in requests]
    store = EventStore.from_leads(leads)
    rows = lead_rows(leads)
    sizes = [1 + len(lead.committee) for lead in leads]
    # Every contact of the store (each lead and its committee) at its lead's as_of.
    contacts = np.arange(store.n_contacts)
    as_of = np.repeat([to_seconds(t) for t in as_of_dt], sizes)
    scorer = model.scorer
    block = compute_features(store, contacts, as_of)
    x = scorer.matrix(block)
    probability = scorer.predict(x)
    x_leads = x[rows]
    contributions = scorer.contributions(x_leads)[:, :-1] if reasons else None
    rules: RulesConfig = scorer.rules or load_rules()
    points = score_rules(rules, store, rows, as_of[rows])
    engaged = block.column("account_engaged_contacts_90d")[rows]
    ref = ModelRef(name=model.name, version=model.version, alias=model.alias)
    out = []
    for k, request in enumerate(requests):
        start = rows[k]
        lead_reasons = (
            _reasons(scorer, x_leads[k], contributions[k], reasons)
            if contributions is not None
            else []
        )
        account = None
        if request.account is not None:
            account = AccountRollup(
                account_id=request.account.account_id,
                engaged_contacts_90d=int(0 if np.isnan(engaged[k]) else engaged[k]),
                max_probability=float(probability[start : start + sizes[k]].max()),
            )
        out.append(
            ScoreResponse(
                contact_id=request.contact.contact_id if request.contact else None,
                as_of=as_of_dt[k],
                probability=float(probability[start]),
                model=ref,
                rules=RulesResult(
                    points=round(float(points.total[k]), 2),
                    fit_points=round(float(points.fit[k]), 2),
                    engagement_points=round(float(points.engagement[k]), 2),
                    mql=bool(points.mql[k]),
                    threshold=rules.mql_threshold,
                    grade=str(points.grade[k]),
                    breakdown=[RuleLine(**line) for line in points.breakdown(k)],
                ),
                reasons=lead_reasons,
                account=account,
            )
        )
    return out


def _score_table(
    requests: Sequence[ScoreRequest], model: LoadedModel, reasons: int, now: dt.datetime
) -> list[ScoreResponse]:
    """Leads of a model trained on a lead table: each request's `attributes` is its row."""
    scorer = model.scorer
    spec = scorer.table_spec
    problems: list[tuple[int, tuple[str, ...], str]] = [
        (k, ("attributes",), "required: this model scores a lead table's row (attributes)")
        for k, r in enumerate(requests)
        if r.attributes is None
    ]
    if problems:
        raise InputError(problems)
    rows = [r.attributes or {} for r in requests]
    known = {*spec.columns, *spec.dropped}  # every column of the training table
    for k, row in enumerate(rows):
        for name in row.keys() - known:  # a typo would silently become a missing value
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append((k, ("attributes", name), f"not a column of the model's table{hint}"))
    if problems:
        raise InputError(problems)
    inputs, bad = input_columns({c: [row.get(c) for row in rows] for c in spec.columns}, spec)
    for name, positions in bad.items():
        problems += [
            (k, ("attributes", name), f"expected a number, got {rows[k].get(name)!r}")
            for k in positions
        ]
    if problems:
        raise InputError(problems)
    x = scorer.matrix_from_columns(inputs)
    probability = scorer.predict(x)
    contributions = scorer.contributions(x)[:, :-1] if reasons else None
    points = score_table_rules(scorer.table_rules, inputs) if scorer.table_rules else None
    ref = ModelRef(name=model.name, version=model.version, alias=model.alias)
    out = []
    for k, request in enumerate(requests):
        lead_id = rows[k].get(spec.id_column) if spec.id_column else None
        if lead_id is None and request.contact is not None:
            lead_id = request.contact.contact_id
        rules = None
        if points is not None and scorer.table_rules is not None:
            fit, engagement = points.subtotal("fit"), points.subtotal("engagement")
            rules = RulesResult(
                points=round(float(points.total[k]), 2),
                fit_points=None if fit is None else round(float(fit[k]), 2),
                engagement_points=None if engagement is None else round(float(engagement[k]), 2),
                mql=bool(points.mql[k]),
                threshold=scorer.table_rules.mql_threshold,
                grade=None,
                breakdown=[RuleLine(**line) for line in points.breakdown(k)],
            )
        out.append(
            ScoreResponse(
                contact_id=None if lead_id is None else str(lead_id),
                as_of=request.as_of or now,
                probability=float(probability[k]),
                model=ref,
                rules=rules,
                reasons=_reasons(scorer, x[k], contributions[k], reasons)
                if contributions is not None
                else [],
                account=None,
            )
        )
    return out


def _reasons(
    scorer: LeadScorer, values: np.ndarray, contributions: np.ndarray, k: int
) -> list[Reason]:
    """The k largest contributions by size, positive and negative, with readable values."""
    names = scorer.feature_names
    categorical = set(scorer.categorical)
    out = []
    for j in np.argsort(-np.abs(contributions))[:k]:
        if contributions[j] == 0:
            continue
        value: float | str | None = None if np.isnan(values[j]) else float(values[j])
        if names[j] in categorical and value is not None:
            value = scorer.vocabularies[names[j]][int(value)]  # the category, not its code
        out.append(
            Reason(
                feature=names[j],
                label=label(names[j]),
                value=value,
                contribution=round(float(contributions[j]), 4),
            )
        )
    return out
