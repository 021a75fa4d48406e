"""Data-driven point values: what the CRM's own outcomes say each rule is worth.

A points matrix is folklore until it is checked against outcomes. This fits a simple,
interpretable model on the training snapshots: an L2-regularised logistic regression
whose inputs are exactly the matrix's own rules (for an engagement rule, its decayed
count of matching touchpoints; for a fit rule, 0/1). Its coefficients are log-odds per
unit, so they become points per action once scaled. The scale is searched with the
points engine itself (rule and group caps included) so that the MQL threshold keeps its
meaning: the suggested matrix flags the same share of snapshots as MQL as the current
one does, so sales gets the same number of leads, better chosen. A rule keeps the sign a
marketer gave it (intent adds, unsubscribes take away) unless `free_signs` is asked for,
and every suggestion says why its value moved.

Next to the points comes the attribute-insights table: for every rule, touchpoint type
and attribute value, how often it occurs, the conversion rate when it does, and the
lift over the base rate. Marketing can then adjust the matrix from evidence.

With too few conversions the coefficients are noise, so it refuses: at least
`min_conversions` (default: 5 per rule, and never fewer than 100).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from features.crm.fit import EMPLOYEE_BAND_LABELS, employees_band
from features.crm.load import CRM
from features.crm.taxonomy import DEPARTMENTS, SENIORITY_LEVELS, TOUCHPOINT_TYPES
from features.pipeline.kernel import DAY
from features.pipeline.snapshots import SnapshotConfig, snapshot_pairs
from features.pipeline.store import EventStore
from features.points.engine import RuleScores, revalue, score_rules
from features.points.matrix import Rule, RulesConfig

logger = logging.getLogger(__name__)


class NotEnoughConversions(ValueError):
    """Too few conversions to learn point values from."""


@dataclass
class Suggestion:
    config: RulesConfig  # the current matrix with suggested points
    rules: pd.DataFrame  # per rule: current and suggested points, coefficient, insight
    insights: pd.DataFrame  # per touchpoint type and attribute value
    snapshots: int
    conversions: int
    base_rate: float
    mql_share: float  # of snapshots flagged MQL by the current matrix
    suggested_mql_share: float  # ... and by the suggested one (the scale is chosen to match)


def _insight(fired: np.ndarray, converted: np.ndarray, base_rate: float) -> dict[str, float]:
    n = int(fired.sum())
    rate = float(converted[fired].mean()) if n else float("nan")
    return {
        "snapshots": n,
        "share": n / len(fired),
        "conversion_rate": rate,
        "lift": rate / base_rate if n and base_rate > 0 else float("nan"),
    }


def suggest_points(
    crm: CRM,
    config: RulesConfig,
    cfg: SnapshotConfig | None = None,
    min_conversions: int | None = None,
    store: EventStore | None = None,
    free_signs: bool = False,
) -> Suggestion:
    """Suggest point values for the rules of ``config`` from the export's outcomes.

    Signs: a rule that adds points (a demo request, an executive buyer) keeps adding, a
    rule that takes points away keeps taking: a marketer who sees "contact sales: -2"
    stops trusting the whole sheet, and such a coefficient is usually a correlated
    rule taking the credit. ``free_signs`` lets the data decide. The scale is searched
    with the points engine itself (caps included) so that the suggested matrix flags
    the same share of snapshots as MQL as the current one.
    """
    store = store or EventStore.from_crm(crm)
    pairs = snapshot_pairs(crm, cfg or SnapshotConfig(), store)
    y = pairs.converted.astype(int)
    rules = config.engagement_rules + config.fit_rules
    needed = min_conversions if min_conversions is not None else max(100, 5 * len(rules))
    if y.sum() < needed:
        raise NotEnoughConversions(
            f"only {int(y.sum())} conversions in {len(y):,} training snapshots; at least {needed} "
            f"are needed to suggest points for {len(rules)} rules (5 per rule, never fewer than "
            "100). Use more history, a longer --horizon-days, or fewer rules."
        )
    scores = score_rules(config, store, pairs.contacts, pairs.as_of)
    x = scores.count * scores.decay  # decayed count (engagement) or 0/1 (fit)
    signs = np.zeros(len(rules)) if free_signs else np.sign([r.points for r in rules])
    coef, free_coef = _signed_logistic(x, y, signs), _signed_logistic(x, y, np.zeros(len(rules)))
    base_rate = float(y.mean())
    mql_share = float(scores.mql.mean())
    suggested, achieved = _scale_to_share(config, rules, coef, scores, mql_share)
    new_rules = [
        r.model_copy(update={"points": float(p)}) for r, p in zip(rules, suggested, strict=True)
    ]
    order = {r.name: i for i, r in enumerate(config.rules)}
    ordered = sorted(new_rules, key=lambda r: order[r.name])
    new_config = config.model_copy(update={"rules": ordered})
    rows = []
    for j, (r, p, c) in enumerate(zip(rules, suggested, coef, strict=True)):
        insight = _insight(x[:, j] > 0, y, base_rate)
        held = signs[j] != 0 and np.sign(free_coef[j]) == -signs[j] and free_coef[j] != 0
        rows.append(
            {
                "rule": r.name,
                "group": r.group,
                "current_points": r.points,
                "suggested_points": float(p),
                "log_odds_per_unit": float(c),
                **insight,
                "held": bool(held),
                "why": _why(r.points, float(p), insight, held),
            }
        )
    insights = attribute_insights(store, pairs.contacts, pairs.as_of, y, base_rate)
    logger.info("suggested points from %d conversions in %d snapshots", y.sum(), len(y))
    return Suggestion(
        new_config, pd.DataFrame(rows), insights, len(y), int(y.sum()), base_rate, mql_share,
        achieved,
    )  # fmt: skip


def _signed_logistic(
    x: np.ndarray, y: np.ndarray, signs: np.ndarray, l2: float = 1.0
) -> np.ndarray:
    """L2-regularised logistic regression whose coefficient j keeps the sign of signs[j]
    (0: free). Coefficients only; the intercept is free and not returned."""
    k = x.shape[1]
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    xs = x / scale  # standardised: one penalty means the same for every rule

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = xs @ w[:k] + w[k]
        p = 1.0 / (1.0 + np.exp(-z))
        value = float(np.sum(np.logaddexp(0.0, z) - y * z)) + 0.5 * l2 * float(w[:k] @ w[:k])
        residual = p - y
        grad = np.concatenate([xs.T @ residual + l2 * w[:k], [residual.sum()]])
        return value, grad

    bounds = [(0.0, None) if s > 0 else (None, 0.0) if s < 0 else (None, None) for s in signs] + [
        (None, None)
    ]
    start = np.zeros(k + 1)
    start[k] = np.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6))
    fit = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return np.asarray(fit.x[:k] / scale)


def _scale_to_share(
    config: RulesConfig,
    rules: list[Rule],
    coef: np.ndarray,
    found: RuleScores,
    share: float,
) -> tuple[np.ndarray, float]:
    """Points = coefficients x a scale, in half points, with the scale searched (on a log
    grid, then by bisection) so that the engine, caps and all, flags ``share`` of the
    snapshots as MQL. Returns (points, the share they flag). Each trial re-scores what
    the rules matched (``found``) with its values: the same totals as scoring the events
    again (tests/features/test_rules.py), without reading them ~40 times."""
    weight = found.count * found.decay

    def flagged(scale: float) -> tuple[np.ndarray, float]:
        points = np.round(coef * scale * 2) / 2  # half points: precise enough to argue about
        trial = _with_points(config, rules, points)
        return points, float(revalue(trial, found.count, weight).mql.mean())

    target = share if share > 0 else 0.01
    low, high = 1e-3, 1e-3
    points, got = flagged(high)
    while got < target and high < 1e7:  # grow until the share is reached (or cannot be)
        low, high = high, high * 4
        points, got = flagged(high)
    best = (abs(got - target), points, got)
    for _ in range(30):
        middle = float(np.sqrt(low * high))
        points, got = flagged(middle)
        best = min(best, (abs(got - target), points, got), key=lambda b: b[0])
        if got < target:
            low = middle
        else:
            high = middle
        if high / low < 1.001:
            break
    return best[1], best[2]


def _with_points(config: RulesConfig, rules: list[Rule], points: np.ndarray) -> RulesConfig:
    by_name = {r.name: float(p) for r, p in zip(rules, points, strict=True)}
    updated = [r.model_copy(update={"points": by_name[r.name]}) for r in config.rules]
    return config.model_copy(update={"rules": updated})


def _why(current: float, suggested: float, insight: dict[str, float], held: bool) -> str:
    """Why a value moved, in a sentence a marketer can check against the lift column."""
    n, lift = int(insight["snapshots"]), insight["lift"]
    evidence = f"leads with it convert {lift:.1f}x the base rate (n={n:,})" if n else "never fires"
    if n < 30:
        return f"{evidence}: too rare to say much; kept near what the data allows"
    if held:
        direction = "adds" if current > 0 else "takes away"
        return (
            f"{evidence}; the data alone would reverse its sign, but it {direction} points by "
            f"design, so it is held at {suggested:g} (--free-signs lets the data decide)"
        )
    if suggested == current:
        return f"{evidence}: its points fit the outcomes"
    if current < 0:
        more = "more" if suggested < current else "less"
        return f"{evidence}: should take away {more} than its {-current:g} points"
    more = "more" if suggested > current else "less"
    return f"{evidence}: worth {more} than its {current:g} points"


def attribute_insights(
    store: EventStore, contacts: np.ndarray, as_of: np.ndarray, y: np.ndarray, base_rate: float
) -> pd.DataFrame:
    """Conversion rate and lift per touchpoint type (seen in the 90 days before as_of)
    and per attribute value of the contact and its account."""
    rows = []
    n_types = len(TOUCHPOINT_TYPES)
    seen = np.zeros((len(contacts), n_types), dtype=bool)
    for date in np.unique(as_of):
        idx = np.flatnonzero(as_of == date)
        lo = int(np.searchsorted(store.ev_time, date - 90 * DAY, side="right"))
        hi = int(np.searchsorted(store.ev_time, date, side="right"))
        table = np.zeros(store.n_contacts * n_types, dtype=bool)
        table[store.ev_contact[lo:hi] * n_types + store.ev_type[lo:hi]] = True
        seen[idx] = table.reshape(store.n_contacts, n_types)[contacts[idx]]
    for k, type_ in enumerate(TOUCHPOINT_TYPES):
        fired = seen[:, k]
        rows.append(
            {"attribute": "touchpoint (90 days)", "value": type_, **_insight(fired, y, base_rate)}
        )
    for name, values in _attributes(store, contacts).items():
        for value in pd.unique(values[pd.notna(values)]):
            fired = values == value
            rows.append({"attribute": name, "value": str(value), **_insight(fired, y, base_rate)})
    frame = pd.DataFrame(rows)
    return frame[frame["snapshots"] > 0].reset_index(drop=True)


def _attributes(store: EventStore, contacts: np.ndarray) -> dict[str, np.ndarray]:
    """Attribute values of each snapshot's contact and account, as text (None: unknown)."""

    def of_account(values: np.ndarray, empty: object = None) -> np.ndarray:
        return store.per_contact(values, empty)[contacts]

    employees = of_account(store.account_employees, np.nan)
    band = employees_band(employees)
    size = np.full(len(contacts), None, dtype=object)
    known = ~np.isnan(band)
    size[known] = np.array(EMPLOYEE_BAND_LABELS, dtype=object)[band[known].astype(int)]
    free = store.contact_free_mail[contacts]
    free_text = np.full(len(contacts), None, dtype=object)
    free_text[free == 1] = "yes"
    free_text[free == 0] = "no"
    return {
        "industry": of_account(store.account_industry),
        "country": of_account(store.account_country),
        "company size": size,
        "seniority": np.array(SENIORITY_LEVELS, dtype=object)[store.contact_seniority[contacts]],
        "department": np.array(DEPARTMENTS, dtype=object)[store.contact_department[contacts]],
        "lead_source": store.contact_lead_source[contacts],
        "free mail": free_text,
    }


def suggestion_yaml(suggestion: Suggestion) -> str:
    """The suggested matrix as YAML, with a header saying what it was learned from."""
    from features.points.matrix import rules_yaml

    header = [
        "# Points suggested by `leadscore rules suggest` from the CRM's own outcomes:",
        f"# {suggestion.conversions:,} conversions in {suggestion.snapshots:,} training snapshots "
        f"(base rate {suggestion.base_rate:.2%}).",
        f"# Scaled so that the MQL threshold flags the same share of snapshots as before: "
        f"{suggestion.mql_share:.2%} now, {suggestion.suggested_mql_share:.2%} with these points.",
        "# Evidence, not truth: correlated rules share credit unevenly. Read the lift table.",
    ]
    return "\n".join(header) + "\n" + rules_yaml(suggestion.config)
