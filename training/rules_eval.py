"""How well does a points matrix rank leads? Measured on the CRM's own outcomes.

The same training snapshots the model learns from (eligible, mature, point in time)
are scored with the matrix. The report gives ROC AUC and PR AUC of the points, the MQL
share, precision and recall, and the conversion rate of every fit grade and engagement
band, so a matrix can be judged and compared with another before it goes live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from features.crm.load import CRM
from features.pipeline.snapshots import SnapshotConfig, SnapshotPairs, snapshot_pairs
from features.pipeline.store import EventStore
from features.points.engine import RuleScores, score_rules
from features.points.matrix import RulesConfig


@dataclass(frozen=True)
class RulesEvaluation:
    snapshots: int
    conversions: int
    base_rate: float
    roc_auc: float
    pr_auc: float
    mql_share: float
    mql_precision: float
    mql_recall: float
    by_grade: dict[str, tuple[float, float]]  # "fit A" / "engagement 1" -> (share, conversion)

    def to_text(self) -> str:
        lines = [
            f"snapshots {self.snapshots:,}  conversions {self.conversions:,}  "
            f"base rate {self.base_rate:.2%}",
            f"points ROC AUC {self.roc_auc:.3f}  PR AUC {self.pr_auc:.3f}",
            f"MQL share {self.mql_share:.2%}  precision {self.mql_precision:.2%}  "
            f"recall {self.mql_recall:.2%}",
            "conversion by grade:",
        ]
        lines += [
            f"  {k:<13} share {s:6.1%}  conversion {c:6.2%}" for k, (s, c) in self.by_grade.items()
        ]
        return "\n".join(lines)


def evaluate_rules(
    crm: CRM,
    config: RulesConfig,
    cfg: SnapshotConfig | None = None,
    store: EventStore | None = None,
) -> RulesEvaluation:
    """Score the training snapshots with ``config`` and measure how well points rank them."""
    pairs, scores = scored_snapshots(crm, config, cfg, store)
    y = pairs.converted.astype(int)
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError(f"{len(y):,} snapshots with {int(y.sum())} conversions: nothing to rank")
    grade = scores.grade.astype(str)
    by_grade: dict[str, tuple[float, float]] = {}
    for position, name, values in ((0, "fit", "ABCD"), (1, "engagement", "1234")):
        for value in values:
            mask = np.array([g[position] == value for g in grade])
            rate = float(y[mask].mean()) if mask.any() else float("nan")
            by_grade[f"{name} {value}"] = (float(mask.mean()), rate)
    mql = scores.mql
    return RulesEvaluation(
        snapshots=len(y),
        conversions=int(y.sum()),
        base_rate=float(y.mean()),
        roc_auc=float(roc_auc_score(y, scores.total)),
        pr_auc=float(average_precision_score(y, scores.total)),
        mql_share=float(mql.mean()),
        mql_precision=float(y[mql].mean()) if mql.any() else float("nan"),
        mql_recall=float(mql[y == 1].mean()),
        by_grade=by_grade,
    )


def scored_snapshots(
    crm: CRM,
    config: RulesConfig,
    cfg: SnapshotConfig | None = None,
    store: EventStore | None = None,
) -> tuple[SnapshotPairs, RuleScores]:
    """The training snapshots (pairs and labels) and their points under ``config``."""
    store = store or EventStore.from_crm(crm)
    pairs = snapshot_pairs(crm, cfg or SnapshotConfig(), store)
    return pairs, score_rules(config, store, pairs.contacts, pairs.as_of)
