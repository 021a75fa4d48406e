"""The touchpoint taxonomy (data contract v1) and the enums of contact attributes.

The journey stage of a touchpoint, not its raw count, separates research from intent
to buy: a newsletter signup is awareness, a demo request is decision. Everything that
needs to know which stage a type belongs to asks this module.
"""

from __future__ import annotations

from typing import Final

AWARENESS: Final = "awareness"
CONSIDERATION: Final = "consideration"
DECISION: Final = "decision"
NEGATIVE: Final = "negative"
OTHER: Final = "other"

#: Journey stages in the order a buyer moves through them, then the negative signals
#: and the fallback for types the taxonomy does not know.
STAGES: Final[tuple[str, ...]] = (AWARENESS, CONSIDERATION, DECISION, NEGATIVE, OTHER)

TYPES_BY_STAGE: Final[dict[str, tuple[str, ...]]] = {
    AWARENESS: (
        "page_view",
        "blog_view",
        "content_download",
        "newsletter_signup",
        "ad_click",
        "social_engagement",
        "email_open",
    ),
    CONSIDERATION: (
        "webinar_registration",
        "webinar_attendance",
        "product_page_view",
        "case_study_download",
        "comparison_guide_download",
        "roi_calculator",
        "email_click",
        "event_attendance",
    ),
    DECISION: (
        "pricing_page_view",
        "demo_request",
        "contact_sales",
        "trial_signup",
        "meeting",
        "reference_request",
    ),
    NEGATIVE: ("unsubscribe", "email_bounce", "careers_page_view"),
    OTHER: ("other",),
}

#: Every known touchpoint type, in taxonomy order (stable: feature columns use it).
TOUCHPOINT_TYPES: Final[tuple[str, ...]] = tuple(
    t for stage in STAGES for t in TYPES_BY_STAGE[stage]
)

STAGE_OF_TYPE: Final[dict[str, str]] = {
    t: stage for stage, types in TYPES_BY_STAGE.items() for t in types
}

#: Touchpoint topics: a product webinar signals more intent than an industry one.
TOPICS: Final[tuple[str, ...]] = ("product", "general")

SENIORITY_LEVELS: Final[tuple[str, ...]] = (
    "c_level",
    "vp",
    "director",
    "manager",
    "individual",
    "unknown",
)

DEPARTMENTS: Final[tuple[str, ...]] = (
    "executive",
    "it",
    "engineering",
    "finance",
    "operations",
    "marketing",
    "sales",
    "procurement",
    "legal",
    "hr",
    "other",
    "unknown",
)

OPPORTUNITY_STAGES: Final[tuple[str, ...]] = ("open", "closed_won", "closed_lost")
CLOSED_STAGES: Final[tuple[str, ...]] = ("closed_won", "closed_lost")
