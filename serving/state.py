"""The loaded model, swappable without downtime.

`ModelHolder.current` is one immutable `LoadedModel`; a request takes that reference
once and uses it to the end, so a reload (an admin call, or the alias moving) swaps the
reference atomically while in-flight requests finish on the model they started with.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from features.model.pyfunc import load_scorer
from features.model.scorer import LeadScorer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    scorer: LeadScorer
    name: str
    version: str
    alias: str
    uri: str


class ModelHolder:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # one load at a time; reads never wait

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def load(self) -> LoadedModel:
        """Load the model at the URI (what the alias points to now) and swap it in."""
        with self._lock:
            scorer, info = load_scorer(self.uri)
            loaded = LoadedModel(
                scorer, info["name"] or self.uri, info["version"], info["alias"], self.uri
            )
            self._current = loaded
        logger.info("serving %s version %s (%s)", loaded.name, loaded.version, self.uri)
        return loaded

    def alias_moved(self) -> bool:
        """True when the alias now points to another version than the one served."""
        current = self._current
        if current is None or not current.alias:
            return current is None
        from mlflow import MlflowClient

        latest = MlflowClient().get_model_version_by_alias(current.name, current.alias).version
        return str(latest) != current.version
