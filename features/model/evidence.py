"""The model's holdout evidence: what the workspace shows marketing, kept with the model.

A model is judged on its time-ordered holdout; the marketing workspace answers its
questions (which signals matter, where the points disagree with the model, what a
points change would do) from that same holdout, so it travels inside the model folder
(`holdout.parquet` and `holdout.json`) and is read with it by the server. Per holdout
snapshot it keeps:

- ids, as_of, the outcome (`converted`), the model's probability (from the selection
  twin, which never saw these rows: the registered model was refitted on them), the
  points total and MQL flag of the model's matrix;
- the model's inputs (the snapshot's features as the training set has them);
- what each points rule matched (`count::RULE`, `weight::RULE`: touchpoints and their
  summed decay), so another matrix's values can be tried without the events
  (`features.points.engine.revalue`);
- TreeSHAP contributions of the registered model (`shap::FEATURE`) on a sample
  (`explained`), which is what "what matters" ranks by.

Also the suggested point values (`training.suggest`) with their evidence, when the data
had enough conversions for them. Rows beyond `MAX_ROWS` are sampled (seeded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

EVIDENCE_FILE: Final = "holdout.parquet"
EVIDENCE_META: Final = "holdout.json"
#: holdout rows kept with a model (a random, seeded sample beyond it)
MAX_ROWS: Final = 50_000


@dataclass
class Evidence:
    frame: (
        pd.DataFrame
    )  # contact_id, account_id, as_of, converted, probability, points, mql, then the features
    rule_names: list[str]  # the engine's order: engagement rules, then fit rules
    count: np.ndarray  # (rows, rules)
    weight: np.ndarray  # (rows, rules)
    shap: np.ndarray  # (explained rows, features): the registered model's contributions
    explained: np.ndarray  # positions of those rows in `frame`
    features: list[str]
    suggestions: list[dict[str, Any]] | None = None  # per rule, see training.suggest
    suggestion_note: str = ""  # why there are none
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.frame)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        columns: dict[str, Any] = {c: self.frame[c] for c in self.frame.columns}
        for j, name in enumerate(self.rule_names):
            columns[f"count::{name}"] = self.count[:, j].astype(np.float32)
            columns[f"weight::{name}"] = self.weight[:, j].astype(np.float32)
        shap = np.full((self.rows, len(self.features)), np.nan, dtype=np.float32)
        shap[self.explained] = self.shap
        for j, name in enumerate(self.features):
            columns[f"shap::{name}"] = shap[:, j]
        pd.DataFrame(columns).to_parquet(folder / EVIDENCE_FILE, index=False)
        (folder / EVIDENCE_META).write_text(
            json.dumps(
                {
                    "rule_names": self.rule_names,
                    "features": self.features,
                    "explained": self.explained.tolist(),
                    "suggestions": self.suggestions,
                    "suggestion_note": self.suggestion_note,
                    "meta": self.meta,
                },
                default=str,
            )
        )

    @classmethod
    def load(cls, folder: str | Path) -> Evidence | None:
        """The evidence in a model folder (None for models trained before it was kept)."""
        folder = Path(folder)
        if not (folder / EVIDENCE_FILE).exists() or not (folder / EVIDENCE_META).exists():
            return None
        meta = json.loads((folder / EVIDENCE_META).read_text())
        table = pd.read_parquet(folder / EVIDENCE_FILE)
        rules, features = meta["rule_names"], meta["features"]
        explained = np.asarray(meta["explained"], dtype=np.int64)
        plain = [c for c in table.columns if "::" not in c]
        shap = table[[f"shap::{f}" for f in features]].to_numpy(np.float64)[explained]
        return cls(
            frame=table[plain].reset_index(drop=True),
            rule_names=rules,
            count=table[[f"count::{r}" for r in rules]].to_numpy(np.float64),
            weight=table[[f"weight::{r}" for r in rules]].to_numpy(np.float64),
            shap=shap,
            explained=explained,
            features=features,
            suggestions=meta.get("suggestions"),
            suggestion_note=meta.get("suggestion_note", ""),
            meta=meta.get("meta", {}),
        )


def sample_rows(n: int, seed: int, limit: int = MAX_ROWS) -> np.ndarray:
    """Which of n holdout rows are kept (all of them up to `limit`), in their order."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
