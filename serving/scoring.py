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
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydantic_core

from features.model.scorer import LeadScorer
from features.pipeline.kernel import compute_features
from features.pipeline.lead import LeadContext, lead_problems
from features.pipeline.registry import label
from features.pipeline.snapshots import eligibility
from features.pipeline.store import EventStore, lead_rows, to_seconds
from features.points.engine import score_rules
from features.points.matrix import RulesConfig, load_rules
from features.points.table_sheet import score_table_rules
from features.table.cells import input_columns
from serving.schemas import (
    ModelRef,
    Reason,
    RuleLine,
    RulesResult,
    ScoreRequest,
    ScoreResponse,
)
from serving.state import LoadedModel


def _context(request: ScoreRequest) -> LeadContext:
    """The request as the lead door reads it, without a copy: each validated part's
    fields (`vars`) are the mapping (the door reads them and writes nothing into them).
    `model_dump` rebuilt every touchpoint as a new dict first: 0.245 ms against 0.071 ms
    now (`benchmarks/bench_lead_stages.py`), in a lead's 2.6-2.9 ms without reasons."""
    assert request.contact is not None  # (a touchpoint model refuses a lead without one)
    return LeadContext(
        contact=vars(request.contact),
        account=None if request.account is None else vars(request.account),
        touchpoints=[vars(t) for t in request.touchpoints],
        committee=[(vars(m.contact), [vars(t) for t in m.touchpoints]) for m in request.committee],
        opportunities=[vars(o) for o in request.opportunities],
    )


Problem = tuple[tuple[str | int, ...], str]  # (field path within the lead, message)


@dataclass(frozen=True)
class Refused:
    """A lead that cannot be scored: what is wrong with it, field by field."""

    problems: list[Problem]


def score_requests(
    requests: Sequence[ScoreRequest],
    model: LoadedModel,
    reasons: int,
    now: dt.datetime | None = None,
) -> list[ScoreResponse | Refused]:
    """Score leads with one model, each on its own merits; `now` (UTC) is the default as_of.

    A lead that breaks the data contract (a deal that closes before it opened, a contact
    created after as_of...), or that does not fit the model's kind (a touchpoint model
    needs `contact`, a table model `attributes` with numbers where it expects them), is
    `Refused` with its problems; the others are scored together.
    """
    now = now or dt.datetime.now(dt.UTC)
    if model.scorer.kind == "table":
        return _score_table(requests, model, reasons, now)
    out: list[ScoreResponse | Refused] = []
    good: list[int] = []
    leads: list[LeadContext] = []
    for k, request in enumerate(requests):
        if request.contact is None:
            out.append(Refused([(("contact",), _NEEDS_CONTACT)]))
            continue
        lead = _context(request)
        problems = lead_problems(lead, request.as_of or now)
        out.append(Refused(problems) if problems else _PENDING)
        if not problems:
            good.append(k)
            leads.append(lead)
    if leads:
        scored = _score_leads([requests[k] for k in good], leads, model, reasons, now)
        for k, result in zip(good, scored, strict=True):
            out[k] = result
    return out


_NEEDS_CONTACT = "required: this model scores a contact and its touchpoints"
_PENDING = Refused([])  # a placeholder, replaced by the lead's score below


def _score_leads(
    requests: Sequence[ScoreRequest],
    leads: list[LeadContext],
    model: LoadedModel,
    reasons: int,
    now: dt.datetime,
) -> list[ScoreResponse]:
    """Valid touchpoint leads, scored in one store: one kernel pass per distinct as_of."""
    as_of_dt = [r.as_of or now for r in requests]
    store = EventStore.from_leads(leads)
    rows = lead_rows(leads)
    sizes = [1 + len(lead.committee) for lead in leads]
    # Every contact of the store (each lead and its committee) at its lead's as_of.
    as_of = np.repeat([to_seconds(t) for t in as_of_dt], sizes)
    seen = _ModelPass(store, as_of, model)
    rollups: list[tuple[str, float] | None] = []
    for k, request in enumerate(requests):
        start = rows[k]
        rollups.append(
            None
            if request.account is None
            else (
                request.account.account_id,
                float(seen.probability[start : start + sizes[k]].max()),
            )
        )
    return [
        ScoreResponse.model_validate(answer)
        for answer in seen.answers(rows, as_of_dt, rollups, reasons)
    ]


@dataclass(frozen=True)
class ContactScore:
    """One contact's score in the live store, with what the lists filter on.

    `answer` is the `ScoreResponse` as plain values (the ledger keeps thousands a run;
    building each as a model cost more than scoring it)."""

    answer: dict[str, Any]
    account_id: str | None
    lead_source: str | None
    open_deal: bool  # its account (or itself) has a deal open: with sales already
    features: np.ndarray  # the model's input row (what its reasons are computed from)

    @property
    def contact_id(self) -> str:
        return str(self.answer["contact_id"])

    @property
    def probability(self) -> float:
        return float(self.answer["probability"])

    @property
    def rules(self) -> dict[str, Any]:
        rules: dict[str, Any] = self.answer["rules"]
        return rules

    def json(self) -> bytes:
        return pydantic_core.to_json(self.answer)


def score_accounts(
    accounts: Sequence[LeadContext], model: LoadedModel, reasons: int, as_of: dt.datetime
) -> list[ContactScore]:
    """Every contact of each account (a `LeadContext` whose committee is the rest of the
    account), at one as_of, with the code `/v1/score` runs: how the live store rescores
    after an event. A contact is scored from when it exists (created_at <= as_of).
    With `reasons` 0 the answers carry none; `explain` makes them from `features` later."""
    if not accounts:
        return []
    return score_store(EventStore.from_leads(accounts), model, reasons, as_of)


def score_store(
    store: EventStore,
    model: LoadedModel,
    reasons: int,
    as_of: dt.datetime,
    only: np.ndarray | None = None,
) -> list[ContactScore]:
    """The contacts of a store (those in `only`, or all) that exist at as_of, scored at
    as_of; the account roll-up covers every existing contact of the account. Both doors'
    stores work: the live store's units (`from_leads`) and a whole export (`from_crm`)."""
    moment = to_seconds(as_of)
    masks = eligibility(store, moment, active_days=None)
    exists = masks["created"]
    present = np.flatnonzero(exists)
    seen = _ModelPass(store, np.full(store.n_contacts, moment, dtype=np.int64), model, present)
    targets = present if only is None else np.asarray(only, dtype=np.int64)[exists[only]]
    # the best probability among each account's existing contacts
    best = np.full(store.n_accounts, -np.inf)
    np.maximum.at(best, store.contact_account[present], seen.probability[present])
    account_of = store.contact_account[targets]
    ids = store.account_ids[account_of]  # None for a personal account
    rollups: list[tuple[str, float] | None] = [
        None if a is None else (str(a), float(best[i]))
        for a, i in zip(ids, account_of, strict=True)
    ]
    answers = seen.answers(targets, [as_of] * len(targets), rollups, reasons)
    return [
        ContactScore(
            answer=answer,
            account_id=None if rollup is None else rollup[0],
            lead_source=store.contact_lead_source[row],
            open_deal=bool(masks["blocked"][row]),
            features=seen.row(row),
        )
        for answer, rollup, row in zip(answers, rollups, targets, strict=True)
    ]


class _ModelPass:
    """The model's view of the contacts of a store (all, or `contacts`): features and
    probability, from which the answers of some of them are made."""

    def __init__(
        self,
        store: EventStore,
        as_of: np.ndarray,
        model: LoadedModel,
        contacts: np.ndarray | None = None,
    ) -> None:
        self.store, self.as_of, self.model = store, as_of, model
        contacts = np.arange(store.n_contacts) if contacts is None else contacts
        self.position = np.full(store.n_contacts, -1, dtype=np.int64)
        self.position[contacts] = np.arange(len(contacts))
        self.block = compute_features(store, contacts, as_of[contacts])
        self.x = model.scorer.matrix(self.block)
        self.probability = np.full(store.n_contacts, np.nan)
        self.probability[contacts] = model.scorer.predict(self.x)

    def row(self, contact: int) -> np.ndarray:
        return self.x[self.position[contact]]

    def answers(
        self,
        rows: np.ndarray,
        as_of: Sequence[dt.datetime],
        rollups: Sequence[tuple[str, float] | None],
        reasons: int,
    ) -> list[dict[str, Any]]:
        """The answers of contacts `rows` in `ScoreResponse`'s shape, as plain values:
        points, probability, reasons, account roll-up (account id and the best
        probability of its committee) where there is one. `/v1/score` validates them
        into its response model; the live store writes them as they are."""
        scorer, store = self.model.scorer, self.store
        at = self.position[rows]
        x_rows = self.x[at]
        contributions = scorer.contributions(x_rows)[:, :-1] if reasons and len(rows) else None
        rules: RulesConfig = scorer.rules or load_rules()
        points = score_rules(rules, store, rows, self.as_of[rows])
        engaged = self.block.column("account_engaged_contacts_90d")[at]
        model = self.model
        ref = {"name": model.name, "version": model.version, "alias": model.alias}
        total, fit = points.total.tolist(), points.fit.tolist()
        engagement, mql = points.engagement.tolist(), points.mql.tolist()
        probability = self.probability[rows].tolist()
        out = []
        for k, row in enumerate(rows.tolist()):
            rollup = rollups[k]
            out.append(
                {
                    "contact_id": store.contact_ids[row],
                    "as_of": as_of[k],
                    "probability": probability[k],
                    "model": ref,
                    "rules": {
                        "points": total[k],
                        "fit_points": fit[k],
                        "engagement_points": engagement[k],
                        "mql": bool(mql[k]),
                        "threshold": rules.mql_threshold,
                        "grade": str(points.grade[k]),
                        "breakdown": points.breakdown(k),
                    },
                    "reasons": []
                    if contributions is None
                    else [
                        r.model_dump()
                        for r in _reasons(scorer, x_rows[k], contributions[k], reasons)
                    ],
                    "account": None
                    if rollup is None
                    else {
                        "account_id": rollup[0],
                        "engaged_contacts_90d": int(0 if np.isnan(engaged[k]) else engaged[k]),
                        "max_probability": rollup[1],
                    },
                }
            )
        return out


def explain(scorer: LeadScorer, x: np.ndarray, k: int) -> list[list[Reason]]:
    """The k largest contributions of each row of model inputs (as in every answer)."""
    if len(x) == 0 or k == 0:
        return [[] for _ in range(len(x))]
    contributions = scorer.contributions(x)[:, :-1]
    return [_reasons(scorer, x[i], contributions[i], k) for i in range(len(x))]


def _score_table(
    requests: Sequence[ScoreRequest], model: LoadedModel, reasons: int, now: dt.datetime
) -> list[ScoreResponse | Refused]:
    """Leads of a model trained on a lead table: each request's `attributes` is its row."""
    scorer = model.scorer
    spec = scorer.table_spec
    known = {*spec.columns, *spec.dropped}  # every column of the training table
    problems: list[list[Problem]] = []
    for request in requests:
        mine: list[Problem] = []
        if request.attributes is None:
            mine.append((("attributes",), _NEEDS_ATTRIBUTES))
        else:
            for name in sorted(request.attributes.keys() - known):  # a typo must not vanish
                close = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                mine.append((("attributes", name), f"not a column of the model's table{hint}"))
        problems.append(mine)
    good = [k for k, mine in enumerate(problems) if not mine]
    rows = [requests[k].attributes or {} for k in good]
    inputs, bad = input_columns({c: [row.get(c) for row in rows] for c in spec.columns}, spec)
    for name, positions in bad.items():
        for i in positions:
            problems[good[i]].append((("attributes", name), "expected a number"))
    out: list[ScoreResponse | Refused] = [Refused(mine) if mine else _PENDING for mine in problems]
    keep = [i for i, k in enumerate(good) if not problems[k]]
    if not keep:
        return out
    inputs = {name: values[keep] for name, values in inputs.items()}
    x = scorer.matrix_from_columns(inputs)
    probability = scorer.predict(x)
    contributions = scorer.contributions(x)[:, :-1] if reasons else None
    points = score_table_rules(scorer.table_rules, inputs) if scorer.table_rules else None
    ref = ModelRef(name=model.name, version=model.version, alias=model.alias)
    for j, i in enumerate(keep):
        k = good[i]
        request, row = requests[k], rows[i]
        lead_id = row.get(spec.id_column) if spec.id_column else None
        if lead_id is None and request.contact is not None:
            lead_id = request.contact.contact_id
        rules = None
        if points is not None and scorer.table_rules is not None:
            fit, engagement = points.subtotal("fit"), points.subtotal("engagement")
            rules = RulesResult(
                points=round(float(points.total[j]), 2),
                fit_points=None if fit is None else round(float(fit[j]), 2),
                engagement_points=None if engagement is None else round(float(engagement[j]), 2),
                mql=bool(points.mql[j]),
                threshold=scorer.table_rules.mql_threshold,
                grade=None,
                breakdown=[RuleLine(**line) for line in points.breakdown(j)],
            )
        out[k] = ScoreResponse(
            contact_id=None if lead_id is None else str(lead_id),
            as_of=request.as_of or now,
            probability=float(probability[j]),
            model=ref,
            rules=rules,
            reasons=_reasons(scorer, x[j], contributions[j], reasons)
            if contributions is not None
            else [],
            account=None,
        )
    return out


_NEEDS_ATTRIBUTES = "required: this model scores a lead table's row (attributes)"


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
