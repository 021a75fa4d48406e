"""The points matrix as data: a YAML file, validated into typed rules.

Marketing owns this file. `features/points/default_rules.yaml` ships with the package and
`docs/rules.md` explains every value; a user passes their own with `--rules FILE`. A
mistake in the file is reported with the key it is under (`rules[7].points`) and what
was expected, never as a stack trace.

Shape:

    version: 1
    mql_threshold: 100            # total points at which a lead is marketing-qualified
    groups:                       # every rule belongs to one group
      intent: {kind: engagement, cap: 150, decay: {half_life_days: 21}}
      fit: {kind: fit, cap: 60}
    rules:
      - name: demo_request        # engagement rule: per matching touchpoint
        group: intent
        types: [demo_request]
        topic: product            # optional: only touchpoints with this topic
        points: 50
        cap: 100                  # optional: the most this rule can add (or take away)
      - name: c_level             # fit rule: once when the contact matches
        group: fit
        attribute: seniority
        in: [c_level, vp]
        points: 15
    grades:
      fit: {A: 40, B: 25, C: 10}            # fit points at or above -> letter, else D
      engagement: {"1": 75, "2": 40, "3": 15}  # engagement points at or above -> number, else 4

Engagement rules are matched first-match-wins in file order: a touchpoint scores with the
first rule whose types (and topic, when given) fit it, so "product webinar" before
"any webinar" gives a product webinar the higher value, once. Fit rules are independent
conditions: every one that matches fires once.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.crm.taxonomy import DEPARTMENTS, SENIORITY_LEVELS, TOPICS, TOUCHPOINT_TYPES

DEFAULT_RULES = "default_rules.yaml"

#: attributes a fit rule can test, and how
CATEGORY_ATTRIBUTES = ("industry", "country", "seniority", "department", "lead_source")
RANGE_ATTRIBUTES = ("employees", "annual_revenue")
FLAG_ATTRIBUTES = ("free_mail",)
TEXT_ATTRIBUTES = ("job_title",)
ATTRIBUTES = CATEGORY_ATTRIBUTES + RANGE_ATTRIBUTES + FLAG_ATTRIBUTES + TEXT_ATTRIBUTES


class RulesError(ValueError):
    """The rules file is wrong; the message names the key and what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Decay(_Strict):
    """How engagement ages: a half-life, or a window after which it no longer counts."""

    half_life_days: Annotated[float, Field(gt=0)] | None = None
    window_days: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Decay:
        if (self.half_life_days is None) == (self.window_days is None):
            raise ValueError("give exactly one of half_life_days or window_days")
        return self


class Group(_Strict):
    kind: Literal["fit", "engagement"]
    cap: Annotated[float, Field(gt=0)] | None = None  # the most the group adds
    floor: Annotated[float, Field(lt=0)] | None = None  # the most the group takes away
    decay: Decay | None = None

    @model_validator(mode="after")
    def _decay_only_for_engagement(self) -> Group:
        if self.kind == "fit" and self.decay is not None:
            raise ValueError("a fit group does not decay; remove decay")
        return self


class Rule(_Strict):
    name: Annotated[str, Field(min_length=1)]
    group: str
    points: float
    cap: Annotated[float, Field(gt=0)] | None = None
    # engagement rules
    types: list[str] | None = None
    topic: Literal["product", "general"] | None = None
    # fit rules
    attribute: str | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    min: float | None = None
    max: float | None = None
    equals: bool | None = None
    matches: str | None = None

    @property
    def is_engagement(self) -> bool:
        return self.types is not None

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if (self.types is None) == (self.attribute is None):
            raise ValueError("an engagement rule has types, a fit rule has attribute; give one")
        if self.types is not None:
            unknown = [t for t in self.types if t not in TOUCHPOINT_TYPES]
            if unknown or not self.types:
                raise ValueError(f"types must be touchpoint types of the taxonomy, not {unknown}")
            return self
        attr = self.attribute
        if attr not in ATTRIBUTES:
            raise ValueError(f"attribute {attr!r} is not one of {', '.join(ATTRIBUTES)}")
        if attr in CATEGORY_ATTRIBUTES:
            if not self.in_:
                raise ValueError(f"a rule on {attr} needs `in: [values...]`")
            allowed = {"seniority": SENIORITY_LEVELS, "department": DEPARTMENTS}.get(attr)
            bad = [v for v in self.in_ if allowed and v not in allowed]
            if bad:
                raise ValueError(
                    f"{attr} values must be among {', '.join(allowed or ())}, not {bad}"
                )
        elif attr in RANGE_ATTRIBUTES:
            if self.min is None and self.max is None:
                raise ValueError(f"a rule on {attr} needs min and/or max")
        elif attr in FLAG_ATTRIBUTES:
            if self.equals is None:
                raise ValueError(f"a rule on {attr} needs `equals: true` or `equals: false`")
        elif self.matches is None:
            raise ValueError(f"a rule on {attr} needs `matches: <regular expression>`")
        else:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"matches is not a regular expression: {exc}") from exc
        return self


class Grades(_Strict):
    fit: dict[Literal["A", "B", "C"], float]
    engagement: dict[Literal["1", "2", "3"], float]

    @model_validator(mode="after")
    def _ordered(self) -> Grades:
        for name, bands, order in (
            ("fit", self.fit, "ABC"),
            ("engagement", self.engagement, "123"),
        ):
            if set(bands) != set(order):
                raise ValueError(f"grades.{name} needs exactly the bands {', '.join(order)}")
            values = [bands[k] for k in order]  # type: ignore[index]
            if values != sorted(values, reverse=True):
                raise ValueError(
                    f"grades.{name} thresholds must fall from {order[0]} to {order[-1]}"
                )
        return self


class RulesConfig(_Strict):
    version: Literal[1] = 1
    mql_threshold: float
    groups: dict[str, Group]
    rules: list[Rule]
    grades: Grades

    @model_validator(mode="after")
    def _consistent(self) -> RulesConfig:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        for i, rule in enumerate(self.rules):
            group = self.groups.get(rule.group)
            if group is None:
                raise ValueError(
                    f"rules[{i}] ({rule.name}): group {rule.group!r} is not defined "
                    f"under groups (defined: {', '.join(self.groups)})"
                )
            if (group.kind == "engagement") != rule.is_engagement:
                raise ValueError(
                    f"rules[{i}] ({rule.name}): a {'touchpoint' if rule.is_engagement else 'fit'} "
                    f"rule cannot be in the {group.kind} group {rule.group!r}"
                )
        return self

    @property
    def engagement_rules(self) -> list[Rule]:
        return [r for r in self.rules if r.is_engagement]

    @property
    def fit_rules(self) -> list[Rule]:
        return [r for r in self.rules if not r.is_engagement]


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_rules(data: Any, source: str = "rules") -> RulesConfig:
    """Validate a parsed YAML document; raises RulesError naming the keys at fault."""
    if not isinstance(data, dict):
        raise RulesError(
            f"{source}: expected a mapping with mql_threshold, groups, rules and grades"
        )
    try:
        return RulesConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            message = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"  {_where(err['loc'])}: {message}")
        raise RulesError(f"{source} is not a valid points matrix:\n" + "\n".join(lines)) from None


def load_rules(path: str | Path | None = None) -> RulesConfig:
    """The points matrix at ``path``, or the shipped default (parsed once per process:
    the API falls back to it for a model without its own matrix, on every request)."""
    if path is None:
        return _default_rules()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from exc
    return _parse_text(text, str(path))


@lru_cache(maxsize=1)
def _default_rules() -> RulesConfig:
    text = resources.files("features.points").joinpath(DEFAULT_RULES).read_text(encoding="utf-8")
    return _parse_text(text, f"the default rules ({DEFAULT_RULES})")


def _parse_text(text: str, source: str) -> RulesConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"{source} is not valid YAML: {exc}") from exc
    return parse_rules(data, source)


def rules_yaml(config: RulesConfig) -> str:
    """The matrix as YAML text (for suggestions and for logging the rules a model used)."""
    data = config.model_dump(by_alias=True, exclude_none=True, mode="json")
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


__all__ = ["TOPICS", "RulesConfig", "RulesError", "load_rules", "parse_rules", "rules_yaml"]
