"""The feature kernel: point-in-time features for (contact, as_of) pairs, in NumPy.

One function, `compute_features`, serves both the batch that builds training rows from a
whole CRM and the API that scores one lead: both hand it an `EventStore`. It walks the
distinct as_of values in ascending order; for each it computes every feature for every
contact of the store from the events dated at or before as_of, then gathers the
requested rows. Touchpoints are sorted by time, so "the last N days" is a slice found
by binary search, and per-contact and per-account aggregates are `bincount`s over that
slice. Nothing after as_of is ever read: each slice ends at `searchsorted(time, as_of,
side="right")`.

Cost: O(distinct as_of x (contacts + touchpoints in the longest window)). Training
snapshots share a few dozen as_of dates; the API passes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from features.crm.fit import employees_band, revenue_band
from features.crm.taxonomy import DEPARTMENTS, SENIORITY_LEVELS, STAGES, TOUCHPOINT_TYPES
from features.pipeline import registry as R
from features.pipeline.store import (
    DEPARTMENT_CODE,
    NO_TIME,
    OPP_LOST,
    OPP_WON,
    SENIORITY_CODE,
    STAGE_CODE,
    STAGE_OF_TYPE_CODE,
    TOPIC_GENERAL,
    TOPIC_PRODUCT,
    TYPE_CODE,
    EventStore,
)

DAY = 86_400
_N_STAGES = len(STAGES)
_N_TYPES = len(TOUCHPOINT_TYPES)
_KEY_TYPE_CODES = np.array([TYPE_CODE[t] for t in R.KEY_TYPES])
#: index among KEY_TYPES of each type code, -1 for types that are not key types
_KEY_OF_TYPE = np.full(_N_TYPES, -1)
_KEY_OF_TYPE[_KEY_TYPE_CODES] = np.arange(len(_KEY_TYPE_CODES))
_DECISION = STAGE_CODE["decision"]
# Membership by code as a lookup table (np.isin costs ~10 µs even on 7 contacts).
_IS_DECISION_MAKER = np.isin(
    np.arange(len(SENIORITY_LEVELS)), [SENIORITY_CODE[s] for s in ("c_level", "vp")]
)
_IS_PROCUREMENT_LEGAL = np.isin(
    np.arange(len(DEPARTMENTS)), [DEPARTMENT_CODE[d] for d in ("procurement", "legal")]
)
#: below this many contacts x features, a date's numeric features are stacked in one
#: NumPy call and then gathered (a single lead); above it, copied column by column
_STACK_LIMIT = 2_000_000
_SENIORITY_NAMES = np.array(SENIORITY_LEVELS, dtype=object)
_DEPARTMENT_NAMES = np.array(DEPARTMENTS, dtype=object)
_TYPE_NAMES = np.array([*TOUCHPOINT_TYPES, None], dtype=object)  # index -1 -> None
_LN2 = np.log(2.0)


def _halvings(seconds: np.ndarray | int) -> np.ndarray:
    """0.5 ** (age / half-life) for ages in seconds."""
    return np.exp(-_LN2 * np.asarray(seconds, dtype=float) / (R.DECAY_HALF_LIFE_DAYS * DAY))


@dataclass
class _Context:
    """What one `compute_features` call derives from the store once, and the state it
    carries from one as_of to the next (dates ascend, so each event is folded in once).
    """

    store: EventStore
    ev_stage: np.ndarray  # journey stage code of each event
    ev_key: np.ndarray  # index among KEY_TYPES of each event, -1 for other types
    first_time: np.ndarray  # each contact's first touch (NO_TIME without one)
    first_type: np.ndarray
    seen: int  # events [0, seen) are folded into the running state below
    last_touch: np.ndarray
    last_decision: np.ndarray
    unsubscribed: np.ndarray
    bounced: np.ndarray
    decayed: np.ndarray  # (contacts, stages): recency-weighted counts as of `decayed_at`
    decayed_at: int | None  # None until the first as_of

    @classmethod
    def of(cls, store: EventStore) -> _Context:
        n = store.n_contacts
        never = np.full(n, -1, dtype=np.int64)
        first_time, first_type = store.first_touch()
        return cls(
            store,
            STAGE_OF_TYPE_CODE[store.ev_type],
            _KEY_OF_TYPE[store.ev_type],
            first_time,
            first_type,
            0,
            never,
            never.copy(),
            np.zeros(n),
            np.zeros(n),
            np.zeros((n, _N_STAGES)),
            None,
        )

    def advance(self, upto: int, as_of: int) -> None:
        """Fold the events [seen, upto), all dated <= as_of, into the running state.

        Decayed counts move forward exactly: what was known at the previous date is
        multiplied by 0.5^(elapsed / half-life), and the new events are added with their
        own weights. Each event is folded in once, whatever the number of dates.
        """
        new = slice(self.seen, upto)
        store = self.store
        contact, time, type_ = store.ev_contact[new], store.ev_time[new], store.ev_type[new]
        if self.decayed_at is not None:  # (no reference yet: nothing to age)
            self.decayed *= _halvings(as_of - self.decayed_at)
        weight = _halvings(as_of - time)
        self.decayed += np.bincount(
            contact * _N_STAGES + self.ev_stage[new],
            weights=weight,
            minlength=store.n_contacts * _N_STAGES,
        ).reshape(store.n_contacts, _N_STAGES)
        self.decayed_at = as_of
        np.maximum.at(self.last_touch, contact, time)
        decision = self.ev_stage[new] == _DECISION
        np.maximum.at(self.last_decision, contact[decision], time[decision])
        self.unsubscribed[contact[type_ == TYPE_CODE["unsubscribe"]]] = 1.0
        self.bounced[contact[type_ == TYPE_CODE["email_bounce"]]] = 1.0
        self.seen = upto


@dataclass
class FeatureBlock:
    """Features of n snapshots: one float32 matrix for the numeric features (column-major,
    registry order, NaN where undefined) and one object array per categorical feature.

    The matrix is what a model eats and what a DataFrame adopts without copying.
    """

    numeric: np.ndarray  # (n, len(NUMERIC)) float32, Fortran order
    categorical: dict[str, np.ndarray]  # name -> object array of str or None

    def column(self, name: str) -> np.ndarray:
        if name in self.categorical:
            return self.categorical[name]
        return self.numeric[:, _NUMERIC_INDEX[name]]

    def as_dict(self) -> dict[str, np.ndarray]:
        """Every feature by name, in registry order."""
        return {name: self.column(name) for name in R.FEATURE_NAMES}


_NUMERIC_INDEX = {name: i for i, name in enumerate(R.NUMERIC)}
_ALL_FEATURES = frozenset(R.FEATURE_NAMES)


def compute_features(
    store: EventStore,
    contacts: np.ndarray,
    as_of: np.ndarray,
    on_date: Callable[[int], None] | None = None,
) -> FeatureBlock:
    """Features for the pairs (contacts[i], as_of[i]).

    ``contacts`` are contact indices of ``store``; ``as_of`` are UTC epoch seconds.
    Numeric features are float32 (LightGBM's input type, and half the memory of
    millions of training rows). ``on_date`` is called after each as_of (progress).
    """
    contacts = np.asarray(contacts, dtype=np.int64)
    as_of = np.asarray(as_of, dtype=np.int64)
    n = len(contacts)
    block = FeatureBlock(
        # Every cell is written below: each as_of fills every feature of its rows.
        numeric=np.empty((n, len(R.NUMERIC)), dtype=np.float32, order="F"),
        categorical={name: np.full(n, None, dtype=object) for name in R.CATEGORICAL},
    )
    if n == 0:
        return block
    ctx = _Context.of(store)
    # Pairs usually arrive grouped by date (the snapshot builder emits them so); then
    # each date's rows are a slice, and gathering them is a plain copy.
    presorted = bool(np.all(as_of[1:] >= as_of[:-1]))
    order = np.arange(n) if presorted else np.argsort(as_of, kind="stable")
    dates, starts = np.unique(as_of[order], return_index=True)
    bounds = [*starts[1:], n]
    for date, lo, hi in zip(dates, starts, bounds, strict=True):
        rows: slice | np.ndarray = slice(lo, hi) if presorted else order[lo:hi]
        _fill(block, rows, contacts[rows], _features_at(ctx, int(date)), store)
        if on_date is not None:
            on_date(int(date))
    return block


def blocks_by_date(
    store: EventStore,
    contacts: np.ndarray,
    as_of: np.ndarray,
    on_date: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, int, FeatureBlock]]:
    """`compute_features` one as_of at a time, for pairs sorted by as_of: (start, stop,
    the block of rows start:stop) per date. One context walks the events forward, as in
    `compute_features` (a call per date would walk them from the start each time)."""
    contacts = np.asarray(contacts, dtype=np.int64)
    as_of = np.asarray(as_of, dtype=np.int64)
    if np.any(as_of[1:] < as_of[:-1]):
        raise ValueError("blocks_by_date needs the pairs sorted by as_of")
    ctx = _Context.of(store)
    dates, starts = np.unique(as_of, return_index=True)
    for date, lo, hi in zip(dates, starts, [*starts[1:], len(as_of)], strict=True):
        block = FeatureBlock(
            numeric=np.empty((hi - lo, len(R.NUMERIC)), dtype=np.float32, order="F"),
            categorical={name: np.full(hi - lo, None, dtype=object) for name in R.CATEGORICAL},
        )
        _fill(block, slice(0, hi - lo), contacts[lo:hi], _features_at(ctx, int(date)), store)
        if on_date is not None:
            on_date(int(date))
        yield int(lo), int(hi), block


def _fill(
    block: FeatureBlock,
    rows: slice | np.ndarray,
    who: np.ndarray,
    columns: dict[str, np.ndarray],
    store: EventStore,
) -> None:
    """Rows ``rows`` of ``block``: the all-contact feature ``columns`` of contacts ``who``."""
    for name in R.CATEGORICAL:
        block.categorical[name][rows] = columns[name][who]
    if store.n_contacts * len(R.NUMERIC) <= _STACK_LIMIT:
        stacked = np.array([columns[name] for name in R.NUMERIC], dtype=np.float32)
        block.numeric[rows] = stacked[:, who].T
    else:
        for j, name in enumerate(R.NUMERIC):
            block.numeric[rows, j] = columns[name][who]


def _features_at(ctx: _Context, as_of: int) -> dict[str, np.ndarray]:
    """Every feature for every contact of the store at one as_of (all-contact arrays)."""
    upto = int(np.searchsorted(ctx.store.ev_time, as_of, side="right"))
    ctx.advance(upto, as_of)
    columns: dict[str, np.ndarray] = {}
    windows = _window_counts(ctx, as_of, upto, columns)
    _recency(ctx, as_of, columns)
    _committee(ctx, as_of, windows, columns)
    _fit(ctx.store, columns)
    if columns.keys() != _ALL_FEATURES:  # the registry and the kernel must agree
        raise RuntimeError(f"kernel/registry mismatch: {sorted(columns.keys() ^ _ALL_FEATURES)}")
    return columns


# --- engagement -------------------------------------------------------------------


def _start_of(store: EventStore, as_of: int, days: int) -> int:
    return int(np.searchsorted(store.ev_time, as_of - days * DAY, side="right"))


def _window_counts(
    ctx: _Context, as_of: int, upto: int, columns: dict[str, np.ndarray]
) -> dict[int, dict[str, np.ndarray]]:
    """Per-window counts; returns the per-window totals the committee family reuses."""
    store = ctx.store
    n = store.n_contacts
    stage, key = ctx.ev_stage, ctx.ev_key
    raw: dict[int, dict[str, np.ndarray]] = {}
    for w in R.WINDOWS_DAYS:
        sl = slice(_start_of(store, as_of, w), upto)
        c = store.ev_contact[sl]
        total = np.bincount(c, minlength=n)
        by_stage = np.bincount(c * _N_STAGES + stage[sl], minlength=n * _N_STAGES).reshape(
            n, _N_STAGES
        )
        raw[w] = {"total": total, "decision": by_stage[:, _DECISION]}
        columns[f"touches_{w}d"] = total
        for s in R.COUNTED_STAGES:
            columns[f"{s}_touches_{w}d"] = by_stage[:, STAGE_CODE[s]]  # the matrix casts
        k = key[sl]
        keyed = k >= 0
        n_keys = len(R.KEY_TYPES)
        by_key = np.bincount(c[keyed] * n_keys + k[keyed], minlength=n * n_keys).reshape(n, n_keys)
        for i, type_ in enumerate(R.KEY_TYPES):
            columns[f"{type_}_{w}d"] = by_key[:, i]
    # Diversity and topic, last 90 days.
    sl = slice(_start_of(store, as_of, R.MID_WINDOW_DAYS), upto)
    c = store.ev_contact[sl]
    columns["distinct_types_90d"] = _distinct_per_contact(c, store.ev_type[sl], _N_TYPES, n)
    channel = store.ev_channel[sl]
    has_channel = channel >= 0
    n_channels = int(store.ev_channel.max(initial=-1)) + 1
    columns["distinct_channels_90d"] = _distinct_per_contact(
        c[has_channel], channel[has_channel], n_channels, n
    )
    topic = store.ev_topic[sl]
    product = np.bincount(c[topic == TOPIC_PRODUCT], minlength=n).astype(float)
    general = np.bincount(c[topic == TOPIC_GENERAL], minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["product_topic_share_90d"] = np.where(
            product + general > 0, product / (product + general), np.nan
        )
    # Velocity: the last 30 days against the 60 days before them (a monthly rate).
    before = raw[90]["total"] - raw[30]["total"]
    columns["velocity_30d"] = np.log((raw[30]["total"] + 1.0) / (before / 2.0 + 1.0))
    # Careers page views, last 365 days.
    sl = slice(_start_of(store, as_of, 365), upto)
    careers = store.ev_type[sl] == TYPE_CODE["careers_page_view"]
    columns["careers_page_views_365d"] = np.bincount(
        store.ev_contact[sl][careers], minlength=n
    ).astype(float)
    # Recency-weighted counts over everything up to as_of (carried forward by advance()).
    columns["touches_decayed"] = ctx.decayed.sum(axis=1)
    for s in R.COUNTED_STAGES:
        columns[f"{s}_touches_decayed"] = ctx.decayed[:, STAGE_CODE[s]].copy()
    return raw


def _distinct_per_contact(
    contact: np.ndarray, code: np.ndarray, n_codes: int, n: int
) -> np.ndarray:
    """How many distinct codes each contact has among the given events."""
    if n_codes == 0 or len(contact) == 0:
        return np.zeros(n)
    if n * n_codes <= 50_000_000:  # a dense boolean table is cheaper than sorting
        seen = np.zeros(n * n_codes, dtype=bool)
        seen[contact * n_codes + code] = True
        return seen.reshape(n, n_codes).sum(axis=1)
    pairs = np.unique(contact.astype(np.int64) * n_codes + code)
    return np.bincount(pairs // n_codes, minlength=n).astype(float)


def _days_since(as_of: int, times: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid, (as_of - times) / DAY, np.nan)


def _recency(ctx: _Context, as_of: int, columns: dict[str, np.ndarray]) -> None:
    touched = ctx.first_time <= as_of
    columns["days_since_first_touch"] = _days_since(as_of, ctx.first_time, touched)
    columns["days_since_last_touch"] = _days_since(as_of, ctx.last_touch, ctx.last_touch >= 0)
    columns["days_since_last_decision_touch"] = _days_since(
        as_of, ctx.last_decision, ctx.last_decision >= 0
    )
    columns["unsubscribed"] = ctx.unsubscribed.copy()
    columns["email_bounced"] = ctx.bounced.copy()
    columns["first_touch_type"] = _TYPE_NAMES[np.where(touched, ctx.first_type, -1)]
    columns["lead_source"] = ctx.store.contact_lead_source
    created = ctx.store.contact_created
    columns["lead_age_days"] = _days_since(as_of, created, created != NO_TIME)


# --- buying committee -------------------------------------------------------------


def _committee(
    ctx: _Context,
    as_of: int,
    windows: dict[int, dict[str, np.ndarray]],
    columns: dict[str, np.ndarray],
) -> None:
    store, first_time = ctx.store, ctx.first_time
    acc = store.contact_account
    has = acc >= 0
    a = acc[has]
    n_a = store.n_accounts

    def per_account(weights: np.ndarray) -> np.ndarray:
        """Sum of a per-contact quantity over each account's contacts."""
        return np.bincount(a, weights=weights[has], minlength=n_a)

    def to_contacts(per_acc: np.ndarray) -> np.ndarray:
        """An account value on each of its contacts; NaN for contacts without one."""
        return store.per_contact(per_acc.astype(float), np.nan)

    engaged30 = (windows[30]["total"] > 0).astype(float)
    engaged90 = (windows[90]["total"] > 0).astype(float)
    columns["account_engaged_contacts_30d"] = to_contacts(per_account(engaged30))
    columns["account_engaged_contacts_90d"] = to_contacts(per_account(engaged90))
    for name, codes, names in (
        ("account_departments_engaged_90d", store.contact_department, DEPARTMENTS),
        ("account_seniority_levels_engaged_90d", store.contact_seniority, SENIORITY_LEVELS),
    ):
        n_codes = len(names)
        known = has & (engaged90 > 0) & (codes != names.index("unknown"))
        pairs = np.bincount(acc[known] * n_codes + codes[known], minlength=n_a * n_codes)
        columns[name] = to_contacts((pairs.reshape(n_a, n_codes) > 0).sum(axis=1).astype(float))
    for name, members in (
        ("account_decision_maker_engaged_90d", _IS_DECISION_MAKER[store.contact_seniority]),
        ("account_finance_engaged_90d", store.contact_department == DEPARTMENT_CODE["finance"]),
        (
            "account_procurement_legal_engaged_90d",
            _IS_PROCUREMENT_LEGAL[store.contact_department],
        ),
    ):
        columns[name] = to_contacts((per_account(engaged90 * members) > 0).astype(float))
    columns["account_decision_touches_30d"] = to_contacts(per_account(windows[30]["decision"]))
    account_touches_90 = to_contacts(per_account(windows[90]["total"]))
    columns["account_decision_touches_90d"] = to_contacts(per_account(windows[90]["decision"]))
    with np.errstate(invalid="ignore", divide="ignore"):
        columns["contact_share_of_account_touches_90d"] = np.where(
            account_touches_90 > 0, windows[90]["total"] / account_touches_90, np.nan
        )
    newly = ((first_time <= as_of) & (first_time > as_of - 30 * DAY)).astype(float)
    columns["account_new_contacts_30d"] = to_contacts(per_account(newly))
    # The account's history: deals closed at or before as_of.
    closed = (store.opp_closed <= as_of) & (store.opp_account >= 0)
    won = closed & (store.opp_stage == OPP_WON)
    lost = closed & (store.opp_stage == OPP_LOST)
    columns["account_won_deals"] = to_contacts(
        np.bincount(store.opp_account[won], minlength=n_a).astype(float)
    )
    columns["account_lost_deals"] = to_contacts(
        np.bincount(store.opp_account[lost], minlength=n_a).astype(float)
    )
    last_won = np.full(n_a, -1, dtype=np.int64)
    np.maximum.at(last_won, store.opp_account[won], store.opp_closed[won])
    last_won_c = store.per_contact(last_won, -1)
    columns["days_since_account_last_won"] = _days_since(as_of, last_won_c, last_won_c >= 0)


# --- fit --------------------------------------------------------------------------


def _fit(store: EventStore, columns: dict[str, np.ndarray]) -> None:
    columns["industry"] = store.per_contact(store.account_industry, None)
    columns["country"] = store.per_contact(store.account_country, None)
    columns["employees_band"] = store.per_contact(employees_band(store.account_employees), np.nan)
    columns["revenue_band"] = store.per_contact(revenue_band(store.account_revenue), np.nan)
    columns["seniority"] = _SENIORITY_NAMES[store.contact_seniority]
    columns["department"] = _DEPARTMENT_NAMES[store.contact_department]
    columns["free_mail"] = store.contact_free_mail
