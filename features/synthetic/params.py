"""The synthetic world's parameters: firmographics, personas, titles and activity mixes.

Every number here is a modelling choice documented in `docs/generator.md`. They are
set so that the story is plausible for a B2B software vendor selling to mid-market
companies: a clear ideal customer profile, buying committees of three to eight people,
sales cycles of one to four months, and most leads never buying anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from features.crm.taxonomy import TOUCHPOINT_TYPES


@dataclass(frozen=True)
class GeneratorConfig:
    """What `leadscore generate` varies; the rest of the world is fixed below."""

    accounts: int = 2_000
    seed: int = 0
    start: str = "2024-01-01"
    months: int = 24
    #: accounts simulated together; bounds memory. Part of the output's identity:
    #: the same seed and chunk size give the same CRM.
    chunk_accounts: int = 5_000


# --- firmographics ------------------------------------------------------------------
# (industry, share of accounts, fit effect on the log-odds scale, revenue per employee)
INDUSTRIES: Final = (
    ("software", 0.16, 1.0, 220_000),
    ("financial_services", 0.10, 0.8, 300_000),
    ("manufacturing", 0.12, 0.4, 180_000),
    ("healthcare", 0.09, 0.2, 150_000),
    ("retail", 0.10, -0.2, 160_000),
    ("logistics", 0.07, 0.3, 170_000),
    ("telecommunications", 0.05, 0.5, 260_000),
    ("professional_services", 0.09, 0.1, 140_000),
    ("education", 0.07, -0.9, 80_000),
    ("government", 0.05, -0.7, 100_000),
    ("media", 0.05, -0.3, 160_000),
    ("energy", 0.05, 0.2, 350_000),
)

# (country, share, fit effect): the vendor sells in North America and Europe first.
COUNTRIES: Final = (
    ("US", 0.30, 0.4),
    ("GB", 0.10, 0.4),
    ("DE", 0.10, 0.3),
    ("FR", 0.06, 0.1),
    ("NL", 0.05, 0.3),
    ("SE", 0.03, 0.3),
    ("CA", 0.05, 0.3),
    ("AU", 0.04, 0.2),
    ("RU", 0.08, -0.2),
    ("IN", 0.08, -0.5),
    ("BR", 0.05, -0.4),
    ("ES", 0.03, 0.0),
    ("PL", 0.03, 0.0),
)

#: log10(employees) of the sweet spot and its width: mid-market, 200 to 5,000 people.
SIZE_SWEET_SPOT: Final = 2.9
SIZE_WIDTH: Final = 0.9
FIT_INTERCEPT: Final = -0.6
FIT_NOISE: Final = 0.5

MISSING_SHARE: Final = {
    "industry": 0.03,
    "employees": 0.06,
    "annual_revenue": 0.10,
    "country": 0.02,
}

#: share of accounts that bought before the data starts (repeat leads come from them)
PAST_CUSTOMER_SHARE: Final = 0.06

# --- buying episodes ------------------------------------------------------------------
#: in-market episodes per account-year: base + slope * fit (+ past customers)
EPISODE_RATE_BASE: Final = 0.12
EPISODE_RATE_FIT: Final = 0.60
EPISODE_RATE_PAST_CUSTOMER: Final = 0.35
#: mean days spent in awareness and consideration (gamma, shape 2)
AWARENESS_DAYS: Final = 25.0
CONSIDERATION_DAYS: Final = 40.0
#: probability of moving on: base + slope * fit
P_CONSIDER: Final = (0.30, 0.50)
P_DECIDE: Final = (0.20, 0.55)
P_DECIDE_PAST_CUSTOMER: Final = 0.10
#: days from the decision stage to the opportunity, and the sales cycle (lognormal)
OPPORTUNITY_DELAY_DAYS: Final = 7.0
SALES_CYCLE_MEDIAN_DAYS: Final = 45.0
SALES_CYCLE_SIGMA: Final = 0.55
#: the win model, on the log-odds scale
WIN_INTERCEPT: Final = -1.0
WIN_FIT: Final = 3.0
WIN_COVERAGE: Final = 2.6
WIN_PAST_CUSTOMER: Final = 0.9
WIN_NOISE: Final = 0.5
DEAL_SIZE_PER_EMPLOYEE: Final = 40.0

# --- committee roles ------------------------------------------------------------------
ROLES: Final = ("initiator", "user", "finance", "executive", "procurement")
NOISE_PERSONAS: Final = ("newsletter", "student", "tire_kicker", "outbound", "customer")
PERSONAS: Final = ROLES + NOISE_PERSONAS
PERSONA_INDEX: Final = {p: i for i, p in enumerate(PERSONAS)}

#: (seniority, department, share) per persona; titles are drawn from these.
PERSONA_JOBS: Final[dict[str, tuple[tuple[str, str, float], ...]]] = {
    "initiator": (
        ("director", "it", 0.25),
        ("manager", "it", 0.20),
        ("director", "operations", 0.15),
        ("manager", "engineering", 0.15),
        ("vp", "engineering", 0.10),
        ("manager", "marketing", 0.15),
    ),
    "user": (
        ("individual", "engineering", 0.30),
        ("individual", "it", 0.25),
        ("manager", "operations", 0.15),
        ("individual", "marketing", 0.15),
        ("manager", "sales", 0.15),
    ),
    "finance": (
        ("director", "finance", 0.45),
        ("manager", "finance", 0.35),
        ("vp", "finance", 0.20),
    ),
    "executive": (
        ("c_level", "executive", 0.35),
        ("c_level", "it", 0.20),
        ("c_level", "engineering", 0.15),
        ("vp", "operations", 0.15),
        ("c_level", "finance", 0.15),
    ),
    "procurement": (
        ("manager", "procurement", 0.55),
        ("individual", "procurement", 0.25),
        ("individual", "legal", 0.20),
    ),
    "newsletter": (
        ("individual", "marketing", 0.30),
        ("manager", "marketing", 0.20),
        ("individual", "sales", 0.15),
        ("individual", "operations", 0.15),
        ("individual", "hr", 0.10),
        ("manager", "other", 0.10),
    ),
    "student": (("individual", "other", 1.0),),
    "tire_kicker": (
        ("c_level", "executive", 0.35),
        ("individual", "engineering", 0.25),
        ("manager", "it", 0.20),
        ("individual", "sales", 0.20),
    ),
    "customer": (
        ("individual", "engineering", 0.35),
        ("manager", "it", 0.35),
        ("individual", "operations", 0.30),
    ),
    "outbound": (
        ("director", "it", 0.30),
        ("vp", "engineering", 0.20),
        ("director", "operations", 0.25),
        ("c_level", "executive", 0.25),
    ),
}

_EN_SENIORITY: Final = {
    "c_level": ("Chief {dept_word} Officer", "{cx}"),
    "vp": ("VP {Dept}", "Vice President of {Dept}"),
    "director": ("Director of {Dept}", "{Dept} Director", "Head of {Dept}"),
    "manager": ("{Dept} Manager", "{Dept} Team Lead", "Senior {Dept} Manager"),
    "individual": ("{ic}",),
}
_EN_DEPT: Final = {
    "it": ("IT", "Information", "CIO", ("Systems Administrator", "IT Specialist")),
    "engineering": (
        "Engineering",
        "Technology",
        "CTO",
        ("Software Engineer", "Senior Developer", "DevOps Engineer", "Data Engineer"),
    ),
    "operations": (
        "Operations",
        "Operating",
        "COO",
        ("Operations Analyst", "Operations Coordinator"),
    ),
    "marketing": ("Marketing", "Marketing", "CMO", ("Marketing Specialist", "Content Specialist")),
    "sales": ("Sales", "Revenue", "CRO", ("Account Executive", "Sales Representative")),
    "finance": ("Finance", "Financial", "CFO", ("Financial Analyst", "Accountant")),
    "procurement": ("Procurement", "Procurement", "CPO", ("Procurement Specialist", "Buyer")),
    "legal": ("Legal", "Legal", "CLO", ("Corporate Counsel", "Legal Counsel")),
    "hr": ("HR", "People", "CHRO", ("HR Specialist", "Recruiter")),
    "executive": ("", "Executive", "CEO", ("Founder",)),
    "other": ("Office", "Administrative", "CEO", ("Office Assistant", "Coordinator")),
}
#: Russian titles as a Bitrix24 export would carry them.
_RU_TITLES: Final = {
    ("c_level", "executive"): ("Генеральный директор", "Основатель"),
    ("c_level", "it"): ("ИТ-директор",),
    ("c_level", "engineering"): ("Технический директор",),
    ("c_level", "finance"): ("Финансовый директор",),
    ("vp", "finance"): ("Заместитель генерального директора по финансам",),
    ("vp", "engineering"): ("Вице-президент по разработке",),
    ("vp", "operations"): ("Вице-президент по операционной деятельности",),
    ("director", "it"): ("Руководитель ИТ-отдела", "Директор по информационным технологиям"),
    ("director", "operations"): ("Директор по производству",),
    ("director", "finance"): ("Главный бухгалтер",),
    ("manager", "it"): ("Начальник отдела ИТ",),
    ("manager", "engineering"): ("Тимлид команды разработки",),
    ("manager", "marketing"): ("Менеджер по маркетингу",),
    ("manager", "operations"): ("Начальник производства",),
    ("manager", "finance"): ("Начальник финансового отдела",),
    ("manager", "procurement"): ("Начальник отдела закупок",),
    ("manager", "sales"): ("Начальник отдела продаж",),
    ("manager", "other"): ("Офис-менеджер",),
    ("individual", "engineering"): ("Инженер-программист", "Разработчик"),
    ("individual", "it"): ("Системный администратор",),
    ("individual", "marketing"): ("Маркетолог",),
    ("individual", "sales"): ("Менеджер по продажам",),
    ("individual", "operations"): ("Специалист по логистике",),
    ("individual", "procurement"): ("Специалист по закупкам",),
    ("individual", "legal"): ("Юрист",),
    ("individual", "hr"): ("Специалист по кадрам",),
    ("individual", "other"): ("Студент",),
}
STUDENT_TITLES: Final = (
    "Student",
    "MBA Candidate",
    "Graduate Student",
    "Intern",
    "Looking for new opportunities",
    "Студент",
)


def job_title(seniority: str, department: str, russian: bool, rng: np.random.Generator) -> str:
    """A plausible title for a seniority and department, in English or Russian."""
    if russian and (seniority, department) in _RU_TITLES:
        options = _RU_TITLES[(seniority, department)]
        return str(options[rng.integers(len(options))])
    dept, dept_word, cx, ics = _EN_DEPT[department]
    templates = _EN_SENIORITY[seniority]
    template = templates[rng.integers(len(templates))]
    return template.format(Dept=dept, dept_word=dept_word, cx=cx, ic=ics[rng.integers(len(ics))])


# --- contacts ---------------------------------------------------------------------------
LEAD_SOURCES: Final = ("web_form", "outbound", "event", "referral", "partner", "paid_ads")
#: lead source shares per persona (same order as LEAD_SOURCES)
LEAD_SOURCE_MIX: Final[dict[str, tuple[float, ...]]] = {
    "initiator": (0.50, 0.10, 0.10, 0.10, 0.07, 0.13),
    "user": (0.45, 0.25, 0.10, 0.15, 0.02, 0.03),
    "finance": (0.25, 0.50, 0.05, 0.20, 0.00, 0.00),
    "executive": (0.20, 0.45, 0.10, 0.25, 0.00, 0.00),
    "procurement": (0.15, 0.70, 0.00, 0.15, 0.00, 0.00),
    "newsletter": (0.75, 0.00, 0.05, 0.00, 0.00, 0.20),
    "student": (0.80, 0.00, 0.10, 0.00, 0.00, 0.10),
    "tire_kicker": (0.70, 0.00, 0.05, 0.00, 0.00, 0.25),
    "outbound": (0.00, 1.00, 0.00, 0.00, 0.00, 0.00),
    "customer": (0.30, 0.10, 0.10, 0.30, 0.20, 0.00),
}
FREE_MAIL_SHARE: Final = {
    "initiator": 0.06,
    "user": 0.06,
    "finance": 0.03,
    "executive": 0.03,
    "procurement": 0.02,
    "newsletter": 0.35,
    "student": 0.90,
    "tire_kicker": 0.45,
    "outbound": 0.0,
    "customer": 0.03,
}
FREE_MAIL_DOMAINS: Final = ("gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "gmx.de")
RU_FREE_MAIL_DOMAINS: Final = ("mail.ru", "yandex.ru")
MISSING_TITLE_SHARE: Final = 0.12
#: initiators of a buying episode whom the CRM never links to their account (free mail,
#: no company in the form): real leads arrive so, and they do buy (as the deal's primary
#: contact). About 5 % of all contacts end up without an account (students included).
UNLINKED_INITIATOR_SHARE: Final = 0.15
MISSING_EMAIL_SHARE: Final = 0.05
#: share of contacts whose seniority/department columns were filled by an enrichment
#: tool; the rest leave them empty and the loader derives them from the title.
ENRICHED_SHARE: Final = 0.35
RUSSIAN_TITLE_SHARE_RU: Final = 0.85

#: noise contacts per account-year (students: per account-year, without an account)
NEWSLETTER_PER_ACCOUNT_YEAR: Final = 0.45
OUTBOUND_PER_ACCOUNT_YEAR: Final = 0.40
TIRE_KICKER_PER_POOR_FIT_ACCOUNT_YEAR: Final = 0.15
TIRE_KICKER_FIT_BELOW: Final = 0.35
STUDENTS_PER_ACCOUNT_YEAR: Final = 0.03
#: contacts of a past customer who keep reading (1 + Poisson of this)
CUSTOMER_CONTACTS: Final = 1.0
#: tire-kickers who get a discovery call (an opportunity) and their (tiny) win chance
TIRE_KICKER_OPPORTUNITY_SHARE: Final = 0.30
TIRE_KICKER_WIN_PROBABILITY: Final = 0.03

# --- touchpoints ------------------------------------------------------------------------
#: touches per contact-day by activity profile
PROFILE_RATES: Final[dict[str, float]] = {
    "awareness": 0.35,
    "consideration_user": 0.42,
    "consideration_exec": 0.12,
    "decision_user": 0.60,
    "decision_finance": 0.35,
    "decision_exec": 0.20,
    "decision_procurement": 0.25,
    "newsletter": 0.13,
    "student": 0.15,
    "tire_kicker": 0.50,
    "outbound": 0.01,
    "customer": 0.03,
}

#: the mix of touchpoint types per activity profile (relative weights)
PROFILE_MIX: Final[dict[str, dict[str, float]]] = {
    "awareness": {
        "page_view": 30, "blog_view": 24, "content_download": 8, "newsletter_signup": 2,
        "ad_click": 9, "social_engagement": 5, "email_open": 14, "webinar_registration": 3,
        "product_page_view": 4, "email_click": 1,
    },
    "consideration_user": {
        "product_page_view": 20, "webinar_registration": 6, "webinar_attendance": 5,
        "case_study_download": 6, "comparison_guide_download": 5, "email_click": 8,
        "email_open": 12, "page_view": 14, "blog_view": 8, "event_attendance": 2,
        "trial_signup": 2, "pricing_page_view": 4, "roi_calculator": 1, "content_download": 4,
    },
    "consideration_exec": {
        "case_study_download": 10, "page_view": 15, "email_open": 15, "event_attendance": 5,
        "product_page_view": 10, "pricing_page_view": 5, "roi_calculator": 3,
        "comparison_guide_download": 5, "blog_view": 6,
    },
    "decision_user": {
        "pricing_page_view": 12, "demo_request": 2, "trial_signup": 5, "product_page_view": 20,
        "meeting": 10, "email_click": 8, "email_open": 10, "contact_sales": 2,
        "webinar_attendance": 3, "page_view": 10, "case_study_download": 3,
    },
    "decision_finance": {
        "pricing_page_view": 25, "roi_calculator": 14, "meeting": 10, "email_open": 15,
        "case_study_download": 5, "page_view": 10, "reference_request": 2, "email_click": 4,
    },
    "decision_exec": {
        "meeting": 25, "reference_request": 8, "pricing_page_view": 10, "email_open": 15,
        "case_study_download": 8, "page_view": 10, "contact_sales": 3, "email_click": 4,
    },
    "decision_procurement": {
        "meeting": 20, "email_open": 25, "pricing_page_view": 10, "page_view": 15,
        "contact_sales": 4, "email_click": 6,
    },
    "newsletter": {
        "email_open": 55, "blog_view": 20, "email_click": 8, "page_view": 10,
        "content_download": 4, "social_engagement": 3, "webinar_registration": 1,
    },
    "student": {
        "blog_view": 25, "careers_page_view": 18, "content_download": 20, "page_view": 20,
        "webinar_registration": 8, "social_engagement": 5, "product_page_view": 3,
        "webinar_attendance": 2,
    },
    "tire_kicker": {
        "demo_request": 6, "pricing_page_view": 20, "product_page_view": 25, "page_view": 20,
        "trial_signup": 8, "contact_sales": 4, "email_open": 5, "blog_view": 5,
    },
    "outbound": {"email_open": 70, "email_click": 8, "page_view": 15, "blog_view": 7},
    "customer": {
        "email_open": 40, "blog_view": 15, "page_view": 20, "webinar_attendance": 8,
        "product_page_view": 12, "event_attendance": 5,
    },
}  # fmt: skip
PROFILES: Final = tuple(PROFILE_MIX)
PROFILE_INDEX: Final = {p: i for i, p in enumerate(PROFILES)}

#: share of product-topic touches per profile (for types that carry a topic)
PROFILE_PRODUCT_TOPIC: Final[dict[str, float]] = {
    "awareness": 0.25,
    "consideration_user": 0.70,
    "consideration_exec": 0.60,
    "decision_user": 0.85,
    "decision_finance": 0.80,
    "decision_exec": 0.75,
    "decision_procurement": 0.70,
    "newsletter": 0.15,
    "student": 0.10,
    "tire_kicker": 0.70,
    "outbound": 0.30,
    "customer": 0.50,
}
#: types whose topic is fixed by what they are
PRODUCT_TYPES: Final = (
    "product_page_view",
    "pricing_page_view",
    "demo_request",
    "trial_signup",
    "roi_calculator",
    "comparison_guide_download",
)
GENERAL_TYPES: Final = ("careers_page_view", "newsletter_signup", "unsubscribe", "email_bounce")
MISSING_TOPIC_SHARE: Final = 0.08

#: channels per type family: (channel, weight) pairs
CHANNELS: Final = ("organic", "paid_search", "social", "email", "direct", "referral", "event")
CHANNEL_MIX: Final[dict[str, tuple[float, ...]]] = {
    "web": (0.40, 0.15, 0.10, 0.10, 0.20, 0.05, 0.00),
    "email": (0.00, 0.00, 0.00, 1.00, 0.00, 0.00, 0.00),
    "ad": (0.00, 0.65, 0.35, 0.00, 0.00, 0.00, 0.00),
    "social": (0.00, 0.00, 1.00, 0.00, 0.00, 0.00, 0.00),
    "sales": (0.00, 0.00, 0.00, 0.30, 0.70, 0.00, 0.00),
    "event": (0.00, 0.00, 0.00, 0.00, 0.00, 0.00, 1.00),
}
CHANNEL_FAMILY: Final = {
    "email_open": "email", "email_click": "email", "unsubscribe": "email",
    "email_bounce": "email", "newsletter_signup": "web", "ad_click": "ad",
    "social_engagement": "social", "meeting": "sales", "reference_request": "sales",
    "contact_sales": "web", "event_attendance": "event",
}  # fmt: skip
MISSING_CHANNEL_SHARE: Final = 0.05

#: a share of touches arrive with a type this taxonomy does not know
UNKNOWN_TYPE_SHARE: Final = 0.003
UNKNOWN_TYPES: Final = ("chat_started", "g2_review_view", "podcast_listen", "Webinar No-Show")

#: first touch when a contact enters the CRM, by lead source
ENTRY_TOUCH: Final = {
    "web_form": ("content_download", "webinar_registration", "newsletter_signup"),
    "paid_ads": ("ad_click",),
    "event": ("event_attendance",),
    "referral": ("meeting",),
    "partner": ("webinar_attendance",),
}

#: share of newsletter readers who unsubscribe, outbound leads whose address bounces
UNSUBSCRIBE_SHARE: Final = 0.15
BOUNCE_SHARE: Final = 0.08


def type_probabilities() -> np.ndarray:
    """Profile x type matrix of probabilities, rows summing to one (taxonomy order)."""
    matrix = np.zeros((len(PROFILES), len(TOUCHPOINT_TYPES)))
    index = {t: i for i, t in enumerate(TOUCHPOINT_TYPES)}
    for p, mix in enumerate(PROFILE_MIX.values()):
        for type_, weight in mix.items():
            matrix[p, index[type_]] = weight
    return matrix / matrix.sum(axis=1, keepdims=True)
