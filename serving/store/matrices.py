"""The points matrix marketing applied from the workspace, over the model's own.

A model carries the matrix it was compared with at training (`rules.yaml`); marketing
may then change the point values (the workspace's what-if editor) and apply the result.
Each application is a row of `point_matrices` (who, when, the whole YAML, the champion
it was applied under); the newest is in effect for every live score and rescoring run,
whichever model is served, until another is applied. Applying triggers a rescoring run
(trigger `rescore`, run reason `matrix`), so every lead's points move at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from sqlalchemy import func, insert, select

from features.points.matrix import RulesConfig, parse_rules, rules_yaml
from serving.store.engine import Store, now_us
from serving.store.tables import point_matrices


@dataclass(frozen=True)
class AppliedMatrix:
    matrix_id: int
    applied_us: int
    applied_by: str
    rules: RulesConfig
    rules_yaml: str
    model_name: str
    model_version: str
    note: str | None


def _matrix(row: object) -> AppliedMatrix:
    values = dict(row._mapping)  # type: ignore[attr-defined]
    text = values["rules_yaml"]
    return AppliedMatrix(
        rules=parse_rules(yaml.safe_load(text), f"applied matrix {values['matrix_id']}"),
        **values,
    )


def latest_id(store: Store) -> int | None:
    """The id of the matrix in effect (a cheap query each worker polls)."""
    with store.read() as connection:
        found = connection.execute(select(func.max(point_matrices.c.matrix_id))).scalar()
    return None if found is None else int(found)


def in_effect(store: Store) -> AppliedMatrix | None:
    with store.read() as connection:
        row = connection.execute(
            select(point_matrices).order_by(point_matrices.c.matrix_id.desc()).limit(1)
        ).first()
    return None if row is None else _matrix(row)


def history(store: Store, limit: int = 50) -> list[AppliedMatrix]:
    """The matrices applied, newest first."""
    with store.read() as connection:
        rows = connection.execute(
            select(point_matrices).order_by(point_matrices.c.matrix_id.desc()).limit(limit)
        ).all()
    return [_matrix(row) for row in rows]


def apply_matrix(
    store: Store, rules: RulesConfig, by: str, model_name: str, model_version: str, note: str = ""
) -> AppliedMatrix:
    """Record ``rules`` as the matrix in effect (the caller rescores)."""
    text = rules_yaml(rules)
    with store.write() as connection:
        matrix_id = connection.execute(
            insert(point_matrices).values(
                applied_us=now_us(),
                applied_by=by[:200],
                rules_yaml=text,
                model_name=model_name,
                model_version=model_version,
                note=note[:500] or None,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    found = in_effect(store)
    assert found is not None and found.matrix_id == matrix_id
    return found
