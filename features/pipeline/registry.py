"""Every model feature: its name, a human-readable label and its exact definition.

This is the one place a feature is described. The kernel (`features.pipeline.kernel`) computes
exactly these columns, in this order; explanations and importance reports show the
labels; `docs/features.md` is generated from the definitions. A test holds the kernel
and the registry to each other.

All features of a (contact, as_of) snapshot use only data dated at or before as_of.
A window of N days is the half-open interval (as_of - N days, as_of].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Family = Literal["engagement", "committee", "fit"]
Kind = Literal["numeric", "categorical"]

WINDOWS_DAYS: Final[tuple[int, ...]] = (7, 30, 90, 365)
#: stages counted per window (negative signals have their own features)
COUNTED_STAGES: Final[tuple[str, ...]] = ("awareness", "consideration", "decision")
#: high-signal touchpoint types counted per window, with their plural labels
KEY_TYPES: Final[dict[str, str]] = {
    "demo_request": "Demo requests",
    "pricing_page_view": "Pricing page views",
    "contact_sales": "Contact-sales requests",
    "trial_signup": "Trial signups",
    "meeting": "Meetings",
    "webinar_attendance": "Webinars attended",
    "case_study_download": "Case study downloads",
    "roi_calculator": "ROI calculator uses",
}
DECAY_HALF_LIFE_DAYS: Final = 30.0
#: the window of diversity, topic share and the committee's 90-day signals
MID_WINDOW_DAYS: Final = 90


@dataclass(frozen=True)
class FeatureDef:
    """One model input."""

    name: str
    label: str
    definition: str
    family: Family
    kind: Kind = "numeric"


def _window_label(days: int) -> str:
    return "in the last 7 days" if days == 7 else f"in the last {days} days"


def _engagement() -> list[FeatureDef]:
    out: list[FeatureDef] = []
    for w in WINDOWS_DAYS:
        out.append(
            FeatureDef(
                f"touches_{w}d",
                f"All touchpoints {_window_label(w)}",
                f"Touchpoints of the contact in the last {w} days.",
                "engagement",
            )
        )
        for stage in COUNTED_STAGES:
            out.append(
                FeatureDef(
                    f"{stage}_touches_{w}d",
                    f"{stage.capitalize()}-stage actions {_window_label(w)}",
                    f"Touchpoints of the contact in the last {w} days whose type belongs to the "
                    f"{stage} stage of the taxonomy.",
                    "engagement",
                )
            )
        for type_, label in KEY_TYPES.items():
            out.append(
                FeatureDef(
                    f"{type_}_{w}d",
                    f"{label} {_window_label(w)}",
                    f"Touchpoints of type {type_} in the last {w} days.",
                    "engagement",
                )
            )
    for stage in ("all", *COUNTED_STAGES):
        name = "touches_decayed" if stage == "all" else f"{stage}_touches_decayed"
        what = "all touchpoints" if stage == "all" else f"{stage}-stage touchpoints"
        out.append(
            FeatureDef(
                name,
                f"Recency-weighted {what}",
                f"Sum over the contact's {what} up to as_of of 0.5^(age in days / "
                f"{DECAY_HALF_LIFE_DAYS:g}): a touch today counts 1, one {DECAY_HALF_LIFE_DAYS:g} "
                "days old counts 0.5.",
                "engagement",
            )
        )
    out += [
        FeatureDef("days_since_first_touch", "Days since the first touchpoint",
                   "Days from the contact's first touchpoint to as_of; empty without one.", "engagement"),
        FeatureDef("days_since_last_touch", "Days since the last touchpoint",
                   "Days from the contact's latest touchpoint at or before as_of; empty without one.",
                   "engagement"),
        FeatureDef("days_since_last_decision_touch", "Days since the last decision-stage action",
                   "Days from the contact's latest decision-stage touchpoint; empty without one.",
                   "engagement"),
        FeatureDef("velocity_30d", "Engagement trend (last 30 days vs the 60 before)",
                   "log((touches in the last 30 days + 1) / (touches in the 60 days before / 2 + 1)): "
                   "above 0 when the contact is speeding up.", "engagement"),
        FeatureDef("distinct_types_90d", "Different kinds of actions in the last 90 days",
                   "Distinct touchpoint types of the contact in the last 90 days.", "engagement"),
        FeatureDef("distinct_channels_90d", "Different channels in the last 90 days",
                   "Distinct non-empty channels of the contact's touchpoints in the last 90 days.",
                   "engagement"),
        FeatureDef("product_topic_share_90d", "Share of product (vs general) content, last 90 days",
                   "Product-topic touchpoints / touchpoints with a topic, last 90 days; empty when "
                   "none had a topic.", "engagement"),
        FeatureDef("unsubscribed", "Has unsubscribed",
                   "1 when the contact has an unsubscribe touchpoint at or before as_of.", "engagement"),
        FeatureDef("email_bounced", "Email has bounced",
                   "1 when the contact has an email_bounce touchpoint at or before as_of.", "engagement"),
        FeatureDef("careers_page_views_365d", "Careers page views in the last 365 days",
                   "careers_page_view touchpoints in the last 365 days (job seekers, not buyers).",
                   "engagement"),
        FeatureDef("first_touch_type", "How the contact first engaged",
                   "Type of the contact's first touchpoint, when it is at or before as_of.",
                   "engagement", "categorical"),
        FeatureDef("lead_source", "Lead source", "The contact's lead_source as the CRM has it.",
                   "engagement", "categorical"),
        FeatureDef("lead_age_days", "Days since the lead entered the CRM",
                   "Days from the contact's created_at to as_of.", "engagement"),
    ]  # fmt: skip
    return out


def _committee() -> list[FeatureDef]:
    d = "Empty for a contact without an account."
    return [
        FeatureDef("account_engaged_contacts_30d", "People at the account engaged in the last 30 days",
                   f"Distinct contacts of the account with a touchpoint in the last 30 days. {d}", "committee"),
        FeatureDef("account_engaged_contacts_90d", "People at the account engaged in the last 90 days",
                   f"Distinct contacts of the account with a touchpoint in the last 90 days. {d}", "committee"),
        FeatureDef("account_departments_engaged_90d", "Departments engaged at the account, last 90 days",
                   f"Distinct known departments among the account's contacts engaged in the last 90 days. {d}",
                   "committee"),
        FeatureDef("account_seniority_levels_engaged_90d", "Seniority levels engaged at the account, last 90 days",
                   f"Distinct known seniority levels among the account's contacts engaged in the last 90 days. {d}",
                   "committee"),
        FeatureDef("account_decision_maker_engaged_90d", "A decision maker (C-level or VP) is engaged",
                   f"1 when a c_level or vp contact of the account was engaged in the last 90 days. {d}",
                   "committee"),
        FeatureDef("account_finance_engaged_90d", "Finance is engaged",
                   f"1 when a finance contact of the account was engaged in the last 90 days. {d}", "committee"),
        FeatureDef("account_procurement_legal_engaged_90d", "Procurement or legal is engaged",
                   f"1 when a procurement or legal contact of the account was engaged in the last 90 days. {d}",
                   "committee"),
        FeatureDef("account_decision_touches_30d", "Decision-stage actions at the account, last 30 days",
                   f"Decision-stage touchpoints of all the account's contacts in the last 30 days. {d}",
                   "committee"),
        FeatureDef("account_decision_touches_90d", "Decision-stage actions at the account, last 90 days",
                   f"Decision-stage touchpoints of all the account's contacts in the last 90 days. {d}",
                   "committee"),
        FeatureDef("contact_share_of_account_touches_90d", "This contact's share of the account's activity",
                   "The contact's touchpoints / all the account's touchpoints, last 90 days; empty when the "
                   f"account had none. {d}", "committee"),
        FeatureDef("account_new_contacts_30d", "People at the account who engaged for the first time, last 30 days",
                   f"Contacts of the account whose first touchpoint falls in the last 30 days. {d}", "committee"),
        FeatureDef("account_won_deals", "Deals the account has won before",
                   f"Opportunities of the account closed as won at or before as_of. {d}", "committee"),
        FeatureDef("account_lost_deals", "Deals the account has lost before",
                   f"Opportunities of the account closed as lost at or before as_of. {d}", "committee"),
        FeatureDef("days_since_account_last_won", "Days since the account last bought",
                   f"Days from the account's latest won close to as_of; empty when it never won. {d}",
                   "committee"),
    ]  # fmt: skip


def _fit() -> list[FeatureDef]:
    return [
        FeatureDef("industry", "Industry", "The account's industry as the CRM has it.", "fit", "categorical"),
        FeatureDef("employees_band", "Company size band",
                   "Ordinal band of the account's employees: 0 = 1-10, 1 = 11-50, 2 = 51-200, 3 = 201-1,000, "
                   "4 = 1,001-5,000, 5 = 5,001-10,000, 6 = over 10,000; empty when unknown.", "fit"),
        FeatureDef("revenue_band", "Annual revenue band",
                   "Ordinal band of annual revenue: 0 = under 1M, 1 = 1-10M, 2 = 10-50M, 3 = 50-100M, "
                   "4 = 100-500M, 5 = 500M-1B, 6 = over 1B; empty when unknown.", "fit"),
        FeatureDef("country", "Country", "The account's country as the CRM has it.", "fit", "categorical"),
        FeatureDef("seniority", "Seniority", "The contact's seniority (derived from the job title when "
                   "the CRM leaves it empty).", "fit", "categorical"),
        FeatureDef("department", "Department", "The contact's department (derived from the job title "
                   "when the CRM leaves it empty).", "fit", "categorical"),
        FeatureDef("free_mail", "Uses a free email address",
                   "1 when the email domain is a free-mail provider (gmail.com, mail.ru, ...), 0 for a "
                   "company domain, empty without an email.", "fit"),
    ]  # fmt: skip


FEATURES: Final[tuple[FeatureDef, ...]] = (*_engagement(), *_committee(), *_fit())
FEATURES_BY_NAME: Final[dict[str, FeatureDef]] = {f.name: f for f in FEATURES}
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
CATEGORICAL: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.kind == "categorical")
NUMERIC: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.kind == "numeric")


def label(name: str) -> str:
    """The human-readable label of a feature (the name itself for unknown names)."""
    feature = FEATURES_BY_NAME.get(name)
    return feature.label if feature else name


def markdown() -> str:
    """The feature reference (docs/features.md), generated so that it never drifts."""
    lines = [
        "# Features",
        "",
        "Generated from `features/pipeline/registry.py` by `python -m features.pipeline.registry > docs/features.md`;",
        "a test fails when this page and the registry disagree.",
        "",
        "Every feature of a (contact, as_of) snapshot uses only data dated at or before as_of.",
        "A window of N days is the half-open interval (as_of - N days, as_of]. Numeric features",
        "are empty (NaN) where undefined; categorical ones are text.",
        "",
    ]
    titles = {"engagement": "Engagement of the contact", "committee": "Buying committee of the account",
              "fit": "Fit"}  # fmt: skip
    for family, title in titles.items():
        members = [f for f in FEATURES if f.family == family]
        lines += [
            f"## {title} ({len(members)})",
            "",
            "| name | label | definition |",
            "|---|---|---|",
        ]
        lines += [f"| `{f.name}` | {f.label} | {f.definition} |" for f in members]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
