"""Training, MLflow tracking and the registry, end to end on a small synthetic CRM.

Real LightGBM, real MLflow (a SQLite tracking store in a temporary folder; PostgreSQL for
the production path when the server is there), real registry aliases.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from features.crm.load import load_crm
from features.model.pyfunc import find_pickles, load_scorer
from features.model.scorer import LeadScorer
from features.synthetic import GeneratorConfig, generate_crm
from leadscore.cli import main
from tests.standalone import score_standalone
from training.promote import promote
from training.registry import CHAMPION, alias_version
from training.train import TrainConfig, TrainResult, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def crm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("train") / "crm"
    generate_crm(GeneratorConfig(accounts=2500, seed=21), folder, fmt="parquet")
    return folder


CFG = TrainConfig(num_boost_round=400, early_stopping_rounds=40)


@pytest.fixture(scope="module")
def first(crm_dir: Path, tracking: Path) -> TrainResult:
    return train(CFG, crm_dir)


def test_training_beats_the_points_and_is_calibrated(first: TrainResult) -> None:
    table = first.comparison
    assert set(table.index) == {"model", "logistic_regression", "model_refit", "rules"}
    assert "oldest" in table.loc["model", "fitted_on"]  # which fit each figure comes from
    assert table.loc["model", "roc_auc"] > table.loc["rules", "roc_auc"] + 0.1
    assert table.loc["model", "pr_auc"] > table.loc["rules", "pr_auc"]
    assert table.loc["model", "ece"] < 0.01
    assert (
        first.latent_truth_auc is not None
        and first.latent_truth_auc > table.loc["rules", "roc_auc"]
    )
    assert first.rows["fit"] > 0 and first.rows["validation"] > 0 and first.rows["test"] > 0
    # the registered model is refitted on every snapshot, the newest included
    assert first.rows["refit"] >= first.rows["fit"] + first.rows["validation"] + first.rows["test"]
    assert first.estimator == "lightgbm" and first.weak is None
    assert first.refit_rounds > first.best_iteration


def test_the_run_holds_everything_needed_to_reproduce_and_judge_it(
    first: TrainResult, crm_dir: Path
) -> None:
    client = MlflowClient()
    run = client.get_run(first.run_id)
    assert run.data.params["horizon_days"] == "90" and run.data.params["learning_rate"] == "0.05"
    assert {"model_roc_auc", "logistic_regression_roc_auc", "rules_roc_auc", "model_ece",
            "latent_truth_roc_auc"} <= set(run.data.metrics)  # fmt: skip
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"comparison.md", "comparison.html", "features.json", "rules.yaml", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert {"plots/roc.png", "plots/pr.png", "plots/reliability.png", "plots/gains_lift.png",
            "plots/importance_gain.png", "plots/importance_shap.png"} <= plots  # fmt: skip
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.name == "training-snapshots" and dataset.dataset.digest
    # the runs list tells runs apart: data, rows, period, headline metric
    assert re.fullmatch(
        r"crm: [\d,]+ snapshots \d{4}-\d\d\.\.\d{4}-\d\d · ROC AUC 0\.\d{3}", run.info.run_name
    )
    note = run.data.tags["mlflow.note.content"]
    assert str(crm_dir) in note and "Holdout ROC AUC" in note and "logistic regression" in note


def test_the_registered_model_is_a_pyfunc_with_a_challenger_alias(
    first: TrainResult, crm_dir: Path
) -> None:
    client = MlflowClient()
    version = client.get_model_version_by_alias("lead-scorer", "challenger")
    assert str(version.version) == first.model_version
    assert version.current_stage == "None"  # aliases, never the deprecated stages
    model = mlflow.pyfunc.load_model("models:/lead-scorer@challenger")
    scorer: LeadScorer = model.unwrap_python_model().scorer
    assert scorer.rules is not None and scorer.metadata["kind"] == "touchpoint"
    example = pd.DataFrame(model.input_example)
    np.testing.assert_allclose(
        model.predict(example), scorer.predict(scorer.matrix_from_frame(example))
    )
    assert model.metadata.signature is not None


def test_the_registered_model_stands_on_its_own(first: TrainResult, tmp_path: Path) -> None:
    # models from code: the code ships in the model folder, nothing is pickled, and a
    # fresh interpreter without this repository loads and scores it (as `mlflow models
    # serve` does in the environment it builds from the model's requirements)
    uri = f"models:/lead-scorer/{first.model_version}"
    probabilities, code = score_standalone(uri, tmp_path)
    assert Path(code).resolve().is_relative_to(tmp_path.resolve())  # the shipped copy
    scorer, _ = load_scorer(uri)
    folder = next(p.parent for p in tmp_path.rglob("MLmodel"))
    example = json.loads((folder / "input_example.json").read_text())
    frame = pd.DataFrame(example["data"], columns=example["columns"])
    np.testing.assert_allclose(probabilities, scorer.predict(scorer.matrix_from_frame(frame)))
    assert find_pickles(folder) == []
    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    assert "model_code_path" in flavor and "python_model" not in flavor
    requirements = (folder / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} >= {"lightgbm", "mlflow", "numpy", "pandas"}


def test_promote_then_refuse_then_roll_back(
    first: TrainResult, crm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "lead-scorer"
    result = promote(name)
    assert result.promoted and alias_version(name, CHAMPION) == first.model_version
    second = train(replace(CFG, seed=7, num_leaves=7), crm_dir)
    # A challenger must beat the champion by the margin, here an impossible one.
    assert main(["promote", "--min-improvement", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "not promoted" in out and "roc_auc on the recent holdout" in out
    assert alias_version(name, CHAMPION) == first.model_version
    assert main(["promote", "--force"]) == 0
    assert alias_version(name, CHAMPION) == second.model_version
    assert main(["promote", "--version", first.model_version]) == 0  # rollback
    assert alias_version(name, CHAMPION) == first.model_version
    assert main(["promote", "--version", "99"]) == 2
    assert "has no version 99" in capsys.readouterr().err


def test_evaluate_and_score_with_the_champion(first: TrainResult, crm_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    promote("lead-scorer", version=first.model_version)
    assert main(["evaluate", "--data", str(crm_dir)]) == 0
    out = capsys.readouterr().out
    assert "recent holdout" in out and "| rules |" in out and "n/a" in out
    out_csv = tmp_path / "scores.csv"
    assert main(["score", "--data", str(crm_dir), "--out", str(out_csv)]) == 0
    table = pd.read_csv(out_csv)
    assert {"probability", "top_reasons", "rule_points", "grade"} <= set(table.columns)
    assert table["probability"].between(0, 1).all()
    # The hottest leads by probability have reasons; and the model ranks, it does not flatline.
    assert table.sort_values("probability").tail(20)["top_reasons"].notna().all()
    assert table["probability"].std() > 0
    # Without reasons (the fast batch): the same probabilities, no reasons column.
    fast_csv = tmp_path / "fast.csv"
    assert main(["score", "--data", str(crm_dir), "--out", str(fast_csv), "--reasons", "0"]) == 0
    fast = pd.read_csv(fast_csv)
    assert "top_reasons" not in fast.columns
    assert fast["probability"].tolist() == table["probability"].tolist()

    # Reasons where they are read: by default the MQLs and the best 5 %, the same text
    # as when every row gets them; the others empty; the cost said.
    every_csv = tmp_path / "every.csv"
    assert main(["score", "--data", str(crm_dir), "--out", str(every_csv),
                 "--reasons-for", "all"]) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert f"reasons (all) for {len(table):,} of {len(table):,} leads" in said
    every = pd.read_csv(every_csv, keep_default_na=False)
    default = pd.read_csv(out_csv, keep_default_na=False)
    chosen = default["top_reasons"] != ""
    best = default["probability"].rank(ascending=False, method="first") <= -(-len(default) // 20)
    assert (chosen == (best | default["mql"])).all()
    assert (default.loc[chosen, "top_reasons"] == every.loc[chosen, "top_reasons"]).all()
    assert (every["top_reasons"] != "").sum() > chosen.sum()
    assert main(["score", "--data", str(crm_dir), "--out", str(every_csv),
                 "--reasons-for", "top:7"]) == 0  # fmt: skip
    assert "reasons (top:7) for 7 of" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["score", "--data", str(crm_dir), "--out", str(every_csv), "--reasons-for", "best"])
    assert refused.value.code == 2
    assert "'best' is not mql, top:K, top:P% or all" in capsys.readouterr().err


def test_score_with_a_missing_model_is_a_clear_error(
    crm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["score", "--data", str(crm_dir), "--model", "models:/no-such-model@champion",
                 "--out", str(tmp_path / "x.csv")]) == 2  # fmt: skip
    assert "cannot load the model models:/no-such-model@champion" in capsys.readouterr().err


def _postgres_uri() -> str | None:
    uri = os.environ.get("LEADSCORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg

        psycopg.connect(uri, connect_timeout=2).close()
    except Exception:  # no driver or no server: the test is skipped, loudly
        return None
    return uri


def test_production_path_tracking_on_postgresql(
    crm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = _postgres_uri()
    if uri is None:
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (set LEADSCORE_TEST_POSTGRES): "
                    "the production tracking path was NOT tested")  # fmt: skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    tag = uuid.uuid4().hex[:8]  # the database outlives the test: fresh names every time
    cfg = replace(
        CFG,
        experiment=f"lead-scoring-test-{tag}",
        model_name=f"lead-scorer-test-{tag}",
        num_boost_round=100,
    )
    result = train(cfg, crm_dir, crm=load_crm(crm_dir))
    assert promote(cfg.model_name).promoted
    scorer, info = load_scorer(f"models:/{cfg.model_name}@champion")
    assert info["version"] == result.model_version and info["alias"] == "champion"
    assert scorer.metadata["holdout_metrics"]["roc_auc"] == pytest.approx(
        result.comparison.loc["model", "roc_auc"], abs=1e-5
    )


def test_the_stopping_sample_keeps_every_positive_and_the_weighted_totals() -> None:
    """Early stopping reads a weighted sample of a large validation slice; its weighted
    counts equal the whole slice's, so the log loss it tracks estimates the slice's."""
    from training.fitting import stopping_sample

    y = (np.random.default_rng(1).random(200_000) < 0.015).astype(int)
    rows, weight = stopping_sample(y, 50_000, seed=0)
    assert weight is not None and len(rows) == 50_000 and np.all(np.diff(rows) > 0)
    assert y[rows].sum() == y.sum()  # every positive is kept
    assert weight[y[rows] == 1].sum() == pytest.approx(y.sum())
    assert weight[y[rows] == 0].sum() == pytest.approx((y == 0).sum())
    small = np.array([0, 1, 0, 0])
    assert stopping_sample(small, 50_000, seed=0)[1] is None  # small slices: all, unweighted
    mostly = np.ones(100_000, dtype=int)  # more positives than the cap: both sampled
    mostly[:30_000] = 0
    rows, weight = stopping_sample(mostly, 50_000, seed=0)
    assert weight is not None and len(rows) == 50_000
    assert weight[mostly[rows] == 1].sum() == pytest.approx(70_000)
    assert weight[mostly[rows] == 0].sum() == pytest.approx(30_000)


def test_promote_works_from_another_folder(
    first: TrainResult,
    crm_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # trained with a relative data path, then promoted from elsewhere: the model stores
    # its data path absolute, so the comparison finds the export
    monkeypatch.chdir(crm_dir.parent)
    train(replace(CFG, seed=3, num_leaves=7), Path(crm_dir.name))
    monkeypatch.chdir(tmp_path)
    assert main(["promote", "--min-improvement", "0.5"]) == 1
    out = capsys.readouterr()
    assert "roc_auc on the recent holdout" in out.out and "no CRM export" not in out.err
