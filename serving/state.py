"""The loaded model, swappable without downtime.

`ModelHolder.current` is one immutable `LoadedModel`; a request takes that reference
once and uses it to the end, so a reload (an admin call, or the alias moving) swaps the
reference atomically while in-flight requests finish on the model they started with.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from features.model.pyfunc import load_scorer
from features.model.scorer import LeadScorer
from features.points.matrix import RulesConfig

if TYPE_CHECKING:
    from serving.store.matrices import AppliedMatrix

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    scorer: LeadScorer
    name: str
    version: str
    alias: str
    uri: str
    #: the matrix applied from the workspace that `scorer.rules` now holds (None: the
    #: model's own), and the model's own matrix (what its holdout evidence was found with)
    matrix_id: int | None = None
    trained_rules: RulesConfig | None = None


def with_matrix(loaded: LoadedModel, matrix: AppliedMatrix | None) -> LoadedModel:
    """``loaded`` scoring points with ``matrix`` (None: with the model's own matrix)."""
    if loaded.scorer.kind != "touchpoint":
        return loaded
    own = loaded.trained_rules or loaded.scorer.rules  # (set wherever a model is loaded)
    rules, matrix_id = (own, None) if matrix is None else (matrix.rules, matrix.matrix_id)
    scorer = dataclasses.replace(loaded.scorer, rules=rules)
    if scorer.selection is not None:
        scorer.selection = dataclasses.replace(scorer.selection, rules=rules)
    return dataclasses.replace(loaded, scorer=scorer, matrix_id=matrix_id, trained_rules=own)


class ModelHolder:
    """The served model; ``evidence``: load its holdout evidence too (the workspace)."""

    def __init__(self, uri: str, evidence: bool = False) -> None:
        self.uri = uri
        self.evidence = evidence
        self._current: LoadedModel | None = None
        self._matrix: AppliedMatrix | None = None
        self._lock = threading.Lock()  # one load at a time; reads never wait

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def load(self) -> LoadedModel:
        """Load the model at the URI (what the alias points to now) and swap it in."""
        with self._lock:
            scorer, info = load_scorer(self.uri, evidence=self.evidence)
            scorer.tabulate()  # each lead's reasons from TreeSHAP tables
            loaded = LoadedModel(
                scorer,
                info["name"] or self.uri,
                info["version"],
                info["alias"],
                self.uri,
                trained_rules=scorer.rules,
            )
            loaded = with_matrix(loaded, self._matrix)
            self._current = loaded
        logger.info("serving %s version %s (%s)", loaded.name, loaded.version, self.uri)
        return loaded

    def use_matrix(self, matrix: AppliedMatrix | None) -> None:
        """Score points with ``matrix`` from now on (None: the model's own)."""
        with self._lock:
            self._matrix = matrix
            if self._current is not None:
                self._current = with_matrix(self._current, matrix)

    @property
    def matrix_id(self) -> int | None:
        return None if self._matrix is None else self._matrix.matrix_id

    def alias_moved(self) -> bool:
        """True when the alias now points to another version than the one served."""
        current = self._current
        if current is None or not current.alias:
            return current is None
        from mlflow import MlflowClient

        latest = MlflowClient().get_model_version_by_alias(current.name, current.alias).version
        return str(latest) != current.version
