"""Job titles into seniority and department.

CRM exports rarely fill seniority and department, but almost always carry a free-text
job title. Buying-committee signals need both ("is a finance person engaged?", "is a
decision maker engaged?"), so when the columns are missing or empty they are derived
here. English titles and the common Russian ones are understood: exports from
Bitrix24-style CRMs are often in Russian.

Rules are ordered lists of regular expressions; the first match wins. Order encodes
precedence: "Vice President" must be seen before "President", "Product Owner" before
"Owner", "CFO" makes a finance person before "Chief" makes an executive one.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.arrow import one_array

UNKNOWN: Final = "unknown"


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.IGNORECASE)


_SENIORITY_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    # Titles that contain a senior word but are not senior.
    ("individual", _rx(r"\bstudent\b", r"\bintern\b", r"студент", r"стажер", r"стажёр")),
    ("manager", _rx(r"\bproduct owner\b", r"\bscrum master\b")),
    ("individual", _rx(r"менеджер по продажам", r"менеджер по работе с клиентами")),
    (
        "vp",
        _rx(
            r"\b[sea]?vp\b",
            r"\bvice[- ]president\b",
            r"вице[- ]президент",
            r"заместитель генерального",
            r"зам\.? ?генерального",
        ),
    ),
    (
        "c_level",
        _rx(
            r"\bc[efiotmrsd]o\b",
            r"\bciso\b",
            r"\bchief\b",
            r"\bco-?founder\b",
            r"\bfounder\b",
            r"\bowner\b",
            r"\bpresident\b",
            r"\bmanaging (?:director|partner)\b",
            r"\bgeneral manager\b",
            r"генеральн\w* директор",
            r"гендиректор",
            r"ген\. ?директор",
            r"(?:финансов|техническ|коммерческ|исполнительн|операционн)\w* директор",
            r"\bит[- ]директор",
            r"основател",
            r"владел",
            r"собственник",
            r"президент",
            r"управляющ\w* партн",
        ),
    ),
    (
        "director",
        _rx(
            r"\bdirector\b",
            r"\bhead\b",
            r"директор",
            r"руководител",
            r"главн\w* (?:бухгалтер|инженер|экономист)",
        ),
    ),
    (
        "manager",
        _rx(
            r"\bmanager\b",
            r"\blead\b",
            r"\bteam ?lead\b",
            r"\bsupervisor\b",
            r"менеджер",
            r"начальник",
            r"заведующ",
            r"тимлид",
        ),
    ),
    (
        "individual",
        _rx(
            r"\bengineer\b",
            r"\bdeveloper\b",
            r"\banalyst\b",
            r"\bspecialist\b",
            r"\bconsultant\b",
            r"\baccountant\b",
            r"\bassociate\b",
            r"\bcoordinator\b",
            r"\badministrator\b",
            r"\brepresentative\b",
            r"\bassistant\b",
            r"\bexecutive\b",
            r"\bscientist\b",
            r"\barchitect\b",
            r"\bdesigner\b",
            r"\bbuyer\b",
            r"\bcounsel\b",
            r"\blawyer\b",
            r"\brecruiter\b",
            r"\bsdr\b",
            r"\bbdr\b",
            r"специалист",
            r"инженер",
            r"аналитик",
            r"бухгалтер",
            r"разработчик",
            r"программист",
            r"юрист",
            r"экономист",
            r"администратор",
            r"консультант",
            r"ассистент",
            r"оператор",
            r"рекрутер",
            r"маркетолог",
        ),
    ),
)

_DEPARTMENT_RULES: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    ("other", _rx(r"\bstudent\b", r"\bintern\b", r"студент", r"стажер", r"стажёр")),
    (
        "finance",
        _rx(
            r"\bcfo\b",
            r"financ",
            r"\baccount(?:ing|ant)\b",
            r"\bcontroller\b",
            r"\btreasur",
            r"\bfp&a\b",
            r"финанс",
            r"бухгалт",
            r"экономист",
            r"казначе",
        ),
    ),
    (
        "procurement",
        _rx(
            r"procurement",
            r"purchas",
            r"\bbuyer\b",
            r"sourcing",
            r"vendor management",
            r"закуп",
            r"снабжени",
            r"тендер",
        ),
    ),
    (
        "legal",
        _rx(
            r"\blegal\b",
            r"counsel",
            r"lawyer",
            r"attorney",
            r"compliance",
            r"юрист",
            r"юридическ",
            r"правов",
        ),
    ),
    (
        "hr",
        _rx(
            r"\bhr\b",
            r"human resources",
            r"\bpeople\b",
            r"talent",
            r"recruit",
            r"кадр",
            r"персонал",
            r"рекрут",
        ),
    ),
    (
        "engineering",
        _rx(
            r"\bproduct (?:owner|manager|management)\b",
            r"\bcto\b",
            r"technology officer",
            r"engineer",
            r"developer",
            r"software",
            r"devops",
            r"architect",
            r"data scien",
            r"\br&d\b",
            r"разработ",
            r"программист",
            r"инженер",
            r"техническ\w* директор",
        ),
    ),
    (
        "it",
        _rx(
            r"\bcio\b",
            r"\bciso\b",
            r"information officer",
            r"\bit\b",
            r"information technology",
            r"infrastructure",
            r"sysadmin",
            r"systems? administrator",
            r"security",
            r"\bит\b",
            r"ит[- ]",
            r"информационн",
            r"системн\w* администратор",
        ),
    ),
    (
        "marketing",
        _rx(
            r"\bcmo\b",
            r"marketing",
            r"growth",
            r"\bbrand\b",
            r"demand gen",
            r"\bcontent\b",
            r"\bseo\b",
            r"маркет",
            r"\bpr\b",
        ),
    ),
    (
        "sales",
        _rx(
            r"\bcro\b",
            r"\bsales\b",
            r"\brevenue\b",
            r"account executive",
            r"account manager",
            r"business development",
            r"\bsdr\b",
            r"\bbdr\b",
            r"продаж",
            r"коммерческ",
            r"клиент",
        ),
    ),
    (
        "operations",
        _rx(
            r"\bcoo\b",
            r"operations",
            r"operating",
            r"\bops\b",
            r"supply chain",
            r"logistic",
            r"операционн",
            r"логист",
            r"производств",
        ),
    ),
    (
        "executive",
        _rx(
            r"\bceo\b",
            r"chief executive",
            r"founder",
            r"\bowner\b",
            r"\bpresident\b",
            r"managing (?:director|partner)",
            r"general manager",
            r"генеральн\w* директор",
            r"гендиректор",
            r"ген\. ?директор",
            r"основател",
            r"владел",
            r"собственник",
            r"президент",
            r"управляющ\w* партн",
        ),
    ),
)


def _first_match(rules: tuple[tuple[str, re.Pattern[str]], ...], title: str) -> str:
    for value, pattern in rules:
        if pattern.search(title):
            return value
    return UNKNOWN


@lru_cache(maxsize=65536)
def parse_title(title: str | None) -> tuple[str, str]:
    """Return ``(seniority, department)`` for a free-text job title.

    Either part is ``"unknown"`` when no rule recognises it; an empty title gives
    ``("unknown", "unknown")``. The result only ever holds contract enum values.
    """
    if not title or not title.strip():
        return UNKNOWN, UNKNOWN
    text = " ".join(title.split())
    return _first_match(_SENIORITY_RULES, text), _first_match(_DEPARTMENT_RULES, text)


def parse_titles(titles: pd.Series) -> pd.DataFrame:
    """Parse a column of job titles; returns columns ``seniority`` and ``department``.

    Exports repeat the same few thousand titles, so each distinct title is parsed once
    (Arrow's dictionary encoding finds them) and the answers are spread back by index.
    """
    text = titles if isinstance(titles.dtype, pd.StringDtype) else titles.astype("str")
    encoded = pc.dictionary_encode(one_array(text))
    pairs = [parse_title(str(t)) for t in encoded.dictionary.to_pylist()]
    pairs.append((UNKNOWN, UNKNOWN))  # a missing title
    codes = pc.fill_null(encoded.indices, len(pairs) - 1)

    def part(i: int) -> pd.Series:
        values = pc.take(pa.array([p[i] for p in pairs], pa.large_string()), codes)
        series = values.to_pandas()
        series.index = titles.index
        return series

    return pd.DataFrame({"seniority": part(0), "department": part(1)}, index=titles.index)
