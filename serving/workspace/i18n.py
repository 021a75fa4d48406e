"""The workspace in English and Russian: its words, numbers and sentences.

The language is `?lang=` (remembered in a cookie), else the browser's `Accept-Language`,
else English. Feature labels and definitions come from the feature registry
(`features/pipeline/registry.py`), where they live next to each feature's definition;
everything else a page says is here.
"""

from __future__ import annotations

import math
from typing import Any, Final

from fastapi import Request

from features.pipeline.registry import Language, definition, label
from serving.workspace.analysis import EMPTY

LANGUAGES: Final[tuple[Language, ...]] = ("en", "ru")
LANG_COOKIE: Final = "ls_lang"

TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "title": "Lead scoring workspace",
        "nav.matters": "What matters",
        "nav.compare": "Points vs model",
        "nav.matrix": "Points matrix",
        "nav.leads": "Today's leads",
        "nav.model": "Model",
        "logout": "Log out",
        "login.title": "Sign in",
        "login.user": "User",
        "login.password": "Password or API key",
        "login.submit": "Sign in",
        "login.failed": "Unknown user or wrong password.",
        "login.none": "No user can sign in: set LEADSCORE_UI_USERS (leadscore ui-user makes an entry) or LEADSCORE_API_KEYS.",
        "role.admin": "admin",
        "role.marketing": "marketing (read-only)",
        "no_model": "No model is loaded yet.",
        "no_evidence": "The champion was trained before models kept their holdout (train it again with this version) or scores lead tables: this page needs a touchpoint model's holdout.",
        "no_store": "The live lead store is off or not migrated: leads come from it.",
        "matters.intro": "The champion's signals, ranked by how much they move its scores on the holdout ({rows} snapshots, TreeSHAP on {explained}). The conversion rates are the holdout's own.",
        "matters.signal": "Signal",
        "matters.weight": "Weight",
        "matters.direction": "Direction",
        "matters.evidence": "What the data says",
        "matters.definition": "Definition",
        "dir.up": "more is better",
        "dir.down": "less is better",
        "dir.none": "by value",
        "sentence.ge": "Leads with “{label}” of {value} or more convert {ratio} than those with less ({rate_in} vs {rate_out}).",
        "sentence.eq": "Leads where “{label}” convert {ratio} than the others ({rate_in} vs {rate_out}).",
        "sentence.is": "Leads with “{label}” = {value} convert {ratio} than the others ({rate_in} vs {rate_out}).",
        "sentence.none": "No group large enough to quote a rate.",
        "ratio.more": "{x}x more often",
        "ratio.less": "{x}x less often",
        "compare.intro": "On the champion's holdout: {rows} snapshots, {conversions} conversions (base rate {base}). The model's probabilities are its selection twin's, which never saw these rows.",
        "compare.lift": "Lift: conversion rate of the top share over the base rate",
        "compare.capture": "Capture: share of all conversions in the top share",
        "compare.share": "top share of leads",
        "compare.model": "Model",
        "compare.points": "Points",
        "compare.metrics": "MQL precision and recall",
        "compare.flagged": "Flagged",
        "compare.precision": "Precision",
        "compare.recall": "Recall",
        "compare.auc": "ROC AUC",
        "compare.points_mql": "Points: MQL (≥ {threshold})",
        "compare.model_top": "Model: top {share} by probability",
        "compare.agreement": "Agreement: leads (conversions, rate)",
        "compare.mql_yes": "MQL by points",
        "compare.mql_no": "not an MQL",
        "compare.top_yes": "in the model's top share",
        "compare.top_no": "outside it",
        "compare.found_model": "Converted leads the model found and the points missed",
        "compare.found_points": "Converted leads the points found and the model missed",
        "compare.lead": "Lead",
        "compare.as_of": "As of",
        "compare.probability": "Probability",
        "compare.points_col": "Points",
        "compare.reasons": "Model's reasons",
        "compare.rules": "Points' top rules",
        "compare.none": "None.",
        "matrix.intro": "The matrix in effect: {which}. Lift is on the champion's holdout; suggestions come from its training data.",
        "matrix.model_own": "the champion's own",
        "matrix.applied": "applied by {by} on {at} (#{id})",
        "matrix.rule": "Rule",
        "matrix.group": "Group",
        "matrix.points": "Points",
        "matrix.cap": "Cap",
        "matrix.fired": "Fired",
        "matrix.lift": "Lift",
        "matrix.suggested": "Suggested",
        "matrix.why": "Why",
        "matrix.threshold": "MQL threshold",
        "matrix.whatif": "What if",
        "matrix.whatif.intro": "Change values: the MQL share, precision, recall and ROC AUC on the holdout follow.",
        "matrix.current": "Matrix in effect",
        "matrix.edited": "Edited",
        "matrix.mql_share": "MQL share",
        "matrix.download": "Download YAML",
        "matrix.apply": "Apply to live scores",
        "matrix.apply.note": "Applying records who and when, and rescores every active lead.",
        "matrix.apply.admin": "Only an admin can apply a matrix.",
        "matrix.applied_ok": "Matrix #{id} applied; every active lead is being rescored.",
        "matrix.history": "Applied matrices",
        "matrix.reset": "Reset",
        "matrix.no_suggestion": "No suggestions: {why}",
        "why.rare": "fires on {n} snapshots: too rare to say much",
        "why.held": "leads with it convert {lift}x the base rate; the data alone would reverse its sign, so it is held at {suggested}",
        "why.fits": "leads with it convert {lift}x the base rate: its points fit the outcomes",
        "why.more": "leads with it convert {lift}x the base rate: worth more than its {current} points",
        "why.less": "leads with it convert {lift}x the base rate: worth less than its {current} points",
        "why.never": "never fires",
        "leads.intro": "Current scores from the live store.",
        "leads.mql": "MQLs",
        "leads.top": "Top leads by probability",
        "leads.filter": "Filter",
        "leads.grade": "Grade",
        "leads.source": "Source",
        "leads.account": "Account",
        "leads.any": "any",
        "leads.lead": "Lead",
        "leads.probability": "Probability",
        "leads.points": "Points",
        "leads.scored": "Scored",
        "leads.open_deal": "Open deal",
        "leads.none": "No leads match.",
        "lead.title": "Lead {id}",
        "lead.history": "Score history",
        "lead.breakdown": "Points breakdown",
        "lead.reasons": "Why this probability",
        "lead.events": "What moved it",
        "lead.trigger": "Trigger",
        "lead.count": "Count",
        "lead.decay": "Decay",
        "lead.not_found": "No such lead in the live store.",
        "lead.contribution": "Effect",
        "lead.value": "Value",
        "account.title": "Account {id}",
        "account.committee": "Buying committee",
        "account.engaged": "People engaged in the last 90 days: {n}",
        "account.not_found": "No such account in the live store.",
        "model.champion": "Champion",
        "model.challenger": "Challenger",
        "model.none": "none",
        "model.version": "Version",
        "model.trained": "Trained",
        "model.period": "Training data",
        "model.test": "Holdout period",
        "model.metrics": "Holdout metrics",
        "model.calibration": "Calibration: predicted vs observed",
        "model.predicted": "predicted",
        "model.observed": "observed",
        "model.promotions": "Promotions",
        "model.when": "When",
        "model.from": "From",
        "model.why": "Why",
        "model.no_promotions": "No promotion recorded (models promoted before this version kept no record).",
        "empty": "empty",
        "yes": "yes",
        "no": "no",
        "lang": "Language",
    },
    "ru": {
        "title": "Рабочее место скоринга лидов",
        "nav.matters": "Что важно",
        "nav.compare": "Баллы и модель",
        "nav.matrix": "Матрица баллов",
        "nav.leads": "Лиды сегодня",
        "nav.model": "Модель",
        "logout": "Выйти",
        "login.title": "Вход",
        "login.user": "Пользователь",
        "login.password": "Пароль или API-ключ",
        "login.submit": "Войти",
        "login.failed": "Неизвестный пользователь или неверный пароль.",
        "login.none": "Войти некому: задайте LEADSCORE_UI_USERS (запись делает leadscore ui-user) или LEADSCORE_API_KEYS.",
        "role.admin": "администратор",
        "role.marketing": "маркетинг (только чтение)",
        "no_model": "Модель ещё не загружена.",
        "no_evidence": "Чемпион обучен до того, как модели стали хранить отложенную выборку (обучите заново этой версией), или оценивает таблицы лидов: странице нужна отложенная выборка модели касаний.",
        "no_store": "Хранилище лидов выключено или не обновлено: лиды берутся из него.",
        "matters.intro": "Сигналы чемпиона по тому, насколько они сдвигают его оценки на отложенной выборке ({rows} срезов, TreeSHAP на {explained}). Конверсии — по той же выборке.",
        "matters.signal": "Сигнал",
        "matters.weight": "Вес",
        "matters.direction": "Направление",
        "matters.evidence": "Что говорят данные",
        "matters.definition": "Определение",
        "dir.up": "чем больше, тем лучше",
        "dir.down": "чем меньше, тем лучше",
        "dir.none": "по значению",
        "sentence.ge": "Лиды со значением «{label}» от {value} конвертируются {ratio}, чем с меньшим ({rate_in} против {rate_out}).",
        "sentence.eq": "Лиды, у которых «{label}», конвертируются {ratio}, чем остальные ({rate_in} против {rate_out}).",
        "sentence.is": "Лиды с «{label}» = {value} конвертируются {ratio}, чем остальные ({rate_in} против {rate_out}).",
        "sentence.none": "Нет группы, достаточно большой для оценки конверсии.",
        "ratio.more": "в {x} раза чаще",
        "ratio.less": "в {x} раза реже",
        "compare.intro": "На отложенной выборке чемпиона: {rows} срезов, {conversions} конверсий (базовая конверсия {base}). Вероятности модели — от её двойника для отбора, который эти строки не видел.",
        "compare.lift": "Лифт: конверсия верхней доли к базовой",
        "compare.capture": "Охват: доля всех конверсий в верхней доле",
        "compare.share": "верхняя доля лидов",
        "compare.model": "Модель",
        "compare.points": "Баллы",
        "compare.metrics": "Точность и полнота MQL",
        "compare.flagged": "Отмечено",
        "compare.precision": "Точность",
        "compare.recall": "Полнота",
        "compare.auc": "ROC AUC",
        "compare.points_mql": "Баллы: MQL (≥ {threshold})",
        "compare.model_top": "Модель: верхние {share} по вероятности",
        "compare.agreement": "Согласие: лиды (конверсии, доля)",
        "compare.mql_yes": "MQL по баллам",
        "compare.mql_no": "не MQL",
        "compare.top_yes": "в верхней доле модели",
        "compare.top_no": "вне её",
        "compare.found_model": "Сконвертированные лиды, которых нашла модель и пропустили баллы",
        "compare.found_points": "Сконвертированные лиды, которых нашли баллы и пропустила модель",
        "compare.lead": "Лид",
        "compare.as_of": "На дату",
        "compare.probability": "Вероятность",
        "compare.points_col": "Баллы",
        "compare.reasons": "Причины модели",
        "compare.rules": "Главные правила баллов",
        "compare.none": "Нет.",
        "matrix.intro": "Действующая матрица: {which}. Лифт — на отложенной выборке чемпиона, предложения — по его обучающим данным.",
        "matrix.model_own": "собственная матрица чемпиона",
        "matrix.applied": "применена пользователем {by} {at} (№{id})",
        "matrix.rule": "Правило",
        "matrix.group": "Группа",
        "matrix.points": "Баллы",
        "matrix.cap": "Предел",
        "matrix.fired": "Срабатываний",
        "matrix.lift": "Лифт",
        "matrix.suggested": "Предложено",
        "matrix.why": "Почему",
        "matrix.threshold": "Порог MQL",
        "matrix.whatif": "Что если",
        "matrix.whatif.intro": "Меняйте значения: доля MQL, точность, полнота и ROC AUC на отложенной выборке пересчитываются.",
        "matrix.current": "Действующая матрица",
        "matrix.edited": "Изменённая",
        "matrix.mql_share": "Доля MQL",
        "matrix.download": "Скачать YAML",
        "matrix.apply": "Применить к живым оценкам",
        "matrix.apply.note": "Применение записывает, кто и когда, и пересчитывает всех активных лидов.",
        "matrix.apply.admin": "Применить матрицу может только администратор.",
        "matrix.applied_ok": "Матрица №{id} применена; все активные лиды пересчитываются.",
        "matrix.history": "Применённые матрицы",
        "matrix.reset": "Сбросить",
        "matrix.no_suggestion": "Предложений нет: {why}",
        "why.rare": "срабатывает на {n} срезах: слишком редко, чтобы судить",
        "why.held": "лиды с ним конвертируются в {lift} раза от базовой конверсии; сами данные сменили бы знак, поэтому значение удержано на {suggested}",
        "why.fits": "лиды с ним конвертируются в {lift} раза от базовой конверсии: баллы соответствуют исходам",
        "why.more": "лиды с ним конвертируются в {lift} раза от базовой конверсии: стоит больше своих {current} баллов",
        "why.less": "лиды с ним конвертируются в {lift} раза от базовой конверсии: стоит меньше своих {current} баллов",
        "why.never": "не срабатывает",
        "leads.intro": "Текущие оценки из хранилища лидов.",
        "leads.mql": "MQL",
        "leads.top": "Лучшие лиды по вероятности",
        "leads.filter": "Фильтр",
        "leads.grade": "Класс",
        "leads.source": "Источник",
        "leads.account": "Компания",
        "leads.any": "любой",
        "leads.lead": "Лид",
        "leads.probability": "Вероятность",
        "leads.points": "Баллы",
        "leads.scored": "Оценён",
        "leads.open_deal": "Открытая сделка",
        "leads.none": "Нет подходящих лидов.",
        "lead.title": "Лид {id}",
        "lead.history": "История оценки",
        "lead.breakdown": "Разбор баллов",
        "lead.reasons": "Почему такая вероятность",
        "lead.events": "Что её сдвинуло",
        "lead.trigger": "Причина",
        "lead.count": "Число",
        "lead.decay": "Затухание",
        "lead.not_found": "Такого лида нет в хранилище.",
        "lead.contribution": "Влияние",
        "lead.value": "Значение",
        "account.title": "Компания {id}",
        "account.committee": "Закупочный комитет",
        "account.engaged": "Вовлечённых людей за последние 90 дней: {n}",
        "account.not_found": "Такой компании нет в хранилище.",
        "model.champion": "Чемпион",
        "model.challenger": "Претендент",
        "model.none": "нет",
        "model.version": "Версия",
        "model.trained": "Обучена",
        "model.period": "Обучающие данные",
        "model.test": "Период отложенной выборки",
        "model.metrics": "Метрики на отложенной выборке",
        "model.calibration": "Калибровка: прогноз и факт",
        "model.predicted": "прогноз",
        "model.observed": "факт",
        "model.promotions": "Смены чемпиона",
        "model.when": "Когда",
        "model.from": "Было",
        "model.why": "Почему",
        "model.no_promotions": "Смен чемпиона не записано (до этой версии они не записывались).",
        "empty": "пусто",
        "yes": "да",
        "no": "нет",
        "lang": "Язык",
    },
}


def language_of(request: Request) -> Language:
    """?lang=, then the cookie, then Accept-Language (its first known language), then en."""
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    if asked in LANGUAGES:
        return asked
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return "en"


class Words:
    """A page's words and number formats in one language (passed to every template)."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self.text = TEXT[language]

    def __call__(self, key: str, **values: Any) -> str:
        text = self.text.get(key) or TEXT["en"][key]
        return text.format(**values) if values else text

    def label(self, feature: str) -> str:
        return label(feature, self.language)

    def definition(self, feature: str) -> str:
        return definition(feature, self.language)

    def number(self, value: float | None, digits: int = 2) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "–"
        text = f"{value:,.{digits}f}"
        if self.language == "ru":
            text = text.replace(",", "\u00a0").replace(".", ",")
        return text

    def count(self, value: int) -> str:
        return self.number(float(value), 0)

    def percent(self, value: float | None, digits: int = 1) -> str:
        if value is None or not math.isfinite(value):
            return "–"
        return self.number(100 * value, digits) + "\u00a0%"

    def ratio(self, ratio: float) -> str:
        if not math.isfinite(ratio) or ratio <= 0:
            return "–"
        if ratio >= 1:
            return self("ratio.more", x=self.number(ratio, 1))
        return self("ratio.less", x=self.number(1 / ratio, 1))

    def when(self, moment: Any) -> str:
        """A date and time as the page shows it (UTC)."""
        import pandas as pd

        if moment is None:
            return "–"
        stamp = pd.Timestamp(moment)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize("UTC")
        return stamp.tz_convert("UTC").strftime("%Y-%m-%d %H:%M")

    def day(self, moment: Any) -> str:
        return self.when(moment)[:10]

    def signal(self, signal: Any) -> str:
        """A signal's evidence as a sentence (analysis.Signal)."""
        if not signal.condition:
            return self("sentence.none")
        value = signal.value
        if signal.condition == "ge":
            whole = float(value).is_integer() or abs(value) >= 10
            value = self.number(value, 0 if whole else 2)
        elif value == EMPTY:
            value = self("empty")
        return self(
            f"sentence.{signal.condition}",
            label=self.label(signal.feature),
            value=value,
            ratio=self.ratio(signal.ratio),
            rate_in=self.percent(signal.rate_in),
            rate_out=self.percent(signal.rate_out),
        )

    def why(self, row: dict[str, Any] | None) -> str:
        """Why a suggested value (training/suggest.py's row), in this language."""
        if not row:
            return ""
        n, lift = int(row.get("snapshots") or 0), row.get("lift")
        current, suggested = float(row["current_points"]), float(row["suggested_points"])
        if n == 0 or lift is None:
            return self("why.never")
        if n < 30:
            return self("why.rare", n=self.count(n))
        values = {
            "lift": self.number(float(lift), 1),
            "current": self.number(current, 0 if current.is_integer() else 1),
            "suggested": self.number(suggested, 1),
        }
        if row.get("held"):
            return self("why.held", **values)
        if suggested == current:
            return self("why.fits", **values)
        bigger = abs(suggested) > abs(current)
        return self("why.more" if bigger else "why.less", **values)
