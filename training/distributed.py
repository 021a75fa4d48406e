"""`leadscore train --engine dask`: the training run of `training/train.py` on a Dask cluster.

    export ─> partitions by account (features/pipeline/partitions.py), on the workers:
              snapshots, their points, the encoded matrix; nothing of it leaves its worker
    driver:   the dates (split, recency weights), the vocabularies (summed counts), the
              validation rows that decide early stopping (at most `stopping_rows`), and
              per test row its label and scores: a few numbers a row
    cluster:  lightgbm.dask boosts on the rows where they are (data-parallel LightGBM)

The recipe is `training/fitting.py`'s: selection fit early-stopped on validation,
calibration from held-out rows, the twin on fit + validation, the registered model
refitted on every row with the rounds scaled. `lightgbm.dask` has no early stopping (each
worker would judge its own share of the validation rows and stop on its own), so rounds
are chosen here the way the single-node fit chooses them: the weighted log loss of every
iteration on the same stopping sample, the best iteration the first minimum, the fit long
enough when `early_stopping_rounds` iterations passed without improving on it. A fit
that was too short is boosted again from the start with twice the rounds (LightGBM is
deterministic: its first rounds are the same trees), so at most twice the rounds needed
are boosted, usually far fewer than `num_boost_round`.

What is done on a sample and said so: the logistic regression baseline is fitted on at
most `LINEAR_ROWS` fit rows, the drift report reads at most `SAMPLE_ROWS` rows (as it
does on one machine), and no point values are suggested (`leadscore rules suggest`
reads the whole export on one machine).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.crm.load import CsvFormat
from features.model.evidence import sample_rows
from features.model.scorer import Calibration, LeadScorer
from features.pipeline import registry as R
from features.pipeline.partitions import (
    Partition,
    PartitionError,
    dask_client,
    split_export,
)
from features.pipeline.snapshots import SnapshotConfig, build_snapshots
from features.pipeline.store import EventStore, seconds
from features.points.engine import score_rules
from features.points.matrix import RulesConfig, load_rules
from training.drift import SAMPLE_ROWS, drift_report
from training.fitting import (
    FitConfig,
    Fitted,
    Part,
    WeakModelError,
    auc,
    fit_calibration,
    fit_linear,
    join,
    lgb_params,
    recency_weights,
    scaled_rounds,
    stopping_sample,
    weakness,
)
from training.train import (
    Clock,
    Holdout,
    TrainConfig,
    Trained,
    TrainResult,
    compare,
    epoch_seconds,
    holdout_evidence,
    record,
    split,
)
from training.truth import latent_propensity, load_episodes

logger = logging.getLogger(__name__)

#: fit rows the logistic regression baseline is fitted on (gathered to the driver)
LINEAR_ROWS = 200_000

FIT, VALID, TEST, GAP = 0, 1, 2, 3


@dataclass
class Shard:
    """One partition's training rows and their points, kept on the worker that built them."""

    frame: pd.DataFrame
    total: np.ndarray
    mql: np.ndarray
    count: np.ndarray
    decay: np.ndarray
    rule_names: list[str]
    contacts: int
    touchpoints: int


@dataclass
class Encoded:
    """A shard as the model reads it: matrix, labels, slice of each row, row weights."""

    x: np.ndarray
    y: np.ndarray
    slice: np.ndarray
    weight: np.ndarray | None


def _shard(
    part: Partition, cfg: SnapshotConfig, dates: list[pd.Timestamp], end: pd.Timestamp,
    rules: RulesConfig,
) -> Shard | None:  # fmt: skip
    if part.crm is None:
        return None
    store = EventStore.from_crm(part.crm)
    frame, _ = build_snapshots(part.crm, cfg, dates=dates, store=store, end=end)
    frame = frame.reset_index(drop=True)
    contacts = store.contact_index(frame["contact_id"].astype(str).tolist())
    points = score_rules(rules, store, contacts, seconds(frame["as_of"]))
    return Shard(
        frame, points.total, points.mql, points.count, points.decay, list(points.rule_names),
        len(part.crm.contacts), len(part.crm.touchpoints),
    )  # fmt: skip


def _summary(shard: Shard | None) -> dict[str, Any]:
    """What the driver needs of a shard to split and encode: dates, counts, categories."""
    if shard is None or shard.frame.empty:
        contacts, touches = (0, 0) if shard is None else (shard.contacts, shard.touchpoints)
        return {"rows": 0, "positives": 0, "dates": [], "categories": {}, "contacts": contacts,
                "touchpoints": touches}  # fmt: skip
    frame = shard.frame
    return {
        "rows": len(frame),
        "positives": int(frame["converted"].sum()),
        "dates": list(frame["as_of"].unique()),
        "categories": {
            name: frame[name].astype(object).dropna().astype(str).value_counts().to_dict()
            for name in R.CATEGORICAL
        },
        "contacts": shard.contacts,
        "touchpoints": shard.touchpoints,
    }


def vocabularies(summaries: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Known values of each categorical feature over every shard, most frequent first
    (ties by value, so the order does not depend on how the export was partitioned)."""
    out = {}
    for name in R.CATEGORICAL:
        counts: Counter[str] = Counter()
        for summary in summaries:
            counts.update(summary["categories"].get(name, {}))
        out[name] = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return out


@dataclass(frozen=True)
class Bounds:
    """The slices by as_of (training/train.py's `split` over the dates of every shard)."""

    last_fit: pd.Timestamp
    first_valid: pd.Timestamp
    last_valid: pd.Timestamp
    first_test: pd.Timestamp

    def slices(self, as_of: pd.Series) -> np.ndarray:
        out = np.full(len(as_of), GAP, dtype=np.int8)
        out[(as_of <= self.last_fit).to_numpy()] = FIT
        out[((as_of >= self.first_valid) & (as_of <= self.last_valid)).to_numpy()] = VALID
        out[(as_of >= self.first_test).to_numpy()] = TEST
        return out


def _encode(
    shard: Shard | None, template: LeadScorer, bounds: Bounds, half_life: float | None,
    period: tuple[float, float],
) -> Encoded | None:  # fmt: skip
    if shard is None or shard.frame.empty:
        return None
    frame = shard.frame
    weight = recency_weights(epoch_seconds(frame["as_of"]), half_life, period)
    return Encoded(
        template.matrix_from_frame(frame),
        frame["converted"].to_numpy().astype(np.int64),
        bounds.slices(frame["as_of"]),
        weight,
    )


def _sizes(encoded: Encoded | None) -> list[int]:
    if encoded is None:
        return [0, 0, 0, 0]
    return [int((encoded.slice == code).sum()) for code in (FIT, VALID, TEST, GAP)]


def _mask(encoded: Encoded, codes: tuple[int, ...]) -> np.ndarray:
    return np.isin(encoded.slice, codes)


def _take_x(encoded: Encoded, codes: tuple[int, ...]) -> np.ndarray:
    return encoded.x[_mask(encoded, codes)]


def _take_y(encoded: Encoded, codes: tuple[int, ...]) -> np.ndarray:
    return encoded.y[_mask(encoded, codes)]


def _take_weight(encoded: Encoded, codes: tuple[int, ...]) -> np.ndarray:
    assert encoded.weight is not None
    return encoded.weight[_mask(encoded, codes)]


def _rows_of(encoded: Encoded, code: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    at = np.flatnonzero(encoded.slice == code)[rows]
    return encoded.x[at], encoded.y[at]


def _sample_fit(encoded: Encoded | None, share: float, seed: int) -> Part | None:
    if encoded is None:
        return None
    at = np.flatnonzero(encoded.slice == FIT)
    if share < 1:
        at = at[np.random.default_rng(seed).random(len(at)) < share]
    weight = None if encoded.weight is None else encoded.weight[at]
    return Part(encoded.x[at], encoded.y[at], weight)


def _predict(encoded: Encoded | None, scorer: LeadScorer, code: int, raw: bool) -> np.ndarray:
    if encoded is None:
        return np.zeros(0)
    x = encoded.x[encoded.slice == code]
    if len(x) == 0:
        return np.zeros(0)
    return scorer.raw_probability(x) if raw else scorer.predict(x)


def _column(shard: Shard | None, code: int, bounds: Bounds, name: str) -> np.ndarray:
    """A column of the shard's rows of one slice: a frame column or a points array."""
    if shard is None or shard.frame.empty:
        return np.zeros(0, dtype=object)
    rows = bounds.slices(shard.frame["as_of"]) == code
    if name in ("total", "mql"):
        return np.asarray(getattr(shard, name))[rows]
    return shard.frame[name].to_numpy()[rows]


def _test_rows(shard: Shard, bounds: Bounds, rows: np.ndarray) -> dict[str, Any]:
    at = np.flatnonzero(bounds.slices(shard.frame["as_of"]) == TEST)[rows]
    return {
        "frame": shard.frame.iloc[at],
        "total": shard.total[at],
        "mql": shard.mql[at],
        "count": shard.count[at],
        "decay": shard.decay[at],
        "rule_names": shard.rule_names,
    }


def _sample_frame(shard: Shard | None, share: float, seed: int) -> pd.DataFrame | None:
    if shard is None or shard.frame.empty:
        return None
    keep = np.random.default_rng(seed).random(len(shard.frame)) < share
    return shard.frame[keep]


@dataclass
class GatheredPoints:
    """`training.train.MatchedPoints` of the holdout rows gathered from the shards."""

    rule_names: list[str]
    total: np.ndarray
    mql: np.ndarray
    count: np.ndarray
    decay: np.ndarray


class Cluster:
    """The shards' encoded rows on the cluster, and the distributed fits on them."""

    def __init__(
        self, client: Any, encoded: list[Any], sizes: list[list[int]], weighted: bool
    ) -> None:
        self.client = client
        self.encoded = encoded
        self.sizes = sizes
        self.weighted = weighted  # rows carry recency weights

    def count(self, codes: tuple[int, ...]) -> int:
        return sum(sum(s[c] for c in codes) for s in self.sizes)

    def arrays(self, codes: tuple[int, ...], n_features: int) -> tuple[Any, Any, Any | None]:
        """The rows of ``codes`` as Dask arrays (X, y, weight), chunked by shard."""
        import dask.array
        from dask.delayed import delayed

        da: Any = dask.array  # (untyped)

        xs, ys, ws = [], [], []
        for future, sizes in zip(self.encoded, self.sizes, strict=True):
            n = sum(sizes[c] for c in codes)
            if n == 0:
                continue
            xs.append(da.from_delayed(delayed(_take_x)(future, codes), (n, n_features), float))
            ys.append(da.from_delayed(delayed(_take_y)(future, codes), (n,), np.int64))
            ws.append(da.from_delayed(delayed(_take_weight)(future, codes), (n,), float))
        return (
            da.concatenate(xs),
            da.concatenate(ys),
            (da.concatenate(ws) if self.weighted else None),
        )

    def boost(self, template: LeadScorer, codes: tuple[int, ...], rounds: int, cfg: FitConfig
              ) -> lgb.Booster:  # fmt: skip
        """`rounds` of data-parallel LightGBM on the rows of ``codes``, where they are."""
        from lightgbm.dask import DaskLGBMClassifier

        x, y, w = self.arrays(codes, len(template.feature_names))
        # the single-node run's parameters (LightGBM's own names win over the wrapper's
        # aliases); each worker's threads are set by lightgbm.dask from its cores
        params = {k: v for k, v in lgb_params(cfg).items() if k not in ("num_threads", "metric")}
        model = DaskLGBMClassifier(client=self.client, n_estimators=max(1, rounds), **params)
        model.fit(
            x,
            y,
            sample_weight=w,
            feature_name=template.feature_names,
            categorical_feature=list(range(len(template.numeric), len(template.feature_names))),
        )
        return model.booster_

    def predict(self, scorer: LeadScorer, code: int, raw: bool = False) -> np.ndarray:
        parts = self.client.gather(
            self.client.map(_predict, self.encoded, scorer=scorer, code=code, raw=raw)
        )
        return np.concatenate([np.zeros(0), *parts])

    def stopping_rows(self, cfg: FitConfig) -> tuple[Part, np.ndarray]:
        """The validation rows that decide early stopping (`fitting.stopping_sample` over
        every shard's validation rows, in shard order), gathered; and every label."""
        y_valid = np.concatenate(
            [
                np.zeros(0, dtype=np.int64),
                *self.client.gather(
                    [self.client.submit(_take_y, e, (VALID,)) for e in self.encoded]
                ),
            ]
        )
        rows, weight = stopping_sample(y_valid, cfg.stopping_rows, cfg.seed)
        starts = np.cumsum([0] + [s[VALID] for s in self.sizes])
        xs, ys = [], []
        for i, future in enumerate(self.encoded):
            local = rows[(rows >= starts[i]) & (rows < starts[i + 1])] - starts[i]
            if len(local):
                x, y = self.client.submit(_rows_of, future, VALID, local).result()
                xs.append(x)
                ys.append(y)
        return Part(np.vstack(xs), np.concatenate(ys), weight), y_valid


def logloss_curve(booster: lgb.Booster, valid: Part, chunk: int = 100) -> np.ndarray:
    """The weighted binary log loss on ``valid`` after each iteration (LightGBM's
    `binary_logloss`), from the leaves each row falls in: one pass over the trees."""
    n_trees = booster.num_trees()
    raw = np.zeros(len(valid))
    weight = np.ones(len(valid)) if valid.weight is None else valid.weight
    y = valid.y.astype(float)
    curve = np.empty(n_trees)
    for start in range(0, n_trees, chunk):
        k = min(chunk, n_trees - start)
        leaves = np.asarray(
            booster.predict(valid.x, pred_leaf=True, start_iteration=start, num_iteration=k)
        ).reshape(len(valid), k)
        for j in range(k):
            tree = start + j
            column = leaves[:, j]
            values = np.zeros(int(column.max()) + 1)
            for leaf in np.unique(column):
                values[leaf] = booster.get_leaf_output(tree, int(leaf))
            raw += values[column]
            p = np.clip(1.0 / (1.0 + np.exp(-raw)), 1e-15, 1 - 1e-15)
            loss = -(y * np.log(p) + (1 - y) * np.log(1 - p))
            curve[tree] = float(np.sum(weight * loss) / np.sum(weight))
    return curve


def fit_early_stopped(
    cluster: Cluster, template: LeadScorer, stopping: Part, cfg: FitConfig,
    say: Callable[[str], None],
) -> tuple[lgb.Booster, int]:  # fmt: skip
    """The selection booster on the fit rows cut at its best iteration (see the module's
    docstring), and the best iteration."""
    rounds = min(cfg.num_boost_round, max(4 * cfg.early_stopping_rounds, 100))
    while True:
        booster = cluster.boost(template, (FIT,), rounds, cfg)
        curve = logloss_curve(booster, stopping)
        best = int(np.argmin(curve)) + 1
        say(f"boosted {rounds} rounds on the cluster: best iteration {best}")
        if len(curve) - best >= cfg.early_stopping_rounds or rounds >= cfg.num_boost_round:
            break
        rounds = min(2 * rounds, cfg.num_boost_round)
    cut = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    cut.best_iteration = best
    return cut, best


def fit_on_cluster(
    cluster: Cluster, template: LeadScorer, cfg: FitConfig, say: Callable[[str], None]
) -> Fitted:
    """`training.fitting.fit_and_refit` with the rows on the cluster."""
    stopping, y_valid = cluster.stopping_rows(cfg)
    booster, best = fit_early_stopped(cluster, template, stopping, cfg, say)
    selection = replace(template, booster=booster)
    p_valid_raw = cluster.predict(selection, VALID, raw=True)
    selection.calibration = fit_calibration(y_valid, p_valid_raw, cfg)
    n_fit, n_valid = cluster.count((FIT,)), cluster.count((VALID,))
    share = min(1.0, LINEAR_ROWS / max(n_fit, 1))
    sampled = [
        p
        for p in cluster.client.gather(
            [
                cluster.client.submit(_sample_fit, e, share, cfg.seed + i)
                for i, e in enumerate(cluster.encoded)
            ]
        )
        if p is not None and len(p)
    ]
    linear = replace(template, booster=None, linear=fit_linear(template, join(*sampled), cfg))
    valid_auc = {
        "model": auc(y_valid, p_valid_raw),
        "logistic_regression": auc(y_valid, cluster.predict(linear, VALID, raw=True)),
    }
    weak = weakness(booster, valid_auc["model"], cfg.min_valid_auc)
    n_all = cluster.count((FIT, VALID, TEST, GAP))
    y_test = np.concatenate(
        [np.zeros(0, dtype=np.int64),
         *cluster.client.gather([cluster.client.submit(_take_y, e, (TEST,))
                                 for e in cluster.encoded])]
    )  # fmt: skip
    if weak is None or (cfg.allow_weak and valid_auc["logistic_regression"] < cfg.min_valid_auc):
        twin_booster = cluster.boost(
            template, (FIT, VALID), scaled_rounds(best, n_fit + n_valid, n_fit), cfg
        )
        twin_test = cluster.predict(replace(template, booster=twin_booster), TEST, raw=True)
        rounds = scaled_rounds(best, n_all, n_fit)
        say(f"the registered model: {rounds} rounds on all {n_all:,} rows")
        final = replace(
            template,
            booster=cluster.boost(template, (FIT, VALID, TEST, GAP), rounds, cfg),
            calibration=fit_calibration(y_test, twin_test, cfg),
            selection=selection,
        )
        if weak is not None:
            logger.warning("registering a weak model, as asked (--allow-weak): %s", weak)
        return Fitted(selection, linear, final, weak, valid_auc, rounds, n_all, twin_test)
    if valid_auc["logistic_regression"] >= cfg.min_valid_auc:
        logger.warning("%s; registering the logistic regression instead", weak)
        final = replace(template, booster=None, linear=linear.linear,
                        calibration=Calibration("none"), selection=linear)  # fmt: skip
        return Fitted(selection, linear, final, weak, valid_auc, 0, n_all,
                      cluster.predict(linear, TEST, raw=True))  # fmt: skip
    raise WeakModelError(
        f"no model learned anything: {weak}, and the logistic regression's ROC AUC on "
        f"validation is {valid_auc['logistic_regression']:.3f} (< {cfg.min_valid_auc:g}). "
        "Nothing was registered. --allow-weak registers the booster anyway (promote will "
        "not make it champion without --force)."
    )


def train_dask(
    cfg: TrainConfig,
    data: str | Path,
    scheduler: str | None = None,
    n_partitions: int | None = None,
    workers: int | None = None,
    say: Callable[[str], None] = logger.info,
) -> TrainResult:
    """`training.train.train` with the export partitioned by account on a Dask cluster
    (a LocalCluster without ``scheduler``); the model registered is the same kind of
    model, served by the single-node server unchanged."""
    clock = Clock()
    data = Path(data).resolve()
    rules = load_rules(cfg.rules_path)
    snap = cfg.snapshots()
    with dask_client(scheduler, workers) as client:
        n_workers = len(client.scheduler_info()["workers"])
        n = n_partitions or 2 * max(1, n_workers)
        export = split_export(client, data, n, CsvFormat(cfg.csv_sep, cfg.csv_encoding))
        say(f"{n} partitions by account on {n_workers} workers")
        # each partition's CRM is loaded, turned into its shard and released in one go
        shards = client.compute(
            export.each(_shard, cfg=snap, dates=export.dates(snap), end=export.end, rules=rules)
        )
        summaries = client.gather(client.map(_summary, shards))
        rows = sum(s["rows"] for s in summaries)
        positives = sum(s["positives"] for s in summaries)
        if positives < 20:
            raise ValueError(
                f"only {positives} conversions in {rows:,} snapshots; a model needs at least "
                "20 (more history or a longer horizon)"
            )
        all_dates = pd.DataFrame({"as_of": sorted({d for s in summaries for d in s["dates"]})})
        s = split(all_dates, cfg)
        bounds = Bounds(
            s.inner.train["as_of"].max(), s.inner.test["as_of"].min(),
            s.outer.train["as_of"].max(), s.outer.first_test_as_of,
        )  # fmt: skip
        clock.lap("snapshots")
        template = LeadScorer(booster=None, vocabularies=vocabularies(summaries), rules=rules)
        epochs = epoch_seconds(all_dates["as_of"])
        encoded = client.map(
            _encode, shards, template=template, bounds=bounds,
            half_life=cfg.recency_half_life, period=(float(epochs.min()), float(epochs.max())),
        )  # fmt: skip
        sizes = client.gather(client.map(_sizes, encoded))
        cluster = Cluster(client, encoded, sizes, cfg.recency_half_life is not None)
        n_fit, n_valid, n_test = (cluster.count((c,)) for c in (FIT, VALID, TEST))
        say(f"split: fit {n_fit:,}, validation {n_valid:,}, test {n_test:,} rows")
        drift_rows = _gather_sample(client, shards, SAMPLE_ROWS / max(rows, 1), cfg.seed)
        drift = drift_report(
            drift_rows,
            drift_rows["converted"].to_numpy(),
            epoch_seconds(drift_rows["as_of"]),
            drift_rows["as_of"].dt.strftime("%Y-%m-%d").to_numpy(),
            (bounds.slices(drift_rows["as_of"]) == FIT),
            (bounds.slices(drift_rows["as_of"]) == TEST),
            R.NUMERIC,
            R.CATEGORICAL,
        )
        clock.lap("encode")
        try:
            fitted = fit_on_cluster(cluster, template, cfg.fit_config(), say)
        except WeakModelError as exc:
            exc.drift = drift
            raise
        clock.lap("fit")

        def column(code: int, name: str) -> np.ndarray:
            """A column of every shard's rows of one slice, in shard order."""
            parts = client.gather(client.map(_column, shards, code=code, bounds=bounds, name=name))
            return np.concatenate([np.asarray(p, dtype=object) for p in parts])

        y = column(TEST, "converted").astype(np.int64)
        p_model = cluster.predict(fitted.selection, TEST)
        p_logreg = cluster.predict(fitted.linear, TEST)
        episodes = load_episodes(data)
        truth = None
        if episodes is not None:
            as_of = pd.to_datetime(pd.Series(column(TEST, "as_of")), utc=True)
            truth = latent_propensity(episodes, pd.Series(column(TEST, "account_id")), as_of)
        held = Holdout(
            y,
            p_model,
            p_logreg,
            column(TEST, "total").astype(float),
            column(TEST, "mql").astype(bool),
            truth,
        )
        compared = compare(
            held,
            fitted,
            column(VALID, "total").astype(float),
            column(VALID, "converted").astype(np.int64),
            n_fit,
        )
        clock.lap("baselines")
        keep = sample_rows(n_test, cfg.seed)
        test_rows, points = _gather_test_rows(client, shards, sizes, bounds, keep)
        x_keep = fitted.final.matrix_from_frame(test_rows)
        evidence = holdout_evidence(
            test_rows, p_model[keep], points, fitted.final, x_keep, cfg.seed, holdout_rows=n_test
        )
        evidence.suggestion_note = (
            "no point values are suggested by a Dask training run: `leadscore rules suggest` "
            "reads the whole export on one machine"
        )
        contacts = sum(s["contacts"] for s in summaries)
        touchpoints = sum(s["touchpoints"] for s in summaries)
    return record(
        cfg,
        Trained(
            data=str(data),
            database=False,
            source=str(data),
            frame=drift_rows,
            rows=(n_fit, n_valid, n_test),
            test_window=(bounds.first_test, all_dates["as_of"].max()),
            contacts=contacts,
            touchpoints=touchpoints,
            example=test_rows[list(R.FEATURE_NAMES)].head(5),
            drift=drift,
            engine=f"dask ({n} partitions, {n_workers} workers)",
            period=(all_dates["as_of"].min(), all_dates["as_of"].max()),
            snapshots=rows,
        ),
        fitted,
        held,
        compared,
        evidence,
        clock,
    )


def _gather_sample(client: Any, shards: list[Any], share: float, seed: int) -> pd.DataFrame:
    """A seeded sample of the training rows (every row when ``share`` >= 1), on the driver."""
    parts = client.gather(
        [client.submit(_sample_frame, f, min(1.0, share), seed + i) for i, f in enumerate(shards)]
    )
    frames = [p for p in parts if p is not None]
    if not frames:
        raise PartitionError("the export yields no training rows")
    return pd.concat(frames, ignore_index=True)


def _gather_test_rows(
    client: Any, shards: list[Any], sizes: list[list[int]], bounds: Bounds, keep: np.ndarray
) -> tuple[pd.DataFrame, GatheredPoints]:
    """The holdout rows at positions ``keep`` (shard order), with their rule matches."""
    starts = np.cumsum([0] + [s[TEST] for s in sizes])
    gathered = []
    for i, shard in enumerate(shards):
        local = keep[(keep >= starts[i]) & (keep < starts[i + 1])] - starts[i]
        if len(local):
            gathered.append(client.submit(_test_rows, shard, bounds, local).result())
    frame = pd.concat([g["frame"] for g in gathered], ignore_index=True)
    return frame, GatheredPoints(
        gathered[0]["rule_names"],
        np.concatenate([g["total"] for g in gathered]),
        np.concatenate([g["mql"] for g in gathered]),
        np.vstack([g["count"] for g in gathered]),
        np.vstack([g["decay"] for g in gathered]),
    )
