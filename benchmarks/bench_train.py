"""Benchmark: training on ~1 million snapshots against a bare `lightgbm.train`.

Builds the snapshots once, runs `leadscore train`'s function on them (fit with early
stopping, calibration, baselines, evaluation, plots, MLflow logging), then times a bare
`lightgbm.train` with the same parameters on the same fit matrix for the same number of
rounds, in the same process. Budget (DESIGN.md): the fit within 1.2x of the bare fit;
evaluation and logging are reported separately.

    python benchmarks/bench_train.py --accounts 28000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import lightgbm as lgb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=28_000, help="~36 snapshots per account")
    parser.add_argument("--data", type=Path, default=None, help="an existing CRM export")
    args = parser.parse_args()
    from features.crm.load import load_crm
    from features.model.scorer import LeadScorer
    from features.pipeline.snapshots import build_snapshots
    from features.synthetic import GeneratorConfig, generate_crm
    from training.fitting import Part, fit_booster, lgb_params
    from training.train import TrainConfig, split, train, vocabularies

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        data = args.data or Path(tmp) / "crm"
        if args.data is None:
            generate_crm(GeneratorConfig(accounts=args.accounts, seed=1), data, fmt="parquet")
        crm = load_crm(data)
        cfg = TrainConfig()
        frame, _ = build_snapshots(crm, cfg.snapshots())
        dataset = Path(tmp) / "snapshots.parquet"
        frame.to_parquet(dataset, index=False)
        result = train(cfg, data, dataset=dataset, crm=crm)

        s = split(frame, cfg)
        scorer = LeadScorer(booster=None, vocabularies=vocabularies(frame))
        x_fit = scorer.matrix_from_frame(s.fit)
        categorical = list(range(len(scorer.numeric), len(scorer.feature_names)))
        params = lgb_params(cfg.fit_config())
        started = time.perf_counter()
        dataset_lgb = lgb.Dataset(
            x_fit, s.fit["converted"].to_numpy(), categorical_feature=categorical
        )
        lgb.train(params, dataset_lgb, num_boost_round=result.rounds)
        bare = time.perf_counter() - started
        # the same early-stopped fit once more, timed alone, in this process
        x_valid = scorer.matrix_from_frame(s.valid)
        fit = Part(x_fit, s.fit["converted"].to_numpy())
        valid = Part(x_valid, s.valid["converted"].to_numpy())
        started = time.perf_counter()
        fit_booster(scorer, fit, valid, cfg.fit_config())
        ours_again = time.perf_counter() - started
        # a bare fit on every row with the refit's rounds: what the registered model costs
        x_all = scorer.matrix_from_frame(frame)
        started = time.perf_counter()
        all_rows = lgb.Dataset(
            x_all, frame["converted"].to_numpy(), categorical_feature=categorical
        )
        lgb.train(params, all_rows, num_boost_round=result.refit_rounds)
        bare_all = time.perf_counter() - started

    sec = result.seconds
    print(
        f"snapshots: {len(frame):,} (fit {result.rows['fit']:,}, "
        f"validation {result.rows['validation']:,}, "
        f"test {result.rows['test']:,}); rounds run {result.rounds} (best {result.best_iteration})"
    )
    print(
        "train(): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in sec.items())
        + f"; total {sum(sec.values()):.1f} s"
    )
    print(f"bare lightgbm.train on the fit rows, same matrix and rounds: {bare:.1f} s")
    print(f"our selection fit (early stopping on validation), alone: {ours_again:.1f} s")
    print(f"ratio selection fit / bare: {ours_again / bare:.2f}x")
    print(
        f"train()'s whole fit step (selection, logistic regression, the twin that calibrates, "
        f"the refit on all {result.rows['refit']:,} rows with {result.refit_rounds} rounds): "
        f"{sec['fit']:.1f} s; a bare fit of the refit alone: {bare_all:.1f} s; "
        f"ratio {sec['fit'] / bare_all:.2f}x"
    )
    overhead = sum(v for k, v in sec.items() if k not in ("snapshots", "fit"))
    print(
        f"evaluation and logging overhead beyond the fit: {overhead:.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in sec.items() if k not in ('snapshots', 'fit'))})"
    )


if __name__ == "__main__":
    main()
