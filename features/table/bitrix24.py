"""Bitrix24 lead files: reading a lead export to train on, writing scores to import.

A marketer without API access exports leads from Bitrix24 (CSV, `;`, UTF-8 or cp1251;
the columns titled in the portal's language, or the API's field codes from
`crm.lead.list`) and imports a file back. `preset(columns)` says how to train on such an
export: the stage is the target ("converted" is a deal won for the lead, "junk" a lead
that was not one; open stages are left out of training and scored), the creation date
orders the holdout, and what would leak the outcome or name a person is left out.
`import_table(scores)` shapes scores as Bitrix24's lead import takes them.

The titles are Bitrix24's own (`crm.lead.fields`, English and Russian).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import pandas as pd

#: field code -> (English title, Russian title), as `crm.lead.fields` gives them
TITLES: Final = {
    "ID": ("ID", "ID"),
    "TITLE": ("Lead Title", "Название лида"),
    "HONORIFIC": ("Salutation", "Обращение"),
    "NAME": ("First Name", "Имя"),
    "SECOND_NAME": ("Middle Name", "Отчество"),
    "LAST_NAME": ("Last Name", "Фамилия"),
    "BIRTHDATE": ("Birthdate", "Дата рождения"),
    "COMPANY_TITLE": ("Company Name", "Название компании"),
    "SOURCE_ID": ("Source", "Источник"),
    "SOURCE_DESCRIPTION": ("Source Description", "Дополнительно об источнике"),
    "STATUS_ID": ("Stage", "Стадия"),
    "STATUS_DESCRIPTION": ("Stage Description", "Дополнительно о стадии"),
    "STATUS_SEMANTIC_ID": ("Status Semantic", "Состояние статуса"),
    "POST": ("Position", "Должность"),
    "ADDRESS": ("Address", "Адрес"),
    "ADDRESS_2": ("Address (Line 2)", "Адрес (стр. 2)"),
    "ADDRESS_POSTAL_CODE": ("Postal Code", "Почтовый индекс"),
    "ADDRESS_LOC_ADDR_ID": ("Location Address ID", "Идентификатор адреса местоположения"),
    "OPPORTUNITY": ("Amount", "Сумма"),
    "IS_MANUAL_OPPORTUNITY": ("IS_MANUAL_OPPORTUNITY", "IS_MANUAL_OPPORTUNITY"),
    "COMMENTS": ("Comments", "Комментарий"),
    "ASSIGNED_BY_ID": ("Responsible User", "Ответственный"),
    "CREATED_BY_ID": ("Created By", "Кем создан"),
    "MODIFY_BY_ID": ("Modified By", "Кем изменен"),
    "MOVED_BY_ID": ("MOVED_BY_ID", "MOVED_BY_ID"),
    "DATE_CREATE": ("Creation Date", "Дата создания"),
    "DATE_MODIFY": ("Modification Date", "Дата изменения"),
    "MOVED_TIME": ("MOVED_TIME", "MOVED_TIME"),
    "COMPANY_ID": ("Company", "Компания"),
    "CONTACT_ID": ("Contact", "Контакт"),
    "CONTACT_IDS": ("CONTACT_IDS", "CONTACT_IDS"),
    "DATE_CLOSED": ("Closing Date", "Дата завершения"),
    "ORIGIN_ID": ("Identifier in External Source", "Идентификатор элемента во внешнем источнике"),
    "LAST_ACTIVITY_TIME": ("LAST_ACTIVITY_TIME", "LAST_ACTIVITY_TIME"),
    "LAST_ACTIVITY_BY": ("LAST_ACTIVITY_BY", "LAST_ACTIVITY_BY"),
    "PHONE": ("Phone", "Телефон"),
    "EMAIL": ("E-mail", "E-mail"),
    "WEB": ("Website", "Сайт"),
    "IM": ("Messenger", "Мессенджер"),
    "LINK": ("LINK", "LINK"),
}

#: left out of training, with the reason: the outcome itself or what is filled in while
#: a lead is worked (it would leak the answer), a person's identity, staff, free text
LEFT_OUT: Final = {
    **dict.fromkeys(("STATUS_DESCRIPTION", "DATE_CLOSED", "DATE_MODIFY", "MOVED_TIME",
                     "MOVED_BY_ID", "MODIFY_BY_ID", "COMPANY_ID", "CONTACT_ID", "CONTACT_IDS",
                     "OPPORTUNITY", "IS_MANUAL_OPPORTUNITY", "LAST_ACTIVITY_TIME",
                     "LAST_ACTIVITY_BY"),
                    "set while the lead is worked: it would leak the outcome"),
    **dict.fromkeys(("TITLE", "HONORIFIC", "NAME", "SECOND_NAME", "LAST_NAME", "BIRTHDATE",
                     "PHONE", "EMAIL", "WEB", "IM", "LINK", "ADDRESS", "ADDRESS_2",
                     "ADDRESS_POSTAL_CODE", "ADDRESS_LOC_ADDR_ID", "COMMENTS", "ORIGIN_ID"),
                    "names or reaches a person (or is free text)"),
    **dict.fromkeys(("ASSIGNED_BY_ID", "CREATED_BY_ID"), "who works the lead, not the lead"),
}  # fmt: skip

#: the stage: Bitrix24's codes and its English and Russian names of them
CONVERTED: Final = ("CONVERTED", "Converted", "Good lead", "Качественный лид")
JUNK: Final = ("JUNK", "Low-quality lead", "Junk lead", "Некачественный лид")
#: STATUS_SEMANTIC_ID: S success, F failure, P in progress
SEMANTIC_SUCCESS: Final = ("S",)
SEMANTIC_FAILURE: Final = ("F",)

#: identity columns kept in the import file, so Bitrix24's duplicate control finds the
#: lead to update (by its name, phone or e-mail)
IDENTITY: Final = ("ID", "TITLE", "NAME", "LAST_NAME", "COMPANY_TITLE", "PHONE", "EMAIL")
#: our columns in the import file: the titles to give the custom fields in Bitrix24
SCORE_TITLES: Final = {
    "ru": {
        "probability": "Вероятность сделки, %",
        "points": "Баллы лида",
        "grade": "Оценка лида",
        "mql": "MQL",
        "reasons": "Причины оценки",
    },
    "en": {
        "probability": "Conversion probability, %",
        "points": "Lead points",
        "grade": "Lead grade",
        "mql": "MQL",
        "reasons": "Score reasons",
    },
}


def _key(text: str) -> str:
    return " ".join(str(text).split()).casefold()


def find_columns(columns: Iterable[str]) -> dict[str, str]:
    """Bitrix24 field code -> the column of the file that holds it (by code or title)."""
    names = {_key(c): c for c in columns}
    found = {}
    for code, titles in TITLES.items():
        for candidate in (code, *titles):
            if _key(candidate) in names:
                found[code] = names[_key(candidate)]
                break
    return found


@dataclass(frozen=True)
class Preset:
    target: str
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    id_column: str | None
    time_column: str | None
    exclude: tuple[str, ...]
    reasons: dict[str, str]


class PresetError(ValueError):
    """The file is not a Bitrix24 lead export this preset can read."""


def preset(columns: Iterable[str]) -> Preset:
    """How to train on a Bitrix24 lead export with these columns (see the module)."""
    columns = list(columns)
    found = find_columns(columns)
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    if "STATUS_SEMANTIC_ID" in found:
        target, positive, negative = found["STATUS_SEMANTIC_ID"], SEMANTIC_SUCCESS, SEMANTIC_FAILURE
    elif "STATUS_ID" in found:
        target, positive, negative = found["STATUS_ID"], CONVERTED, JUNK
    else:
        raise PresetError(
            "not a Bitrix24 lead export: no stage column (STATUS_ID, 'Stage' or 'Стадия'); "
            f"the file has {', '.join(columns[:12])}"
        )
    reasons = {found[code]: why for code, why in LEFT_OUT.items() if code in found}
    if "STATUS_ID" in found and found["STATUS_ID"] != target:
        reasons[found["STATUS_ID"]] = "the stage: the outcome itself"
    return Preset(
        target=target,
        positive=positive,
        negative=negative,
        id_column=found.get("ID"),
        time_column=found.get("DATE_CREATE"),
        exclude=tuple(reasons),
        reasons=reasons,
    )


def import_table(
    scores: pd.DataFrame, source: pd.DataFrame | None, language: str = "ru"
) -> pd.DataFrame:
    """Scores as Bitrix24's lead import takes them: the lead's identity columns (as the
    export titled them) to match the lead, then our values under the titles the custom
    fields should have (`SCORE_TITLES`); MQL as Y/N, the probability in percent."""
    titles = SCORE_TITLES[language]
    out = pd.DataFrame(index=scores.index)
    if source is not None:
        found = find_columns(source.columns)
        for code in IDENTITY:
            if code in found:
                out[found[code]] = source[found[code]].to_numpy()
    elif "contact_id" in scores:  # an export's contacts: ids of Bitrix24 leads
        ids = scores["contact_id"].astype(str)
        out["ID"] = ids.str.replace(r"^b24-lead-", "", regex=True)
    out[titles["probability"]] = (scores["probability"] * 100).round(1)
    points = "points" if "points" in scores else "rule_points"
    if points in scores:
        out[titles["points"]] = scores[points].round(2)
    grade = "grade" if "grade" in scores else "rule_grade"
    if grade in scores:
        out[titles["grade"]] = scores[grade]
    if "mql" in scores:
        out[titles["mql"]] = scores["mql"].map(lambda v: "Y" if bool(v) else "N")
    reasons = "top_reasons" if "top_reasons" in scores else None
    if reasons:
        out[titles["reasons"]] = scores[reasons]
    return out.reset_index(drop=True)
