"""The model artifact: a fitted booster with everything needed to use it the same way
offline and online.

`LeadScorer` holds the LightGBM booster, the feature order, the vocabularies of the
categorical features, the probability calibration and the points matrix the model was
evaluated with. It turns a `FeatureBlock` into the model's matrix (encoding categories
exactly as in training: unseen values become missing), returns calibrated
probabilities, and explains them with LightGBM's own TreeSHAP contributions.

It lives in `features/` because both sides use it: `training/` builds and logs it, and
`serving/` loads it by model URI and must not import `training/`. It is saved as plain
files (booster text, JSON, YAML), not pickles. `features.model.pyfunc` wraps it as an MLflow
pyfunc, so any MLflow-compatible platform can serve it too.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.model.evidence import Evidence
from features.model.linear import LinearModel
from features.model.treeshap import TreeShap
from features.pipeline.kernel import FeatureBlock
from features.pipeline.registry import CATEGORICAL, NUMERIC
from features.points.matrix import RulesConfig, parse_rules, rules_yaml
from features.points.table_sheet import TableRules, load_table_rules, table_rules_yaml
from features.table.spec import TableSpec

logger = logging.getLogger(__name__)

BOOSTER_FILE = "booster.txt"
LINEAR_FILE = "linear.json"
SCORER_FILE = "scorer.json"
#: the twin fitted without the holdout (see `LeadScorer.selection`)
SELECTION_FOLDER = "selection"
RULES_FILE = "rules.yaml"
TABLE_RULES_FILE = "table_rules.yaml"
#: what a model scores: touchpoint histories (a CRM export), or rows of a flat lead table
Kind = Literal["touchpoint", "table"]
#: how it scores them: gradient-boosted trees, or the logistic regression of
#: `features.model.linear` (registered when the trees learned nothing)
Estimator = Literal["lightgbm", "logistic"]


@dataclass(frozen=True)
class Calibration:
    """Maps the booster's raw probability to a calibrated one (or leaves it)."""

    method: Literal["none", "isotonic", "platt"] = "none"
    x: tuple[float, ...] = ()  # isotonic: breakpoints of the raw probability
    y: tuple[float, ...] = ()  # isotonic: calibrated values at the breakpoints
    a: float = 1.0  # platt: sigmoid(a * logit(p) + b)
    b: float = 0.0

    def apply(self, p: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(p, self.x, self.y)
        if self.method == "platt":
            clipped = np.clip(p, 1e-7, 1 - 1e-7)
            logit = np.log(clipped / (1 - clipped))
            return 1.0 / (1.0 + np.exp(-(self.a * logit + self.b)))
        return p


def _threads(work: int) -> int:
    """LightGBM threads for a prediction: one for a few rows (starting OpenMP threads
    costs more than a single lead's prediction), all cores (0) for a batch."""
    return 1 if work < 5_000 or _Forked.since_import else 0


def _explain_threads(rows: int) -> int:
    """LightGBM threads for TreeSHAP, which it splits by rows: one for one row, all cores
    from two rows on. A row's TreeSHAP (2-3 ms for a few hundred trees) is ~100 times
    its prediction, so two rows already pay for waking the threads: 20 rows took 31 ms
    on two threads against 63 ms on one."""
    return 1 if rows < 2 or _Forked.since_import else 0


class _Forked:
    """Whether this process is a fork of one that had this module: GNU OpenMP (which
    LightGBM uses) does not survive a fork. A child forked after its parent ran LightGBM
    on several threads hangs at its first multi-threaded call (a pre-forking server's
    workers after the parent warmed up on a batch). A forked child runs LightGBM on one
    thread; processes that are spawned (uvicorn's and Dask's workers) are not forks."""

    since_import = False


def _mark_forked() -> None:
    _Forked.since_import = True


if hasattr(os, "register_at_fork"):  # (POSIX; elsewhere nothing forks)
    os.register_at_fork(after_in_child=_mark_forked)


@dataclass
class LeadScorer:
    """A trained lead-scoring model and how to feed and read it."""

    booster: lgb.Booster | None
    vocabularies: dict[str, list[str]]  # categorical feature -> known values (code = index)
    calibration: Calibration = Calibration()
    rules: RulesConfig | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    table_rules: TableRules | None = None  # the points sheet of a table model

    numeric: tuple[str, ...] = NUMERIC
    categorical: tuple[str, ...] = CATEGORICAL
    linear: LinearModel | None = None  # instead of the booster
    #: the same recipe fitted without the holdout: the registered model is refitted on
    #: every row, so its own figures on the holdout would be in-sample; `promote` judges
    #: a challenger by this twin
    selection: LeadScorer | None = None
    #: the holdout as the marketing workspace reads it (saved with the model; read back
    #: only when asked: `load(folder, evidence=True)`)
    evidence: Evidence | None = None
    #: TreeSHAP tables that explain one row faster than LightGBM (see `tabulate`); not
    #: saved: built from the booster by a process that explains leads one at a time
    shap_tables: TreeShap | None = None

    @property
    def estimator(self) -> Estimator:
        return "logistic" if self.linear is not None else "lightgbm"

    @property
    def kind(self) -> Kind:
        """What the model scores: a contact's history ("touchpoint") or a table row ("table")."""
        return "table" if self.metadata.get("kind") == "table" else "touchpoint"

    @property
    def table_spec(self) -> TableSpec:
        """How a table model reads its table (only for kind "table")."""
        if self.kind != "table":
            raise ValueError("this model scores touchpoint histories, not a lead table")
        return TableSpec.from_dict(self.metadata["table"])

    @property
    def feature_names(self) -> list[str]:
        """The model's column order: numeric features, then categorical codes."""
        return [*self.numeric, *self.categorical]

    # --- inputs ---------------------------------------------------------------------

    def encode(self, name: str, values: np.ndarray | pd.Series) -> np.ndarray:
        """Category codes of a categorical feature as float; unknown or missing -> NaN."""
        vocabulary = self.vocabularies[name]
        if len(values) > 64:  # many rows: pandas' hash join; a lead or two: a dict lookup
            # (unseen values -> -1; pd.Categorical with unseen values is deprecated)
            wanted = pd.Index(np.asarray(values, dtype=object), dtype=object)
            codes = pd.Index(vocabulary, dtype=object).get_indexer(wanted)
            out = codes.astype(float)
            out[codes < 0] = np.nan
            return out
        index = {v: i for i, v in enumerate(vocabulary)}
        return np.array(
            [index.get(v, np.nan) if isinstance(v, str) else np.nan for v in values], dtype=float
        )

    def matrix(self, block: FeatureBlock) -> np.ndarray:
        """The model's input matrix from a kernel FeatureBlock."""
        return self._matrix(block.numeric, block.categorical)

    def matrix_from_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input matrix from a table with one column per feature."""
        missing = [c for c in self.feature_names if c not in frame.columns]
        if missing:
            raise ValueError(f"the input lacks feature columns: {', '.join(missing[:10])}")
        numeric = frame[list(self.numeric)].to_numpy(dtype=np.float64, na_value=np.nan)
        categorical = {
            name: frame[name].astype(object).where(frame[name].notna(), None).to_numpy()
            for name in self.categorical
        }
        return self._matrix(numeric, categorical)

    def matrix_from_columns(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The model's input matrix from column arrays (a table lead's `input_columns`)."""
        n = len(columns[self.feature_names[0]])
        numeric = np.empty((n, len(self.numeric)))
        for j, name in enumerate(self.numeric):
            numeric[:, j] = columns[name]
        return self._matrix(numeric, {name: columns[name] for name in self.categorical})

    def _matrix(self, numeric: np.ndarray, categorical: Mapping[str, np.ndarray]) -> np.ndarray:
        """Numeric features as they are, then each categorical feature's codes."""
        out = np.empty((numeric.shape[0], len(self.feature_names)), dtype=np.float64)
        out[:, : len(self.numeric)] = numeric
        for j, name in enumerate(self.categorical):
            out[:, len(self.numeric) + j] = self.encode(name, categorical[name])
        return out

    # --- outputs --------------------------------------------------------------------

    def raw_probability(self, x: np.ndarray) -> np.ndarray:
        if self.linear is not None:
            return self.linear.predict(x)
        assert self.booster is not None
        return np.asarray(self.booster.predict(x, num_threads=_threads(len(x))), dtype=float)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probability of conversion within the horizon."""
        return self.calibration.apply(self.raw_probability(x))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions in log-odds, (n, features + 1); the last column is the bias
        (for a logistic model: coefficient x standardised value, see features.model.linear).

        One row is explained from the tables when `tabulate` built them; several rows by
        LightGBM on all its threads, which by two rows is as fast per row as the tables
        (they gain on one row by sparing LightGBM's recursion, not by threads)."""
        if self.linear is not None:
            return self.linear.contributions(x)
        assert self.booster is not None
        if len(x) == 1 and self.shap_tables is not None:
            return self.shap_tables.contributions(x)
        return np.asarray(
            self.booster.predict(x, pred_contrib=True, num_threads=_explain_threads(len(x))),
            dtype=float,
        )

    def tabulate(self) -> LeadScorer:
        """Build the TreeSHAP tables that explain one lead (0.5-1 s and about 20 MB for a
        270- or 368-tree model): a server does it when it loads the model, so that a
        `/v1/score` lead's reasons take 2.6 ms where LightGBM's TreeSHAP took 4.1 ms
        (caches cold, as between requests; docs/benchmarks.md). A short batch run does
        not: it explains rows many at a time. Models that are not tabulated (see
        `features.model.treeshap`) keep LightGBM's TreeSHAP."""
        if self.booster is not None and self.shap_tables is None:
            self.shap_tables = TreeShap.of(self.booster)
            if self.shap_tables is None:  # an operator sees why a lead's reasons cost more
                logger.info("reasons by LightGBM's TreeSHAP: this model is not tabulated")
            else:
                size = self.shap_tables.table.nbytes / 2**20
                logger.info("reasons from TreeSHAP tables (%.0f MB)", size)
        return self

    # --- files ----------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.booster is not None:
            self.booster.save_model(str(folder / BOOSTER_FILE))
        if self.linear is not None:
            (folder / LINEAR_FILE).write_text(json.dumps(self.linear.to_dict()))
        if self.selection is not None:
            self.selection.save(folder / SELECTION_FOLDER)
        state = {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "vocabularies": self.vocabularies,
            "calibration": {
                "method": self.calibration.method,
                "x": list(self.calibration.x),
                "y": list(self.calibration.y),
                "a": self.calibration.a,
                "b": self.calibration.b,
            },
            "metadata": self.metadata,
        }
        (folder / SCORER_FILE).write_text(json.dumps(state, indent=1, default=str))
        if self.rules is not None:
            (folder / RULES_FILE).write_text(rules_yaml(self.rules), encoding="utf-8")
        if self.table_rules is not None:
            (folder / TABLE_RULES_FILE).write_text(
                table_rules_yaml(self.table_rules), encoding="utf-8"
            )
        if self.evidence is not None:
            self.evidence.save(folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path, evidence: bool = False) -> LeadScorer:
        """The scorer saved in ``folder``; with its holdout evidence when asked (the
        workspace reads it; a batch run does not pay for it)."""
        folder = Path(folder)
        state = json.loads((folder / SCORER_FILE).read_text())
        import yaml

        rules_path = folder / RULES_FILE
        rules = (
            parse_rules(yaml.safe_load(rules_path.read_text()), str(rules_path))
            if rules_path.exists()
            else None
        )
        table_rules_path = folder / TABLE_RULES_FILE
        cal = state["calibration"]
        booster_path, linear_path = folder / BOOSTER_FILE, folder / LINEAR_FILE
        selection = folder / SELECTION_FOLDER
        scorer = cls(
            booster=lgb.Booster(model_file=str(booster_path)) if booster_path.exists() else None,
            linear=LinearModel.from_dict(json.loads(linear_path.read_text()))
            if linear_path.exists()
            else None,
            selection=cls.load(selection) if (selection / SCORER_FILE).exists() else None,
            vocabularies=state["vocabularies"],
            calibration=Calibration(
                cal["method"], tuple(cal["x"]), tuple(cal["y"]), cal["a"], cal["b"]
            ),
            rules=rules,
            metadata=state["metadata"],
            table_rules=load_table_rules(table_rules_path) if table_rules_path.exists() else None,
            numeric=tuple(state["numeric"]),
            categorical=tuple(state["categorical"]),
            evidence=Evidence.load(folder) if evidence else None,
        )
        if scorer.selection is not None:  # the twin reads and explains leads as its parent does
            scorer.selection.metadata = scorer.metadata
            scorer.selection.rules = scorer.rules
            scorer.selection.table_rules = scorer.table_rules
        return scorer
