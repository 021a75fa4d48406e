"""Every model feature: its name, a human-readable label and its exact definition.

This is the one place a feature is described. The kernel (`features.pipeline.kernel`) computes
exactly these columns, in this order; explanations and importance reports show the
labels; `docs/features.md` is generated from the definitions. A test holds the kernel
and the registry to each other.

All features of a (contact, as_of) snapshot use only data dated at or before as_of.
A window of N days is the half-open interval (as_of - N days, as_of].
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
#: the same in Russian (the workspace speaks English and Russian)
KEY_TYPES_RU: Final[dict[str, str]] = {
    "demo_request": "Запросы демо",
    "pricing_page_view": "Просмотры страницы цен",
    "contact_sales": "Обращения в отдел продаж",
    "trial_signup": "Регистрации на пробный период",
    "meeting": "Встречи",
    "webinar_attendance": "Посещённые вебинары",
    "case_study_download": "Скачивания кейсов",
    "roi_calculator": "Использования ROI-калькулятора",
}
STAGES_RU: Final[dict[str, str]] = {
    "awareness": "Осведомлённость",
    "consideration": "Рассмотрение",
    "decision": "Решение",
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
    label_ru: str = ""
    definition_ru: str = ""


def _window_label(days: int) -> str:
    return "in the last 7 days" if days == 7 else f"in the last {days} days"


def _window_ru(days: int) -> str:
    return f"за последние {days} дней"


def _engagement() -> list[FeatureDef]:
    out: list[FeatureDef] = []
    for w in WINDOWS_DAYS:
        out.append(
            FeatureDef(
                f"touches_{w}d",
                f"All touchpoints {_window_label(w)}",
                f"Touchpoints of the contact in the last {w} days.",
                "engagement",
                label_ru=f"Все касания {_window_ru(w)}",
                definition_ru=f"Касания контакта за последние {w} дней.",
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
                    label_ru=f"Действия этапа «{STAGES_RU[stage]}» {_window_ru(w)}",
                    definition_ru=f"Касания контакта за последние {w} дней, тип которых "
                    f"относится к этапу «{STAGES_RU[stage]}» таксономии.",
                )
            )
        for type_, label in KEY_TYPES.items():
            out.append(
                FeatureDef(
                    f"{type_}_{w}d",
                    f"{label} {_window_label(w)}",
                    f"Touchpoints of type {type_} in the last {w} days.",
                    "engagement",
                    label_ru=f"{KEY_TYPES_RU[type_]} {_window_ru(w)}",
                    definition_ru=f"Касания типа {type_} за последние {w} дней.",
                )
            )
    for stage in ("all", *COUNTED_STAGES):
        name = "touches_decayed" if stage == "all" else f"{stage}_touches_decayed"
        what = "all touchpoints" if stage == "all" else f"{stage}-stage touchpoints"
        what_ru = "все касания" if stage == "all" else f"действия этапа «{STAGES_RU[stage]}»"
        out.append(
            FeatureDef(
                name,
                f"Recency-weighted {what}",
                f"Sum over the contact's {what} up to as_of of 0.5^(age in days / "
                f"{DECAY_HALF_LIFE_DAYS:g}): a touch today counts 1, one {DECAY_HALF_LIFE_DAYS:g} "
                "days old counts 0.5.",
                "engagement",
                label_ru=f"{what_ru[0].upper()}{what_ru[1:]} с весом по давности",
                definition_ru=f"Сумма по касаниям ({what_ru}) контакта до as_of величин "
                f"0,5^(возраст в днях / {DECAY_HALF_LIFE_DAYS:g}): касание сегодня весит 1, "
                f"касание {DECAY_HALF_LIFE_DAYS:g}-дневной давности весит 0,5.",
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


_D_RU = "Пусто для контакта без компании."
#: Russian label and definition of the features written out one by one above
_RUSSIAN: Final[dict[str, tuple[str, str]]] = {
    "days_since_first_touch": (
        "Дней с первого касания",
        "Дней от первого касания контакта до as_of; пусто, если касаний не было.",
    ),
    "days_since_last_touch": (
        "Дней с последнего касания",
        "Дней от последнего касания контакта не позже as_of; пусто, если касаний не было.",
    ),
    "days_since_last_decision_touch": (
        "Дней с последнего действия этапа «Решение»",
        "Дней от последнего касания этапа «Решение»; пусто, если его не было.",
    ),
    "velocity_30d": (
        "Динамика вовлечённости (30 дней против 60 до них)",
        "log((касания за 30 дней + 1) / (касания за 60 дней до них / 2 + 1)): больше 0, когда контакт ускоряется.",
    ),
    "distinct_types_90d": (
        "Разных видов действий за последние 90 дней",
        "Различных типов касаний контакта за последние 90 дней.",
    ),
    "distinct_channels_90d": (
        "Разных каналов за последние 90 дней",
        "Различных непустых каналов касаний контакта за последние 90 дней.",
    ),
    "product_topic_share_90d": (
        "Доля продуктового (а не общего) контента, 90 дней",
        "Касания с темой «продукт» / касания с темой, за последние 90 дней; пусто, если темы не было ни у одного.",
    ),
    "unsubscribed": ("Отписался", "1, если у контакта есть касание unsubscribe не позже as_of."),
    "email_bounced": (
        "Письма не доходят",
        "1, если у контакта есть касание email_bounce не позже as_of.",
    ),
    "careers_page_views_365d": (
        "Просмотры страницы вакансий за последние 365 дней",
        "Касания careers_page_view за последние 365 дней (соискатели, а не покупатели).",
    ),
    "first_touch_type": (
        "Первое действие контакта",
        "Тип первого касания контакта, если оно не позже as_of.",
    ),
    "lead_source": ("Источник лида", "Поле lead_source контакта, как оно записано в CRM."),
    "lead_age_days": ("Дней с появления лида в CRM", "Дней от created_at контакта до as_of."),
    "account_engaged_contacts_30d": (
        "Вовлечённых людей в компании за последние 30 дней",
        f"Различных контактов компании с касанием за последние 30 дней. {_D_RU}",
    ),
    "account_engaged_contacts_90d": (
        "Вовлечённых людей в компании за последние 90 дней",
        f"Различных контактов компании с касанием за последние 90 дней. {_D_RU}",
    ),
    "account_departments_engaged_90d": (
        "Вовлечённых отделов компании, 90 дней",
        f"Различных известных отделов среди контактов компании, вовлечённых за последние 90 дней. {_D_RU}",
    ),
    "account_seniority_levels_engaged_90d": (
        "Вовлечённых уровней должностей в компании, 90 дней",
        f"Различных известных уровней должности среди контактов компании, вовлечённых за последние 90 дней. {_D_RU}",
    ),
    "account_decision_maker_engaged_90d": (
        "Вовлечено лицо, принимающее решение (C-level или VP)",
        f"1, если контакт компании уровня c_level или vp был вовлечён за последние 90 дней. {_D_RU}",
    ),
    "account_finance_engaged_90d": (
        "Вовлечены финансы",
        f"1, если контакт компании из финансов был вовлечён за последние 90 дней. {_D_RU}",
    ),
    "account_procurement_legal_engaged_90d": (
        "Вовлечены закупки или юристы",
        f"1, если контакт компании из закупок или юридического отдела был вовлечён за последние 90 дней. {_D_RU}",
    ),
    "account_decision_touches_30d": (
        "Действия этапа «Решение» в компании, 30 дней",
        f"Касания этапа «Решение» всех контактов компании за последние 30 дней. {_D_RU}",
    ),
    "account_decision_touches_90d": (
        "Действия этапа «Решение» в компании, 90 дней",
        f"Касания этапа «Решение» всех контактов компании за последние 90 дней. {_D_RU}",
    ),
    "contact_share_of_account_touches_90d": (
        "Доля этого контакта в активности компании",
        f"Касания контакта / все касания компании за последние 90 дней; пусто, если у компании их не было. {_D_RU}",
    ),
    "account_new_contacts_30d": (
        "Людей в компании, впервые вовлечённых за последние 30 дней",
        f"Контакты компании, чьё первое касание попадает в последние 30 дней. {_D_RU}",
    ),
    "account_won_deals": (
        "Сделок, выигранных компанией раньше",
        f"Сделки компании, закрытые как выигранные не позже as_of. {_D_RU}",
    ),
    "account_lost_deals": (
        "Сделок, проигранных компанией раньше",
        f"Сделки компании, закрытые как проигранные не позже as_of. {_D_RU}",
    ),
    "days_since_account_last_won": (
        "Дней с последней покупки компании",
        f"Дней от последней выигранной сделки компании до as_of; пусто, если выигранных не было. {_D_RU}",
    ),
    "industry": ("Отрасль", "Отрасль компании, как она записана в CRM."),
    "employees_band": (
        "Размер компании (диапазон)",
        "Порядковый диапазон числа сотрудников: 0 = 1-10, 1 = 11-50, 2 = 51-200, 3 = 201-1 000, 4 = 1 001-5 000, 5 = 5 001-10 000, 6 = более 10 000; пусто, если неизвестно.",
    ),
    "revenue_band": (
        "Годовая выручка (диапазон)",
        "Порядковый диапазон годовой выручки: 0 = до 1 млн, 1 = 1-10 млн, 2 = 10-50 млн, 3 = 50-100 млн, 4 = 100-500 млн, 5 = 500 млн - 1 млрд, 6 = более 1 млрд; пусто, если неизвестно.",
    ),
    "country": ("Страна", "Страна компании, как она записана в CRM."),
    "seniority": (
        "Уровень должности",
        "Уровень должности контакта (выводится из должности, если в CRM поле пустое).",
    ),
    "department": ("Отдел", "Отдел контакта (выводится из должности, если в CRM поле пустое)."),
    "free_mail": (
        "Бесплатный почтовый адрес",
        "1, если домен почты бесплатный (gmail.com, mail.ru, ...), 0 для корпоративного домена, пусто без почты.",
    ),
}


def _with_russian(feature: FeatureDef) -> FeatureDef:
    if feature.label_ru:
        return feature
    label_ru, definition_ru = _RUSSIAN[feature.name]
    return replace(feature, label_ru=label_ru, definition_ru=definition_ru)


FEATURES: Final[tuple[FeatureDef, ...]] = tuple(
    _with_russian(f) for f in (*_engagement(), *_committee(), *_fit())
)
FEATURES_BY_NAME: Final[dict[str, FeatureDef]] = {f.name: f for f in FEATURES}
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES)
CATEGORICAL: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.kind == "categorical")
NUMERIC: Final[tuple[str, ...]] = tuple(f.name for f in FEATURES if f.kind == "numeric")


Language = Literal["en", "ru"]


def label(name: str, language: Language = "en") -> str:
    """The human-readable label of a feature (the name itself for unknown names)."""
    feature = FEATURES_BY_NAME.get(name)
    if feature is None:
        return name
    return feature.label_ru if language == "ru" else feature.label


def definition(name: str, language: Language = "en") -> str:
    """The exact definition of a feature, in English or Russian (empty for unknown names)."""
    feature = FEATURES_BY_NAME.get(name)
    if feature is None:
        return ""
    return feature.definition_ru if language == "ru" else feature.definition


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
