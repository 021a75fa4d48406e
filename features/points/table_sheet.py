"""A points sheet for a flat lead table: points per attribute value, an MQL threshold.

The table counterpart of `features/points/default_rules.yaml`: every rule names a column and a
condition (`in: [values]` for a category, `min`/`max` for a number) and the points it
adds or takes away. A lead's points are the sum of the rules it matches, so a person
can recompute them by hand from the breakdown.

    kind: table
    mql_threshold: 25
    rules:
      - {name: working professional, column: What is your current occupation,
         in: [Working Professional], points: 30, group: fit}
      - {name: long visit, column: Total Time Spent on Website, min: 1000, points: 15}

When the user gives no sheet, training derives one from the training rows
(`derive_points`): each frequent category value, and each quartile of a number, gets
points in proportion to how much more (or less) often such leads converted, which is
how marketers build such sheets by hand.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.points.matrix import RulesError, _where
from features.table.spec import TableSpec

#: points of a value that converts twice as often as the average lead
POINTS_PER_DOUBLING = 10.0
#: a derived rule needs this many training rows with the value
MIN_ROWS = 30
#: derived points are capped at +-this
MAX_POINTS = 30.0
#: with derived points, the top share of training leads by points are MQLs
DERIVED_MQL_SHARE = 0.2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TableRule(_Strict):
    name: Annotated[str, Field(min_length=1)]
    column: Annotated[str, Field(min_length=1)]
    points: float
    in_: list[str] | None = Field(default=None, alias="in")
    min: float | None = None
    max: float | None = None
    group: Literal["fit", "engagement"] | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> TableRule:
        if (self.in_ is None) == (self.min is None and self.max is None):
            raise ValueError("give `in: [values]` (a category) or `min`/`max` (a number)")
        if self.in_ is not None and not self.in_:
            raise ValueError("`in` needs at least one value")
        return self


class TableRules(_Strict):
    kind: Literal["table"] = "table"
    mql_threshold: float
    rules: list[TableRule]

    @model_validator(mode="after")
    def _unique_names(self) -> TableRules:
        names = [r.name for r in self.rules]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"rule names must be unique: {', '.join(twice)}")
        return self


def parse_table_rules(data: Any, source: str = "table rules") -> TableRules:
    """Validate a parsed YAML document; raises RulesError naming the keys at fault."""
    if not isinstance(data, dict):
        raise RulesError(f"{source}: expected a mapping with kind: table, mql_threshold, rules")
    try:
        return TableRules.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {_where(e['loc'])}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise RulesError(f"{source} is not a valid points sheet:\n" + "\n".join(lines)) from None


def load_table_rules(path: str | Path) -> TableRules:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read the points sheet {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{path} is not YAML: {exc}") from exc
    return parse_table_rules(data, str(path))


def table_rules_yaml(rules: TableRules) -> str:
    data = rules.model_dump(by_alias=True, exclude_none=True, mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def check_columns(rules: TableRules, spec: TableSpec) -> None:
    """Every rule's column is a model input of the right kind, or a RulesError."""
    problems = []
    for i, rule in enumerate(rules.rules):
        where = f"  rules[{i}] ({rule.name}): column {rule.column!r}"
        if rule.column in spec.numeric:
            if rule.in_ is not None:
                problems.append(f"{where} is a number; use min/max")
        elif rule.column in spec.categorical:
            if rule.in_ is None:
                problems.append(f"{where} is a category; use in")
        else:
            why = spec.dropped.get(rule.column, "not in the table")
            problems.append(f"{where} is not used: {why}")
    if problems:
        raise RulesError("the points sheet does not fit the table:\n" + "\n".join(problems))


@dataclass
class TableScores:
    """Points of n leads, with the rules behind them."""

    rules: TableRules
    fired: np.ndarray  # (n, rules) bool
    points: np.ndarray  # (n, rules)
    total: np.ndarray
    mql: np.ndarray

    def subtotal(self, group: str) -> np.ndarray | None:
        """Points of the rules of one group, or None when no rule belongs to it."""
        members = [j for j, r in enumerate(self.rules.rules) if r.group == group]
        return self.points[:, members].sum(axis=1) if members else None

    def breakdown(self, i: int) -> list[dict[str, Any]]:
        """Every rule lead i matched; the points sum to its total."""
        return [
            {
                "rule": rule.name,
                "group": rule.group or "attributes",
                "count": 1,
                "decay": 1.0,
                "points": round(float(self.points[i, j]), 2),
            }
            for j, rule in enumerate(self.rules.rules)
            if self.fired[i, j]
        ]

    def top_rules(self, i: int, k: int = 3) -> str:
        lines = sorted(self.breakdown(i), key=lambda line: -abs(line["points"]))[:k]
        return "; ".join(f"{line['rule']} {line['points']:+.1f}" for line in lines)


def score_table_rules(
    rules: TableRules, inputs: pd.DataFrame | Mapping[str, np.ndarray]
) -> TableScores:
    """Points of every row of the model's inputs (`model_inputs` or `input_columns`:
    numbers as float, categories as text or None)."""
    n = len(next(iter(inputs.values()))) if isinstance(inputs, Mapping) else len(inputs)
    fired = np.zeros((n, len(rules.rules)), dtype=bool)
    for j, rule in enumerate(rules.rules):
        column = inputs[rule.column]
        if rule.in_ is not None:
            wanted = {v.strip().lower() for v in rule.in_}
            fired[:, j] = [v is not None and str(v).strip().lower() in wanted for v in column]
        else:
            values = np.asarray(column, dtype=float)
            lo = -np.inf if rule.min is None else rule.min
            hi = np.inf if rule.max is None else rule.max
            with np.errstate(invalid="ignore"):
                fired[:, j] = (values >= lo) & (values <= hi)
    points = fired * np.array([r.points for r in rules.rules], dtype=float)
    total = np.round(points.sum(axis=1), 2)  # the MQL flag follows the points shown
    return TableScores(rules, fired, points, total, total >= rules.mql_threshold)


def derive_points(inputs: pd.DataFrame, y: np.ndarray, spec: TableSpec) -> TableRules:
    """A points sheet from training rows: points = 10 x log2(conversion rate / average).

    Categories: each value with at least MIN_ROWS rows. Numbers: each quartile range
    (from the training rows). Points are rounded and capped at +-MAX_POINTS; rules
    worth under 1 point are left out. The MQL threshold flags the top
    DERIVED_MQL_SHARE of the training leads.
    """
    base = float(np.mean(y))
    rules: list[TableRule] = []

    def points_of(mask: np.ndarray) -> float | None:
        if mask.sum() < MIN_ROWS or base in (0.0, 1.0):
            return None
        rate = (y[mask].sum() + base) / (mask.sum() + 1.0)  # one pseudo-lead at the average
        value = float(
            np.clip(round(POINTS_PER_DOUBLING * np.log2(rate / base)), -MAX_POINTS, MAX_POINTS)
        )
        return value if abs(value) >= 1 else None

    for name in spec.categorical:
        column = inputs[name].to_numpy(dtype=object)
        for value in pd.Series(column).dropna().value_counts().index:
            p = points_of(column == value)
            if p is not None:
                condition: dict[str, Any] = {"in": [value]}
                name_ = f"{name} = {value}"
                rules.append(TableRule(name=name_, column=name, points=p, **condition))
    for name in spec.numeric:
        values = inputs[name].to_numpy(dtype=float, na_value=np.nan)
        if not np.isfinite(values).any():
            continue
        edges = np.unique(np.nanquantile(values, [0.25, 0.5, 0.75]))
        for lo, hi in itertools.pairwise([-np.inf, *edges, np.inf]):
            # [lo, hi) as min/max: hi is exclusive, so the rule's max sits just below it.
            with np.errstate(invalid="ignore"):
                mask = (values >= lo) & (values < hi)
            p = points_of(mask)
            if p is None:
                continue
            lo_txt = "" if np.isinf(lo) else f"{lo:g} <= "
            hi_txt = "" if np.isinf(hi) else f" < {hi:g}"
            rules.append(
                TableRule(
                    name=f"{lo_txt}{name}{hi_txt}",
                    column=name,
                    points=p,
                    min=None if np.isinf(lo) else float(lo),
                    max=None if np.isinf(hi) else float(np.nextafter(hi, -np.inf)),
                )
            )
    sheet = TableRules(mql_threshold=0.0, rules=rules)
    total = score_table_rules(sheet, inputs).total
    threshold = float(np.quantile(total, 1 - DERIVED_MQL_SHARE)) if len(total) else 0.0
    return TableRules(mql_threshold=max(threshold, 1.0), rules=rules)
