"""The arrays the feature kernel reads: contacts, accounts, touchpoints, opportunities.

There are two doors and one room. `EventStore.from_crm` turns a loaded CRM export
(pandas, millions of rows) into arrays; `EventStore.from_leads` turns the context of
one or more leads, as the API receives them (plain Python values), into the very same
arrays. The kernel (`features.pipeline.kernel`) only ever sees an `EventStore`, so the batch
path that builds training rows and the single-lead path that serves them share every
line of feature arithmetic.

Times are whole seconds since the Unix epoch (UTC) in int64; a missing time is
`NO_TIME` (the largest int64, i.e. "never").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.arrow import column_threads, one_array
from features.crm.fit import free_mail, is_free_mail
from features.crm.load import CRM
from features.crm.taxonomy import (
    DEPARTMENTS,
    OTHER,
    SENIORITY_LEVELS,
    STAGE_OF_TYPE,
    STAGES,
    TOUCHPOINT_TYPES,
)
from features.crm.titles import parse_title
from features.pipeline.lead import LeadContext, TouchColumns

NO_TIME: Final = np.iinfo(np.int64).max
TYPE_CODE: Final = {t: i for i, t in enumerate(TOUCHPOINT_TYPES)}
STAGE_CODE: Final = {s: i for i, s in enumerate(STAGES)}
#: the narrow codes of a touchpoint (a few dozen types, three topics, the channels of one
#: CRM): a byte or four a touchpoint instead of eight (18 bytes a touchpoint fewer)
EV_TYPE: Final = np.int8
EV_CHANNEL: Final = np.int32
EV_TOPIC: Final = np.int8
assert len(TOUCHPOINT_TYPES) < np.iinfo(EV_TYPE).max
#: stage code of each type code
STAGE_OF_TYPE_CODE: Final = np.array([STAGE_CODE[STAGE_OF_TYPE[t]] for t in TOUCHPOINT_TYPES])
SENIORITY_CODE: Final = {s: i for i, s in enumerate(SENIORITY_LEVELS)}
DEPARTMENT_CODE: Final = {d: i for i, d in enumerate(DEPARTMENTS)}
OPP_OPEN, OPP_WON, OPP_LOST = 0, 1, 2
_OPP_STAGE_CODE: Final = {"open": OPP_OPEN, "closed_won": OPP_WON, "closed_lost": OPP_LOST}
TOPIC_NONE, TOPIC_GENERAL, TOPIC_PRODUCT = -1, 0, 1
_TOPIC_CODE: Final = {"general": TOPIC_GENERAL, "product": TOPIC_PRODUCT}


@dataclass
class EventStore:
    """Everything the kernel needs, as parallel NumPy arrays.

    Touchpoints are sorted by time (stable), so a time window is a slice.
    """

    # contacts
    contact_ids: np.ndarray  # object
    contact_account: np.ndarray  # int64 account index (its own for a contact without one)
    contact_created: np.ndarray  # int64 seconds
    contact_seniority: np.ndarray  # int64 index into SENIORITY_LEVELS
    contact_department: np.ndarray  # int64 index into DEPARTMENTS
    contact_lead_source: np.ndarray  # object (str or None)
    contact_free_mail: np.ndarray  # float64 1 / 0 / NaN
    contact_title: np.ndarray  # object (str or None)
    # accounts
    account_ids: np.ndarray  # object
    account_industry: np.ndarray  # object
    account_employees: np.ndarray  # float64, NaN unknown
    account_revenue: np.ndarray  # float64, NaN unknown
    account_country: np.ndarray  # object
    # touchpoints, sorted by time
    ev_contact: np.ndarray  # int64 contact index
    ev_time: np.ndarray  # int64 seconds
    ev_type: np.ndarray  # int8 index into TOUCHPOINT_TYPES
    ev_channel: np.ndarray  # int32 code per distinct channel, -1 empty
    ev_topic: np.ndarray  # int8 TOPIC_*
    # opportunities
    opp_account: np.ndarray  # int64, -1 without a known account
    opp_contact: np.ndarray  # int64, -1 without a primary contact
    opp_created: np.ndarray  # int64 seconds
    opp_closed: np.ndarray  # int64 seconds, NO_TIME while open
    opp_stage: np.ndarray  # int64 OPP_*

    @property
    def n_contacts(self) -> int:
        return len(self.contact_ids)

    @property
    def n_accounts(self) -> int:
        return len(self.account_ids)

    def per_contact(
        self, values: np.ndarray, empty: Any, contacts: np.ndarray | None = None
    ) -> np.ndarray:
        """An account-level array seen from each contact (or from ``contacts`` only): the
        value of its account, or ``empty`` for a contact without one (dtype of ``values``)."""
        account = self.contact_account if contacts is None else self.contact_account[contacts]
        has = account >= 0
        out = np.full(len(account), empty, dtype=values.dtype)
        out[has] = values[account[has]]
        return out

    def contact_index(self, contact_ids: Sequence[str] | pd.Series) -> np.ndarray:
        """Indices of the given contact ids; raises KeyError naming unknown ids."""
        lookup = pd.Index(self.contact_ids)
        idx = lookup.get_indexer(pd.Index(contact_ids))
        if (idx < 0).any():
            missing = [c for c, i in zip(contact_ids, idx, strict=True) if i < 0][:5]
            raise KeyError(f"unknown contact ids: {', '.join(map(str, missing))}")
        return idx.astype(np.int64)

    def with_personal_accounts(self) -> EventStore:
        """Each contact without an account gets an account of its own (no attributes).

        Many real leads arrive without a company (free mail, individuals). Seen as a
        one-person buying committee they get committee features like everyone else (their
        own engagement, their own decision touches), so a demo request moves their score;
        left without an account, every committee feature was missing and such leads got
        one flat probability. Their firmographics stay unknown: the personal account has
        no id, industry, size or country. Both doors apply this, so training rows and the
        API agree.
        """
        lonely = np.flatnonzero(self.contact_account < 0)
        if len(lonely) == 0:
            return self
        n = self.n_accounts
        contact_account = self.contact_account.copy()
        contact_account[lonely] = n + np.arange(len(lonely))
        k = len(lonely)
        return replace(
            self,
            contact_account=contact_account,
            account_ids=np.concatenate([self.account_ids, np.full(k, None, dtype=object)]),
            account_industry=np.concatenate(
                [self.account_industry, np.full(k, None, dtype=object)]
            ),
            account_employees=np.concatenate([self.account_employees, np.full(k, np.nan)]),
            account_revenue=np.concatenate([self.account_revenue, np.full(k, np.nan)]),
            account_country=np.concatenate([self.account_country, np.full(k, None, dtype=object)]),
        )

    def first_touch(self) -> tuple[np.ndarray, np.ndarray]:
        """(time, type) of each contact's first touchpoint; NO_TIME / -1 without one."""
        n_events = len(self.ev_time)
        first = np.full(self.n_contacts, n_events, dtype=np.int64)
        np.minimum.at(first, self.ev_contact, np.arange(n_events))  # time-sorted: earliest index
        touched = first < n_events
        first_time = np.full(self.n_contacts, NO_TIME, dtype=np.int64)
        first_type = np.full(self.n_contacts, -1, dtype=np.int64)
        first_time[touched] = self.ev_time[first[touched]]
        first_type[touched] = self.ev_type[first[touched]]
        return first_time, first_type

    # --- door 1: a loaded CRM export ----------------------------------------------

    @classmethod
    def from_crm(cls, crm: CRM, hand_over: bool = False) -> EventStore:
        """Arrays from a validated CRM (ids are unique and references resolve).

        The touchpoint columns are converted side by side in a pool of threads (Arrow's
        and NumPy's kernels release the GIL), then put in time order the same way. With
        ``hand_over`` the CRM gives up its touchpoints (`crm.touchpoints` is left empty)
        and each column is let go once converted, so that the export's text and the event
        arrays are never all held at once (`build-dataset`, which needs no more of them).
        """
        accounts, contacts = crm.accounts, crm.contacts
        account_ids, contact_ids = accounts["account_id"], contacts["contact_id"]
        names = ("contact_id", "occurred_at", "type", "channel", "topic")
        touch = {name: crm.touchpoints[name] for name in names}
        if hand_over:
            crm.touchpoints = crm.touchpoints.iloc[0:0]

        def column(name: str) -> pd.Series:
            return touch[name] if not hand_over else touch.pop(name)

        with ThreadPoolExecutor(column_threads(), thread_name_prefix="store") as pool:
            ev_time = seconds(column("occurred_at"))
            order = pool.submit(_time_order, ev_time)
            in_order = {
                "ev_time": pool.submit(_in_order, lambda: ev_time, order),
                "ev_contact": pool.submit(
                    _in_order, lambda: lookup(column("contact_id"), contact_ids), order
                ),
                "ev_type": pool.submit(
                    _in_order,
                    lambda: _codes(column("type"), TOUCHPOINT_TYPES, TYPE_CODE[OTHER], EV_TYPE),
                    order,
                ),
                "ev_channel": pool.submit(_in_order, lambda: _factorize(column("channel")), order),
                "ev_topic": pool.submit(_in_order, lambda: _topic_codes(column("topic")), order),
            }
            opps = crm.opportunities
            store = cls(
                contact_ids=contacts["contact_id"].to_numpy(dtype=object),
                contact_account=lookup(contacts["account_id"], account_ids),
                contact_created=seconds(contacts["created_at"]),
                contact_seniority=_codes(
                    contacts["seniority"], SENIORITY_LEVELS, SENIORITY_CODE["unknown"]
                ),
                contact_department=_codes(
                    contacts["department"], DEPARTMENTS, DEPARTMENT_CODE["unknown"]
                ),
                contact_lead_source=_objects(contacts["lead_source"]),
                contact_free_mail=free_mail(contacts["email"]),
                contact_title=_objects(contacts["job_title"]),
                account_ids=accounts["account_id"].to_numpy(dtype=object),
                account_industry=_objects(accounts["industry"]),
                account_employees=accounts["employees"].astype("float64").to_numpy(na_value=np.nan),
                account_revenue=accounts["annual_revenue"]
                .astype("float64")
                .to_numpy(na_value=np.nan),
                account_country=_objects(accounts["country"]),
                **{k: f.result() for k, f in in_order.items()},
                opp_account=lookup(opps["account_id"], account_ids),
                opp_contact=lookup(opps["contact_id"], contact_ids),
                opp_created=seconds(opps["created_at"]),
                opp_closed=np.where(
                    opps["stage"].to_numpy() == "open", NO_TIME, seconds(opps["closed_at"])
                ),
                opp_stage=_codes(opps["stage"], tuple(_OPP_STAGE_CODE), OPP_OPEN),
            )
        return store.with_personal_accounts()

    # --- door 2: leads as the API receives them -----------------------------------

    @classmethod
    def from_leads(cls, leads: Sequence[LeadContext]) -> EventStore:
        """Arrays from in-memory lead contexts; each lead keeps its own account copy.

        The scored contact of lead k is contact index `lead_rows[k]` of the result,
        see `lead_rows`. Committee members are contacts of the lead's account.
        """
        b = _Builder()
        for lead in leads:
            b.add_lead(lead)
        return b.build(cls).with_personal_accounts()


def lead_rows(leads: Sequence[LeadContext]) -> np.ndarray:
    """Contact index of each lead's scored contact in `EventStore.from_leads(leads)`."""
    sizes = [1 + len(lead.committee) for lead in leads]
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


class _Builder:
    """Accumulates leads, then makes an EventStore of them.

    Contacts, accounts and deals (a handful per lead) are converted one by one;
    touchpoints (hundreds per lead, hundreds of thousands per batch) are gathered
    column by column and converted with Arrow and NumPy in one go, because per-touch
    Python was most of a scored lead's time.
    """

    def __init__(self) -> None:
        self.c: dict[str, list[Any]] = {
            k: [] for k in ("id", "acc", "created", "sen", "dep", "src", "free", "title")
        }
        self.a: dict[str, list[Any]] = {k: [] for k in ("id", "ind", "emp", "rev", "cty")}
        self.touches: list[Mapping[str, Any]] = []
        self.touch_contact: list[int] = []
        self.columns: list[tuple[int, TouchColumns]] = []  # (first contact index, columns)
        self.o: dict[str, list[Any]] = {k: [] for k in ("acc", "c", "created", "closed", "stage")}

    def add_lead(self, lead: LeadContext) -> None:
        acc = -1
        if lead.account is not None:
            acc = len(self.a["id"])
            a = lead.account
            self.a["id"].append(a.get("account_id"))
            self.a["ind"].append(_text(a.get("industry")))
            self.a["emp"].append(_number(a.get("employees")))
            self.a["rev"].append(_number(a.get("annual_revenue")))
            self.a["cty"].append(_text(a.get("country")))
        first = len(self.c["id"])
        seen: set[Any] = set()  # a touchpoint id is the idempotency key: once per lead
        index: dict[Any, int] = {}  # contact id -> contact index, for deals' primaries
        for k, (contact, touches) in enumerate([(lead.contact, lead.touchpoints), *lead.committee]):
            self._add_contact(contact, acc)
            index.setdefault(contact.get("contact_id"), first + k)
            for touch in touches:
                key = touch.get("touchpoint_id")
                if key is not None:
                    if key in seen:
                        continue
                    seen.add(key)
                self.touches.append(touch)
                self.touch_contact.append(first + k)
        if lead.touch_columns is not None:
            self.columns.append((first, lead.touch_columns))
        account_id = lead.account.get("account_id") if lead.account is not None else None
        deals: set[Any] = set()
        for opp in lead.opportunities:
            key = opp.get("opportunity_id")
            if key is not None:
                if key in deals:
                    continue
                deals.add(key)
            # A deal of another account, with this contact as primary, is not this
            # account's history; it still counts for the contact's eligibility and label.
            self.o["acc"].append(
                acc if account_id is not None and opp.get("account_id") == account_id else -1
            )
            # The primary contact, when it is the lead or one of its committee (the
            # export's door links every contact the same way).
            primary = opp.get("contact_id")
            self.o["c"].append(-1 if primary is None else index.get(primary, -1))
            self.o["created"].append(to_seconds(opp.get("created_at")))
            stage = _OPP_STAGE_CODE.get(str(opp.get("stage", "open")).lower(), OPP_OPEN)
            closed = to_seconds(opp.get("closed_at"))
            self.o["closed"].append(NO_TIME if stage == OPP_OPEN or closed is None else closed)
            self.o["stage"].append(stage)

    def _add_contact(self, contact: Mapping[str, Any], acc: int) -> None:
        seniority = _text(contact.get("seniority"))
        department = _text(contact.get("department"))
        if seniority is None or department is None:
            parsed = parse_title(_text(contact.get("job_title")))
            seniority = seniority or parsed[0]
            department = department or parsed[1]
        self.c["id"].append(contact.get("contact_id"))
        self.c["acc"].append(acc)
        self.c["created"].append(to_seconds(contact.get("created_at")))
        self.c["sen"].append(SENIORITY_CODE.get(seniority.lower(), SENIORITY_CODE["unknown"]))
        self.c["dep"].append(DEPARTMENT_CODE.get(department.lower(), DEPARTMENT_CODE["unknown"]))
        self.c["src"].append(_text(contact.get("lead_source")))
        self.c["free"].append(is_free_mail(_text(contact.get("email"))))
        self.c["title"].append(_text(contact.get("job_title")))

    def _touch_columns(self) -> dict[str, np.ndarray]:
        """Touchpoint columns: times as seconds, types, channels and topics as codes.

        A few dozen distinct texts repeat over hundreds of touchpoints, so each distinct
        raw value is normalised once and every touchpoint is one dict lookup. (Arrow
        kernels cost ~10 µs a call: more than this for one lead's touchpoints.)
        """
        touches = self.touches
        other = TYPE_CODE[OTHER]
        types = [t.get("type") for t in touches]
        channels = [t.get("channel") for t in touches]
        topics = [t.get("topic") for t in touches]
        contact = [np.array(self.touch_contact, dtype=np.int64)]
        times = [seconds_of([t.get("occurred_at") for t in touches])]
        for first, block in self.columns:  # the live store's touchpoints, as columns
            contact.append(first + np.asarray(block.member, dtype=np.int64))
            times.append(np.asarray(block.seconds, dtype=np.int64))
            types += list(block.type)
            channels += list(block.channel)
            topics += list(block.topic)
        type_code = {v: _lookup(TYPE_CODE, v, other) for v in set(types)}
        topic_code = {v: _lookup(_TOPIC_CODE, v, TOPIC_NONE) for v in set(topics)}
        distinct: dict[str, int] = {}  # channel text -> code, in order of appearance
        channel_code = {
            v: -1 if (text := _text(v)) is None else distinct.setdefault(text, len(distinct))
            for v in dict.fromkeys(channels)
        }
        return {
            "c": np.concatenate(contact),
            "t": np.concatenate(times),
            "type": np.array([type_code[v] for v in types], dtype=EV_TYPE),
            "chan": np.array([channel_code[v] for v in channels], dtype=EV_CHANNEL),
            "topic": np.array([topic_code[v] for v in topics], dtype=EV_TOPIC),
        }

    def build(self, cls: type[EventStore]) -> EventStore:
        e = self._touch_columns()
        order = np.argsort(e["t"], kind="stable")

        def ints(values: list[Any]) -> np.ndarray:
            return np.array(values, dtype=np.int64)

        return cls(
            contact_ids=np.array(self.c["id"], dtype=object),
            contact_account=ints(self.c["acc"]),
            contact_created=ints(self.c["created"]),
            contact_seniority=ints(self.c["sen"]),
            contact_department=ints(self.c["dep"]),
            contact_lead_source=np.array(self.c["src"], dtype=object),
            contact_free_mail=np.array(self.c["free"], dtype=float),
            contact_title=np.array(self.c["title"], dtype=object),
            account_ids=np.array(self.a["id"], dtype=object),
            account_industry=np.array(self.a["ind"], dtype=object),
            account_employees=np.array(self.a["emp"], dtype=float),
            account_revenue=np.array(self.a["rev"], dtype=float),
            account_country=np.array(self.a["cty"], dtype=object),
            ev_contact=e["c"][order],
            ev_time=e["t"][order],
            ev_type=e["type"][order],
            ev_channel=e["chan"][order],
            ev_topic=e["topic"][order],
            opp_account=ints(self.o["acc"]),
            opp_contact=ints(self.o["c"]),
            opp_created=ints(self.o["created"]),
            opp_closed=ints(self.o["closed"]),
            opp_stage=ints(self.o["stage"]),
        )


# --- conversions ------------------------------------------------------------------


def seconds(values: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 seconds since the epoch (floored); NaT becomes NO_TIME."""
    micros = values.dt.tz_convert(None).astype("datetime64[us]").to_numpy().view(np.int64)
    out = np.floor_divide(micros, 1_000_000)
    out[values.isna().to_numpy()] = NO_TIME
    return out


def seconds_of(values: Sequence[Any]) -> np.ndarray:
    """Many timestamps, as `to_seconds` gives them one by one, in fewer steps.

    A list of datetimes (what the API's validation produces) takes a fast path; a list
    holding anything else (ISO text, dates, None) goes through `to_seconds` per value.
    (Arrow converts faster, but its handling of offsets depends on the mix of values
    in the list: it dropped them in tests. Correct instants come first.)
    """
    try:
        stamps = [
            (v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)).timestamp() for v in values
        ]
    except (AttributeError, TypeError):
        return np.array([to_seconds(v) for v in values], dtype=np.int64)
    return np.floor(np.array(stamps, dtype=np.float64)).astype(np.int64)


def to_seconds(value: Any) -> int:
    """One timestamp (ISO 8601 text, datetime or pandas Timestamp) as UTC seconds.

    A value without an offset is UTC, as in the data contract. Raises ValueError on
    text that is not a timestamp; None gives NO_TIME.
    """
    if value is None:
        return int(NO_TIME)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.strip())
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() // 1)
    if isinstance(value, dt.date):
        return int(dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp())
    raise ValueError(f"expected an ISO 8601 timestamp, got {value!r}")


def lookup(
    values: pd.Series, vocabulary: pd.Series | Sequence[str], dtype: type = np.int64
) -> np.ndarray:
    """Position of each value in ``vocabulary`` (-1 when absent or missing), by Arrow.

    Arrow's hash lookup in C++ is several times faster than pandas' on millions of
    Arrow-backed strings, and this runs once per touchpoint.
    """
    text = _arrow_text(values)
    positions = pc.index_in(text, value_set=_arrow_text(vocabulary).cast(text.type))
    return np.asarray(positions.fill_null(-1).to_numpy(zero_copy_only=False), dtype=dtype)


def _arrow_text(values: pd.Series | Sequence[str]) -> pa.Array:
    """Text as Arrow holds it: pandas' columns hand over their (large) strings as they
    are, a copy only where the values are not text."""
    array = one_array(values)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array
    return array.cast(pa.string())


def _codes(
    values: pd.Series, vocabulary: Sequence[str], default: int, dtype: type = np.int64
) -> np.ndarray:
    codes = lookup(values, vocabulary, dtype)
    codes[codes < 0] = default
    return codes


def _factorize(values: pd.Series) -> np.ndarray:
    """Integer codes of distinct non-empty values (-1 for missing)."""
    encoded = pc.dictionary_encode(_arrow_text(values)).indices
    return np.asarray(encoded.fill_null(-1).to_numpy(zero_copy_only=False), dtype=EV_CHANNEL)


def _time_order(ev_time: np.ndarray) -> np.ndarray | None:
    """The order that sorts events by time; ``None`` when they are in order already (an
    export's touchpoints usually are: then there is nothing to sort)."""
    if len(ev_time) < 2 or bool(np.all(ev_time[1:] >= ev_time[:-1])):
        return None
    return np.argsort(ev_time, kind="stable")


def _in_order(column: Callable[[], np.ndarray], order: Future[np.ndarray | None]) -> np.ndarray:
    """An event column computed, then put in time order (in one task, so that the column
    in file order is freed before the next one is made)."""
    values, by_time = column(), order.result()
    return values if by_time is None else values[by_time]


def _objects(values: pd.Series) -> np.ndarray:
    return values.astype(object).where(values.notna(), None).to_numpy(dtype=object)


def _topic_codes(topics: pd.Series) -> np.ndarray:
    """TOPIC_GENERAL (0) / TOPIC_PRODUCT (1) by position in the value set; else TOPIC_NONE."""
    lowered = pc.utf8_lower(_arrow_text(topics))
    codes = pc.index_in(lowered, value_set=pa.array(["general", "product"], lowered.type))
    return np.asarray(codes.fill_null(TOPIC_NONE).to_numpy(zero_copy_only=False), dtype=EV_TOPIC)


def _lookup(codes: Mapping[str, int], value: Any, default: int) -> int:
    """The code of a text compared trimmed and lower-cased; ``default`` when unknown."""
    text = _text(value)
    return default if text is None else codes.get(text.lower(), default)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any) -> float:
    if value is None or value == "":
        return float("nan")
    return float(value)
