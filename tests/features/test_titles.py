"""Job titles into seniority and department, in English and Russian."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.crm.taxonomy import DEPARTMENTS, SENIORITY_LEVELS
from features.crm.titles import parse_title, parse_titles


@pytest.mark.parametrize(
    ("title", "seniority", "department"),
    [
        ("CEO", "c_level", "executive"),
        ("Chief Executive Officer", "c_level", "executive"),
        ("Co-Founder & CEO", "c_level", "executive"),
        ("CFO", "c_level", "finance"),
        ("Chief Technology Officer", "c_level", "engineering"),
        ("Chief Information Officer", "c_level", "it"),
        ("VP Finance", "vp", "finance"),
        ("Vice President of Engineering", "vp", "engineering"),  # not "President"
        ("SVP, Sales", "vp", "sales"),
        ("Director of Procurement", "director", "procurement"),
        ("Head of IT", "director", "it"),
        ("IT Manager", "manager", "it"),
        ("Product Owner", "manager", "engineering"),  # not "Owner" of the company
        ("Senior Software Engineer", "individual", "engineering"),
        ("Systems Administrator", "individual", "it"),
        ("Corporate Counsel", "individual", "legal"),
        ("Financial Analyst", "individual", "finance"),
        ("Account Executive", "individual", "sales"),
        ("Student", "individual", "other"),
        ("MBA Candidate", "unknown", "unknown"),
        # Russian titles as Bitrix24-style exports carry them.
        ("Генеральный директор", "c_level", "executive"),
        ("Финансовый директор", "c_level", "finance"),
        ("Технический директор", "c_level", "engineering"),
        ("ИТ-директор", "c_level", "it"),
        ("Коммерческий директор", "c_level", "sales"),
        ("Заместитель генерального директора по финансам", "vp", "finance"),
        ("Директор по информационным технологиям", "director", "it"),
        ("Главный бухгалтер", "director", "finance"),
        ("Начальник отдела закупок", "manager", "procurement"),
        ("Менеджер по продажам", "individual", "sales"),  # a sales rep, not a manager
        ("Системный администратор", "individual", "it"),
        ("Юрист", "individual", "legal"),
        ("Специалист по кадрам", "individual", "hr"),
        ("Студент", "individual", "other"),
    ],
)
def test_parse_title(title: str, seniority: str, department: str) -> None:
    assert parse_title(title) == (seniority, department)


@pytest.mark.parametrize("title", [None, "", "   "])
def test_empty_title_is_unknown(title: str | None) -> None:
    assert parse_title(title) == ("unknown", "unknown")


def test_case_and_spacing_do_not_matter() -> None:
    assert parse_title("  vp   FINANCE ") == parse_title("VP Finance")


@given(st.text(max_size=60))
def test_any_text_gives_contract_enum_values(title: str) -> None:
    seniority, department = parse_title(title)
    assert seniority in SENIORITY_LEVELS and department in DEPARTMENTS


def test_parse_titles_keeps_the_index_and_handles_missing() -> None:
    titles = pd.Series(["CFO", None, "CFO", "Маркетолог"], index=[10, 11, 12, 13])
    parsed = parse_titles(titles)
    assert parsed.index.tolist() == [10, 11, 12, 13]
    assert parsed["seniority"].tolist() == ["c_level", "unknown", "c_level", "individual"]
    assert parsed["department"].tolist() == ["finance", "unknown", "finance", "marketing"]
