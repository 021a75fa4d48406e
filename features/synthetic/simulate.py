"""The generative story of the synthetic CRM, simulated one chunk of accounts at a time.

1. Accounts get firmographics; a latent *fit* (ideal-customer-profile match) follows
   from industry, size and country plus noise. A few bought before the data starts.
2. Accounts enter *buying episodes* (a Poisson process whose rate rises with fit). An
   episode moves awareness -> consideration -> decision and may stall at each step.
3. A *buying committee* forms as the episode advances: an initiator at once, users in
   consideration, an executive, finance and procurement/legal around the decision.
4. At decision an opportunity opens; it is won with a probability that rises with fit
   and committee coverage, and closes after a sales cycle of weeks to months.
5. Every contact is active over *segments* of time with an activity profile (the stage
   and the role decide the mix of touchpoint types); touches are a Poisson process
   within each segment.
6. Noise that makes lead scoring hard: newsletter-only readers, students and job
   seekers, demo requests from poor-fit tire-kickers, outbound leads that never
   engage, past customers who keep reading, missing titles, free mail, unknown types.

Everything is vectorised over the chunk; times are float days since the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.crm.taxonomy import TOUCHPOINT_TYPES
from features.synthetic import params as P

_TYPE_INDEX = {t: i for i, t in enumerate(TOUCHPOINT_TYPES)}
_TYPE_PROBS = P.type_probabilities()
_PROFILE_RATE = np.array([P.PROFILE_RATES[p] for p in P.PROFILES])
_PROFILE_PRODUCT = np.array([P.PROFILE_PRODUCT_TOPIC[p] for p in P.PROFILES])
_FAMILIES = tuple(P.CHANNEL_MIX)
_FAMILY_OF_TYPE = np.array(
    [_FAMILIES.index(P.CHANNEL_FAMILY.get(t, "web")) for t in TOUCHPOINT_TYPES]
)
_INDUSTRY_NAMES = np.array([i[0] for i in P.INDUSTRIES], dtype=object)
_COUNTRY_CODES = np.array([c[0] for c in P.COUNTRIES], dtype=object)
#: local episode numbers of tire-kicker episodes start here (buying episodes count from 0)
KICKER_OFFSET = 1_000_000_000
_TOPIC_OF_TYPE = np.array(
    [1 if t in P.PRODUCT_TYPES else (0 if t in P.GENERAL_TYPES else -1) for t in TOUCHPOINT_TYPES]
)


@dataclass
class Counters:
    """Running id numbers, so that ids stay unique across chunks."""

    contact: int = 0
    touchpoint: int = 0
    opportunity: int = 0
    episode: int = 0


@dataclass
class Chunk:
    """The contract tables and the latent truth of one chunk of accounts."""

    tables: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame]


@dataclass
class _Contacts:
    """Contacts being built, as parallel lists of arrays appended persona by persona."""

    parts: list[dict[str, np.ndarray]] = field(default_factory=list)

    def add(self, **columns: np.ndarray) -> np.ndarray:
        """Append contacts; returns their local indices. ``linked`` (default: all) says
        whether the CRM links the contact to its account."""
        start = sum(len(p["persona"]) for p in self.parts)
        columns.setdefault("linked", np.ones(len(columns["persona"]), dtype=bool))
        self.parts.append(columns)
        return np.arange(start, start + len(columns["persona"]))

    def column(self, name: str) -> np.ndarray:
        return np.concatenate([p[name] for p in self.parts])


@dataclass
class _Segments:
    """Spans of activity: contact, start, end (days) and activity profile."""

    contact: list[np.ndarray] = field(default_factory=list)
    start: list[np.ndarray] = field(default_factory=list)
    end: list[np.ndarray] = field(default_factory=list)
    profile: list[np.ndarray] = field(default_factory=list)

    def add(self, contact: np.ndarray, start: np.ndarray, end: np.ndarray, profile: str) -> None:
        keep = end > start
        self.contact.append(contact[keep])
        self.start.append(start[keep])
        self.end.append(end[keep])
        self.profile.append(np.full(int(keep.sum()), P.PROFILE_INDEX[profile]))


@dataclass
class _Touches:
    """Single touches placed on purpose (entry touch, demo request, bounce...)."""

    contact: list[np.ndarray] = field(default_factory=list)
    time: list[np.ndarray] = field(default_factory=list)
    type_: list[np.ndarray] = field(default_factory=list)
    profile: list[np.ndarray] = field(default_factory=list)

    def add(self, contact: np.ndarray, time: np.ndarray, type_: np.ndarray, profile: str) -> None:
        self.contact.append(contact)
        self.time.append(time)
        self.type_.append(type_)
        self.profile.append(np.full(len(contact), P.PROFILE_INDEX[profile]))


def _to_time(days: np.ndarray, start: pd.Timestamp) -> pd.Series:
    """Float days since the start into UTC timestamps, to the second (NaN -> NaT)."""
    seconds = np.round(days * 86_400.0)
    return pd.Series(start + pd.to_timedelta(seconds, unit="s")).astype("datetime64[s, UTC]")


def _or_none(keep: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where ``keep``, else None (an object array, as a CSV cell left empty)."""
    out = values.astype(object)
    out[~keep] = None
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(
    rng: np.random.Generator,
    options: tuple[str, ...],
    weights: tuple[float, ...] | np.ndarray,
    n: int,
) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(options), size=n, p=w / w.sum())


def _gamma_days(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    return rng.gamma(2.0, mean / 2.0, size=n)


def simulate_chunk(
    rng: np.random.Generator,
    cfg: P.GeneratorConfig,
    first_account: int,
    n_accounts: int,
    span_days: float,
    counters: Counters,
) -> Chunk:
    """Simulate ``n_accounts`` accounts numbered from ``first_account``."""
    T = span_days
    years = T / 365.25
    acc = _accounts(rng, first_account, n_accounts)
    contacts = _Contacts()
    segments = _Segments()
    touches = _Touches()
    opp_parts: list[dict[str, np.ndarray]] = []

    episodes = _episodes(rng, acc, T, years, contacts, segments, touches, opp_parts)
    kicker_episodes = _noise(rng, acc, T, years, contacts, segments, touches, opp_parts)
    episodes = pd.concat([episodes, kicker_episodes], ignore_index=True)

    contact_frame, contact_truth = _contact_table(rng, acc, contacts, counters)
    touch_frame = _touchpoints(rng, T, segments, touches, contact_frame, counters)
    opp_frame = _opportunities(rng, acc, opp_parts, contact_frame, T, counters)
    episodes = _name_episodes(episodes, acc, opp_frame, counters)
    episode_ids = dict(zip(episodes["_local"], episodes["episode_id"], strict=True))
    contact_truth["episode_id"] = [episode_ids.get(k) for k in contacts.column("episode")]
    # Committee members who would join after the export date do not exist yet.
    exists = contact_frame["_join"].to_numpy() < T
    contact_frame = contact_frame[exists].reset_index(drop=True)
    contact_truth = contact_truth[exists].reset_index(drop=True)

    start = pd.Timestamp(cfg.start, tz="UTC")
    for frame, columns in (
        (contact_frame, ["created_at"]),
        (touch_frame, ["occurred_at"]),
        (opp_frame, ["created_at", "closed_at"]),
        (episodes, ["started_at", "consideration_at", "decision_at", "ended_at"]),
    ):
        for column in columns:
            frame[column] = _to_time(frame[column].to_numpy(dtype=float), start)
    return Chunk(
        tables={
            "accounts": _account_table(rng, acc),
            "contacts": contact_frame.drop(columns=["_persona", "_join"]),
            "touchpoints": touch_frame,
            "opportunities": opp_frame.drop(columns=["_episode"]),
        },
        truth={
            "accounts": pd.DataFrame(
                {
                    "account_id": acc["account_id"],
                    "fit": acc["fit"].round(4),
                    "past_customer": acc["past_customer"],
                    "industry": [P.INDUSTRIES[i][0] for i in acc["industry"]],
                    "employees": acc["employees"],
                    "country": [P.COUNTRIES[i][0] for i in acc["country"]],
                }
            ),
            "episodes": episodes.drop(columns=["_local", "account"]),
            "contacts": contact_truth,
        },
    )


# --- 1. accounts ----------------------------------------------------------------------


def _accounts(rng: np.random.Generator, first: int, n: int) -> dict[str, np.ndarray]:
    industry = _pick(rng, tuple(i[0] for i in P.INDUSTRIES), tuple(i[1] for i in P.INDUSTRIES), n)
    country = _pick(rng, tuple(c[0] for c in P.COUNTRIES), tuple(c[1] for c in P.COUNTRIES), n)
    log_emp = np.clip(rng.normal(2.4, 0.75, n), 0.0, 5.5)
    employees = np.maximum(1, np.round(10**log_emp)).astype(np.int64)
    rev_per_emp = np.array([i[3] for i in P.INDUSTRIES])[industry]
    revenue = np.round(employees * rev_per_emp * rng.lognormal(0.0, 0.4, n), -3)
    size_effect = (
        1.2 * np.exp(-(((np.log10(employees) - P.SIZE_SWEET_SPOT) / P.SIZE_WIDTH) ** 2)) - 0.4
    )
    logit = (
        P.FIT_INTERCEPT
        + np.array([i[2] for i in P.INDUSTRIES])[industry]
        + np.array([c[2] for c in P.COUNTRIES])[country]
        + size_effect
        + rng.normal(0.0, P.FIT_NOISE, n)
    )
    fit = _sigmoid(logit)
    past = rng.random(n) < P.PAST_CUSTOMER_SHARE * 2.0 * fit
    numbers = np.arange(first, first + n)
    return {
        "number": numbers,
        "account_id": np.array([f"A{k:07d}" for k in numbers]),
        "industry": industry,
        "country": country,
        "employees": employees,
        "revenue": revenue,
        "fit": fit,
        "past_customer": past,
        "russian": _COUNTRY_CODES[country] == "RU",
        "log_size": np.log10(employees),
    }


def _account_table(rng: np.random.Generator, acc: dict[str, np.ndarray]) -> pd.DataFrame:
    n = len(acc["account_id"])

    def hide(values: pd.Series, column: str) -> pd.Series:
        return values.mask(rng.random(n) < P.MISSING_SHARE[column])

    return pd.DataFrame(
        {
            "account_id": acc["account_id"],
            "industry": hide(pd.Series(_INDUSTRY_NAMES[acc["industry"]]), "industry"),
            "employees": hide(pd.Series(acc["employees"], dtype="Int64"), "employees"),
            "annual_revenue": hide(pd.Series(acc["revenue"]), "annual_revenue"),
            "country": hide(pd.Series(_COUNTRY_CODES[acc["country"]]), "country"),
        }
    )


# --- 2-4. buying episodes, committees, opportunities -----------------------------------


def _episodes(
    rng: np.random.Generator,
    acc: dict[str, np.ndarray],
    T: float,
    years: float,
    contacts: _Contacts,
    segments: _Segments,
    touches: _Touches,
    opp_parts: list[dict[str, np.ndarray]],
) -> pd.DataFrame:
    fit, past = acc["fit"], acc["past_customer"]
    rate = P.EPISODE_RATE_BASE + P.EPISODE_RATE_FIT * fit + P.EPISODE_RATE_PAST_CUSTOMER * past
    n_ep = rng.poisson(rate * years)
    a = np.repeat(np.arange(len(fit)), n_ep)
    m = len(a)
    f, pc, size = fit[a], past[a], acc["log_size"][a]
    start = rng.uniform(0.0, T, m)
    aw_days = _gamma_days(rng, P.AWARENESS_DAYS, m)
    cons_days = _gamma_days(rng, P.CONSIDERATION_DAYS, m)
    considered = rng.random(m) < P.P_CONSIDER[0] + P.P_CONSIDER[1] * f
    decided = considered & (
        rng.random(m) < P.P_DECIDE[0] + P.P_DECIDE[1] * f + P.P_DECIDE_PAST_CUSTOMER * pc
    )
    cons_at = start + aw_days
    dec_at = cons_at + cons_days
    stall_at = np.where(considered, dec_at, cons_at)

    # The committee. Users join during consideration; an executive may join late in
    # consideration or at the decision; finance and procurement join at the decision.
    n_users = np.where(considered, 1 + np.minimum(rng.poisson(0.2 + 0.35 * size), 4), 0)
    exec_early = considered & (rng.random(m) < 0.25)
    exec_late = decided & ~exec_early & (rng.random(m) < 0.5)
    has_exec = exec_early | exec_late
    has_fin = decided & (rng.random(m) < 0.30 + 0.45 * f)
    has_proc = decided & (rng.random(m) < np.clip(0.05 + 0.12 * size, 0.0, 0.8))
    coverage = (has_exec + has_fin + has_proc + np.minimum(n_users, 2) / 2.0) / 4.0

    # The deal.
    opp_created = dec_at + rng.exponential(P.OPPORTUNITY_DELAY_DAYS, m)
    cycle = rng.lognormal(np.log(P.SALES_CYCLE_MEDIAN_DAYS), P.SALES_CYCLE_SIGMA, m)
    closed = opp_created + cycle
    win_p = _sigmoid(
        P.WIN_INTERCEPT
        + P.WIN_FIT * (f - 0.5)
        + P.WIN_COVERAGE * (coverage - 0.5)
        + P.WIN_PAST_CUSTOMER * pc
        + rng.normal(0.0, P.WIN_NOISE, m)
    )
    won = rng.random(m) < win_p
    has_opp = decided & (opp_created < T)
    end = np.where(decided, np.minimum(closed, T), np.minimum(stall_at, T))

    ep = np.arange(m)
    # Initiator: awareness, then consideration, then decision. Some sign up with free
    # mail and no company, and the CRM never links them to their account (the deal is
    # still the account's, with them as its primary contact).
    unlinked = rng.random(m) < P.UNLINKED_INITIATOR_SHARE
    ini = contacts.add(
        persona=np.full(m, "initiator"), account=a, join=start, episode=ep, linked=~unlinked
    )
    segments.add(ini, start, np.minimum(np.where(considered, cons_at, stall_at), T), "awareness")
    segments.add(
        ini[considered],
        cons_at[considered],
        np.minimum(stall_at, T)[considered],
        "consideration_user",
    )
    segments.add(ini[decided], dec_at[decided], end[decided], "decision_user")

    # Users.
    u_ep = np.repeat(ep, n_users)
    u_join = cons_at[u_ep] + rng.uniform(0.0, 0.6, len(u_ep)) * cons_days[u_ep]
    users = contacts.add(
        persona=np.full(len(u_ep), "user"), account=a[u_ep], join=u_join, episode=u_ep
    )
    segments.add(users, u_join, np.minimum(stall_at[u_ep], T), "consideration_user")
    dec_u = decided[u_ep]
    segments.add(users[dec_u], dec_at[u_ep][dec_u], end[u_ep][dec_u], "decision_user")

    # Executive, finance, procurement/legal.
    x_ep = ep[has_exec]
    x_join = np.where(
        exec_early[x_ep],
        cons_at[x_ep] + rng.uniform(0.5, 1.0, len(x_ep)) * cons_days[x_ep],
        dec_at[x_ep] + rng.uniform(0.0, 10.0, len(x_ep)),
    )
    execs = contacts.add(
        persona=np.full(len(x_ep), "executive"), account=a[x_ep], join=x_join, episode=x_ep
    )
    segments.add(
        execs,
        x_join,
        np.minimum(np.where(decided[x_ep], dec_at[x_ep], stall_at[x_ep]), T),
        "consideration_exec",
    )
    x_dec = decided[x_ep]
    segments.add(
        execs[x_dec], np.maximum(dec_at[x_ep], x_join)[x_dec], end[x_ep][x_dec], "decision_exec"
    )
    for persona, mask, delay, profile in (
        ("finance", has_fin, 15.0, "decision_finance"),
        ("procurement", has_proc, 25.0, "decision_procurement"),
    ):
        e = ep[mask]
        join = dec_at[e] + rng.uniform(0.0, delay, len(e))
        idx = contacts.add(persona=np.full(len(e), persona), account=a[e], join=join, episode=e)
        segments.add(idx, join, end[e], profile)

    # The decision is announced by a demo request, a call to sales or a trial, most of
    # the time by the initiator (sales-led deals skip it).
    d = ep[decided]
    milestone = rng.choice(
        [
            _TYPE_INDEX["demo_request"],
            _TYPE_INDEX["contact_sales"],
            _TYPE_INDEX["trial_signup"],
            -1,
        ],
        size=len(d),
        p=[0.5, 0.25, 0.15, 0.10],
    )
    keep = milestone >= 0
    touches.add(
        ini[d][keep],
        (dec_at[d] + rng.uniform(0.0, 3.0, len(d)))[keep],
        milestone[keep],
        "decision_user",
    )

    # Customers keep reading after a win.
    w = ep[has_opp & won & (closed < T)]
    segments.add(ini[w], closed[w], np.full(len(w), T), "customer")

    # Past customers: a won deal before the data starts, and contacts who keep reading.
    pc_acc = np.flatnonzero(acc["past_customer"])
    past_created = -rng.uniform(60.0, 700.0, len(pc_acc))
    opp_parts.append(
        {
            "account": pc_acc,
            "contact": np.full(len(pc_acc), -1),
            "created": past_created,
            "closed": past_created + rng.lognormal(np.log(40.0), 0.4, len(pc_acc)),
            "won": np.ones(len(pc_acc), dtype=bool),
            "episode": np.full(len(pc_acc), -1),
        }
    )
    n_cust = 1 + rng.poisson(P.CUSTOMER_CONTACTS, len(pc_acc))
    c_acc = np.repeat(pc_acc, n_cust)
    c_join = -rng.uniform(30.0, 700.0, len(c_acc))
    cust = contacts.add(
        persona=np.full(len(c_acc), "customer"),
        account=c_acc,
        join=c_join,
        episode=np.full(len(c_acc), -1),
    )
    segments.add(cust, np.zeros(len(c_acc)), np.full(len(c_acc), T), "customer")

    opp_parts.append(
        {
            "account": a[has_opp],
            "contact": np.where(rng.random(int(has_opp.sum())) < 0.8, ini[has_opp], -1),
            "created": opp_created[has_opp],
            "closed": closed[has_opp],
            "won": won[has_opp],
            "episode": ep[has_opp],
        }
    )
    final_stage = np.where(decided, "decision", np.where(considered, "consideration", "awareness"))
    outcome = np.where(
        ~decided,
        "stalled",
        np.where(~has_opp | (closed >= T), "open", np.where(won, "won", "lost")),
    )
    return pd.DataFrame(
        {
            "_local": ep,
            "kind": "buying",
            "account": a,
            "started_at": start,
            "consideration_at": np.where(considered, cons_at, np.nan),
            "decision_at": np.where(decided, dec_at, np.nan),
            "ended_at": end,
            "final_stage": final_stage,
            "outcome": outcome,
            "committee_size": 1 + n_users + has_exec + has_fin + has_proc,
            "coverage": coverage.round(3),
            "p_consideration": (P.P_CONSIDER[0] + P.P_CONSIDER[1] * f).round(4),
            "p_decision": np.clip(
                P.P_DECIDE[0] + P.P_DECIDE[1] * f + P.P_DECIDE_PAST_CUSTOMER * pc, 0, 1
            ).round(4),
            "win_probability": win_p.round(4),
        }
    )


# --- 6. noise ---------------------------------------------------------------------------


def _noise(
    rng: np.random.Generator,
    acc: dict[str, np.ndarray],
    T: float,
    years: float,
    contacts: _Contacts,
    segments: _Segments,
    touches: _Touches,
    opp_parts: list[dict[str, np.ndarray]],
) -> pd.DataFrame:
    n = len(acc["fit"])

    # Newsletter-only readers: sign up, open emails for months, never buy; some leave.
    nl_acc = np.repeat(np.arange(n), rng.poisson(P.NEWSLETTER_PER_ACCOUNT_YEAR * years, n))
    join = rng.uniform(0.0, T, len(nl_acc))
    stop = join + rng.exponential(300.0, len(nl_acc))
    idx = contacts.add(
        persona=np.full(len(nl_acc), "newsletter"),
        account=nl_acc,
        join=join,
        episode=np.full(len(nl_acc), -1),
    )
    segments.add(idx, join, np.minimum(stop, T), "newsletter")
    leaves = (stop < T) & (rng.random(len(nl_acc)) < P.UNSUBSCRIBE_SHARE)
    touches.add(
        idx[leaves],
        stop[leaves],
        np.full(int(leaves.sum()), _TYPE_INDEX["unsubscribe"]),
        "newsletter",
    )

    # Outbound leads: sales adds them; they rarely open anything; some addresses bounce.
    ob_acc = np.repeat(np.arange(n), rng.poisson(P.OUTBOUND_PER_ACCOUNT_YEAR * years, n))
    join = rng.uniform(0.0, T, len(ob_acc))
    idx = contacts.add(
        persona=np.full(len(ob_acc), "outbound"),
        account=ob_acc,
        join=join,
        episode=np.full(len(ob_acc), -1),
    )
    bounced = rng.random(len(ob_acc)) < P.BOUNCE_SHARE
    bounce_at = join + rng.uniform(0.0, 5.0, len(ob_acc))
    touches.add(
        idx[bounced],
        bounce_at[bounced],
        np.full(int(bounced.sum()), _TYPE_INDEX["email_bounce"]),
        "outbound",
    )
    segments.add(idx[~bounced], join[~bounced], np.minimum(join + 120.0, T)[~bounced], "outbound")

    # Students and job seekers: no account, free mail, careers pages and content.
    n_students = rng.poisson(P.STUDENTS_PER_ACCOUNT_YEAR * years * n)
    join = rng.uniform(0.0, T, n_students)
    idx = contacts.add(
        persona=np.full(n_students, "student"),
        account=np.full(n_students, -1),
        join=join,
        episode=np.full(n_students, -1),
    )
    segments.add(idx, join, np.minimum(join + rng.exponential(60.0, n_students), T), "student")

    # Tire-kickers: poor-fit companies that ask for a demo, look at prices and vanish.
    poor = acc["fit"] < P.TIRE_KICKER_FIT_BELOW
    tk_acc = np.repeat(
        np.arange(n), rng.poisson(P.TIRE_KICKER_PER_POOR_FIT_ACCOUNT_YEAR * years * poor)
    )
    m = len(tk_acc)
    join = rng.uniform(0.0, T, m)
    local = np.arange(m) + KICKER_OFFSET
    idx = contacts.add(persona=np.full(m, "tire_kicker"), account=tk_acc, join=join, episode=local)
    touches.add(
        idx, join + rng.uniform(0.0, 1.0, m), np.full(m, _TYPE_INDEX["demo_request"]), "tire_kicker"
    )
    segments.add(idx, join, np.minimum(join + 3.0 + rng.exponential(10.0, m), T), "tire_kicker")
    gets_opp = rng.random(m) < P.TIRE_KICKER_OPPORTUNITY_SHARE
    created = join + rng.uniform(1.0, 10.0, m)
    closed = created + rng.uniform(5.0, 30.0, m)
    won = rng.random(m) < P.TIRE_KICKER_WIN_PROBABILITY
    has_opp = gets_opp & (created < T)
    opp_parts.append(
        {
            "account": tk_acc[has_opp],
            "contact": idx[has_opp],
            "created": created[has_opp],
            "closed": closed[has_opp],
            "won": won[has_opp],
            "episode": local[has_opp],
        }
    )
    outcome = np.where(
        ~has_opp, "stalled", np.where(closed >= T, "open", np.where(won, "won", "lost"))
    )
    return pd.DataFrame(
        {
            "_local": local,
            "kind": "tire_kicker",
            "account": tk_acc,
            "started_at": join,
            "consideration_at": np.nan,
            "decision_at": np.where(has_opp, created, np.nan),
            "ended_at": np.where(has_opp, np.minimum(closed, T), np.minimum(join + 3.0, T)),
            "final_stage": np.where(has_opp, "decision", "awareness"),
            "outcome": outcome,
            "committee_size": 1,
            "coverage": 0.0,
            "p_consideration": 0.0,
            "p_decision": P.TIRE_KICKER_OPPORTUNITY_SHARE,
            "win_probability": P.TIRE_KICKER_WIN_PROBABILITY,
        }
    )


# --- contacts ---------------------------------------------------------------------------


def _contact_table(
    rng: np.random.Generator, acc: dict[str, np.ndarray], contacts: _Contacts, counters: Counters
) -> tuple[pd.DataFrame, pd.DataFrame]:
    persona = contacts.column("persona")
    true_account = contacts.column("account")  # (an unlinked contact's company, for its language)
    account = np.where(contacts.column("linked"), true_account, -1)
    join = contacts.column("join")
    n = len(persona)
    numbers = np.arange(counters.contact, counters.contact + n)
    counters.contact += n
    contact_ids = np.array([f"C{k:08d}" for k in numbers])

    seniority = np.empty(n, dtype=object)
    department = np.empty(n, dtype=object)
    lead_source = np.empty(n, dtype=object)
    free_share = np.zeros(n)
    for p in P.PERSONAS:
        mask = persona == p
        k = int(mask.sum())
        if not k:
            continue
        jobs = P.PERSONA_JOBS[p]
        choice = rng.choice(
            len(jobs), size=k, p=np.array([j[2] for j in jobs]) / sum(j[2] for j in jobs)
        )
        seniority[mask] = np.array([j[0] for j in jobs], dtype=object)[choice]
        department[mask] = np.array([j[1] for j in jobs], dtype=object)[choice]
        src = _pick(rng, P.LEAD_SOURCES, P.LEAD_SOURCE_MIX[p], k)
        lead_source[mask] = np.array(P.LEAD_SOURCES, dtype=object)[src]
        free_share[mask] = P.FREE_MAIL_SHARE[p]

    has_account = account >= 0
    russian = np.zeros(n, dtype=bool)
    known = true_account >= 0
    russian[known] = acc["russian"][true_account[known]]
    russian_title = russian & (rng.random(n) < P.RUSSIAN_TITLE_SHARE_RU)
    titles = np.empty(n, dtype=object)
    student = persona == "student"
    for i in range(n):
        if student[i]:
            titles[i] = P.STUDENT_TITLES[rng.integers(len(P.STUDENT_TITLES))]
        else:
            titles[i] = P.job_title(seniority[i], department[i], bool(russian_title[i]), rng)
    titles[rng.random(n) < P.MISSING_TITLE_SHARE] = None

    enriched = rng.random(n) < P.ENRICHED_SHARE
    free = rng.random(n) < free_share
    domain_pick = rng.integers(0, 1 << 30, n)
    emails = np.empty(n, dtype=object)
    for i in range(n):
        if free[i] or not has_account[i]:
            pool = P.RU_FREE_MAIL_DOMAINS if russian[i] else P.FREE_MAIL_DOMAINS
            domain = pool[domain_pick[i] % len(pool)]
        else:
            domain = f"a{acc['number'][account[i]]}.example.com"
        emails[i] = f"lead{numbers[i]}@{domain}"
    emails[rng.random(n) < P.MISSING_EMAIL_SHARE] = None

    frame = pd.DataFrame(
        {
            "contact_id": contact_ids,
            "account_id": _or_none(has_account, acc["account_id"][np.maximum(account, 0)]),
            "created_at": join,
            "job_title": titles,
            "seniority": _or_none(enriched, seniority),
            "department": _or_none(enriched, department),
            "lead_source": lead_source,
            "email": emails,
            "_persona": persona,
            "_join": join,
        }
    )
    truth = pd.DataFrame(
        {
            "contact_id": contact_ids,
            "persona": persona,
            "seniority": seniority,
            "department": department,
        }
    )
    return frame, truth


# --- 5. touchpoints ---------------------------------------------------------------------


def _touchpoints(
    rng: np.random.Generator,
    T: float,
    segments: _Segments,
    touches: _Touches,
    contact_frame: pd.DataFrame,
    counters: Counters,
) -> pd.DataFrame:
    seg_contact = np.concatenate(segments.contact)
    seg_start = np.maximum(np.concatenate(segments.start), 0.0)
    seg_end = np.minimum(np.concatenate(segments.end), T)
    seg_profile = np.concatenate(segments.profile)
    duration = np.maximum(seg_end - seg_start, 0.0)
    counts = rng.poisson(_PROFILE_RATE[seg_profile] * duration)

    contact = np.repeat(seg_contact, counts)
    time = np.repeat(seg_start, counts) + rng.random(len(contact)) * np.repeat(duration, counts)
    profile = np.repeat(seg_profile, counts)
    type_code = np.empty(len(contact), dtype=np.int64)
    for p in range(len(P.PROFILES)):
        mask = profile == p
        type_code[mask] = rng.choice(len(TOUCHPOINT_TYPES), size=int(mask.sum()), p=_TYPE_PROBS[p])

    # The entry touch: how the contact came in (outbound leads have none).
    persona = contact_frame["_persona"].to_numpy()
    join = contact_frame["_join"].to_numpy()
    source = contact_frame["lead_source"].to_numpy()
    entry_contact, entry_type = [], []
    for src, entry_types in P.ENTRY_TOUCH.items():
        idx = np.flatnonzero((source == src) & (join >= 0) & (persona != "outbound"))
        codes = np.array([_TYPE_INDEX[t] for t in entry_types])
        entry_contact.append(idx)
        entry_type.append(codes[rng.integers(len(codes), size=len(idx))])
    e_contact = np.concatenate(entry_contact)
    touches.add(e_contact, join[e_contact], np.concatenate(entry_type), "awareness")

    contact = np.concatenate([contact, *touches.contact])
    time = np.concatenate([time, *touches.time])
    type_code = np.concatenate([type_code, *touches.type_])
    profile = np.concatenate([profile, *touches.profile])
    keep = (time >= 0.0) & (time < T)
    contact, time, type_code, profile = contact[keep], time[keep], type_code[keep], profile[keep]
    order = np.lexsort((contact, time))
    contact, time, type_code, profile = (
        contact[order],
        time[order],
        type_code[order],
        profile[order],
    )
    n = len(contact)

    topic_fixed = _TOPIC_OF_TYPE[type_code]
    product = np.where(
        topic_fixed >= 0, topic_fixed == 1, rng.random(n) < _PROFILE_PRODUCT[profile]
    )
    topic = np.where(product, "product", "general").astype(object)
    topic[rng.random(n) < P.MISSING_TOPIC_SHARE] = None

    family = _FAMILY_OF_TYPE[type_code]
    channel = np.empty(n, dtype=object)
    for f, name in enumerate(_FAMILIES):
        mask = family == f
        w = np.array(P.CHANNEL_MIX[name])
        channel[mask] = np.array(P.CHANNELS, dtype=object)[
            rng.choice(len(P.CHANNELS), size=int(mask.sum()), p=w / w.sum())
        ]
    channel[rng.random(n) < P.MISSING_CHANNEL_SHARE] = None

    types = np.array(TOUCHPOINT_TYPES, dtype=object)[type_code]
    unknown = rng.random(n) < P.UNKNOWN_TYPE_SHARE
    types[unknown] = np.array(P.UNKNOWN_TYPES, dtype=object)[
        rng.integers(len(P.UNKNOWN_TYPES), size=int(unknown.sum()))
    ]

    numbers = np.arange(counters.touchpoint, counters.touchpoint + n)
    counters.touchpoint += n
    return pd.DataFrame(
        {
            "touchpoint_id": np.char.add("T", np.char.zfill(numbers.astype(str), 10)),
            "contact_id": contact_frame["contact_id"].to_numpy()[contact],
            "occurred_at": time,
            "type": types,
            "channel": channel,
            "topic": topic,
        }
    )


# --- opportunities and episode ids ----------------------------------------------------


def _opportunities(
    rng: np.random.Generator,
    acc: dict[str, np.ndarray],
    opp_parts: list[dict[str, np.ndarray]],
    contact_frame: pd.DataFrame,
    T: float,
    counters: Counters,
) -> pd.DataFrame:
    """Past customers' old wins, buying episodes' deals and tire-kickers' discovery calls."""
    parts = {k: np.concatenate([p[k] for p in opp_parts]) for k in opp_parts[0]}
    order = np.argsort(parts["created"], kind="stable")
    parts = {k: v[order] for k, v in parts.items()}
    n = len(parts["account"])
    numbers = np.arange(counters.opportunity, counters.opportunity + n)
    counters.opportunity += n
    is_closed = parts["closed"] < T
    stage = np.where(~is_closed, "open", np.where(parts["won"], "closed_won", "closed_lost"))
    employees = acc["employees"][parts["account"]]
    amount = np.round(employees * P.DEAL_SIZE_PER_EMPLOYEE * rng.lognormal(0.0, 0.5, n), -2)
    opp_ids = np.array([f"O{k:07d}" for k in numbers])
    contact_ids = contact_frame["contact_id"].to_numpy()
    frame = pd.DataFrame(
        {
            "opportunity_id": opp_ids,
            "account_id": acc["account_id"][parts["account"]],
            "contact_id": _or_none(
                parts["contact"] >= 0, contact_ids[np.maximum(parts["contact"], 0)]
            ),
            "created_at": parts["created"],
            "closed_at": np.where(is_closed, parts["closed"], np.nan),
            "stage": stage,
            "amount": amount,
            "_episode": parts["episode"],
        }
    )
    return frame


def _name_episodes(
    episodes: pd.DataFrame,
    acc: dict[str, np.ndarray],
    opp_frame: pd.DataFrame,
    counters: Counters,
) -> pd.DataFrame:
    """Give episodes global ids and link each to its opportunity, if it has one."""
    n = len(episodes)
    numbers = np.arange(counters.episode, counters.episode + n)
    counters.episode += n
    episodes = episodes.copy()
    episodes["episode_id"] = [f"E{k:07d}" for k in numbers]
    by_local = dict(zip(opp_frame["_episode"], opp_frame["opportunity_id"], strict=True))
    episodes["opportunity_id"] = [by_local.get(k) for k in episodes["_local"]]
    episodes["account_id"] = acc["account_id"][episodes["account"].to_numpy()]
    return episodes
