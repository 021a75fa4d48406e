"""`leadscore train --engine dask`: a LocalCluster with 2 workers trains on the session
champion's export what the single-node run trained on it, registers it, and it serves."""

from __future__ import annotations

from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from features.model.names import MODEL_NAME
from features.model.pyfunc import load_scorer
from leadscore.cli import main
from serving.app import create_app
from serving.config import Settings
from serving.schemas import EXAMPLE_REQUEST
from tests.serving.server import running_server
from training.distributed import train_dask
from training.train import TrainConfig

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


def _metrics(uri: str, version: str) -> dict[str, float]:
    client = MlflowClient(tracking_uri=uri)
    run_id = client.get_model_version(MODEL_NAME, version).run_id
    assert run_id is not None
    return client.get_run(run_id).data.metrics


def test_train_on_dask_matches_the_single_node_model_and_serves(
    champion: dict[str, str], tracking: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same data and settings as the session champion's single-node run (conftest)
    said: list[str] = []
    result = train_dask(
        TrainConfig(num_boost_round=200, early_stopping_rounds=30), champion["data"],
        n_partitions=3, workers=2, say=said.append,
    )  # fmt: skip
    assert "3 partitions by account on 2 workers" in said
    assert result.model_version == "1" and result.estimator == "lightgbm"
    uri = str(mlflow.get_tracking_uri())
    dask = _metrics(uri, "1")
    single = _metrics(champion["tracking_uri"], "1")
    single_rows = MlflowClient(tracking_uri=champion["tracking_uri"]).get_run(
        MlflowClient(tracking_uri=champion["tracking_uri"]).get_model_version(MODEL_NAME, "1").run_id
    ).data.params  # fmt: skip
    params = MlflowClient().get_run(MlflowClient().get_model_version(MODEL_NAME, "1").run_id)
    # the same rows in every slice
    for key in ("rows_fit", "rows_validation", "rows_test", "rows_refit"):
        assert params.data.params[key] == single_rows[key], key
    assert params.data.params["engine"].startswith("dask (3 partitions, 2 workers)")
    # The registered recipe's holdout ranking (its twin, fitted on fit + validation, never
    # on test) and the selection fit's, against the single-node run's. On this small
    # export (1,500 accounts) one machine alone spreads over seeds 0-5: twin 0.9335-0.9386,
    # selection 0.9222-0.9379 (measured); Dask's placement of rows on workers changes its
    # bins and bagging from run to run, and its twin landed 0.0105 from the single-node one
    # in one of three runs. Within 0.02 and 0.03 here; the 0.01 is shown at 20,000
    # accounts by benchmarks/bench_train_dask.py (0.0001 twin, 0.0006 selection).
    assert abs(dask["model_refit_roc_auc"] - single["model_refit_roc_auc"]) <= 0.02
    assert abs(dask["model_roc_auc"] - single["model_roc_auc"]) <= 0.03
    assert dask["model_roc_auc"] > dask["rules_roc_auc"] + 0.05

    # the registered model is an ordinary one: the single-node server loads and serves it
    assert main(["promote"]) == 0
    scorer, _ = load_scorer(f"models:/{MODEL_NAME}@champion", evidence=True)
    assert scorer.booster is not None and scorer.evidence is not None
    assert scorer.evidence.meta["holdout_rows"] == int(params.data.params["rows_test"])
    assert (
        scorer.evidence.suggestions is None and "rules suggest" in scorer.evidence.suggestion_note
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with running_server(create_app(Settings(alias_poll_seconds=0))) as base:
        response = httpx.post(f"{base}/v1/score", json=EXAMPLE_REQUEST, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": MODEL_NAME, "version": "1", "alias": "champion"}
    assert 0 < body["probability"] < 1 and body["reasons"]


def test_train_on_dask_refuses_what_it_cannot_read(
    tmp_path: Path, tracking: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["train", "--data", str(tmp_path), "--engine", "dask", "--dataset", "x.parquet"]) == 2
    )
    assert "leave out --dataset" in capsys.readouterr().err


def test_the_curve_that_picks_the_rounds_is_lightgbms_own_validation_loss() -> None:
    # lightgbm.dask has no early stopping: the rounds come from logloss_curve, which must be
    # the metric LightGBM's early stopping reads (weighted, iteration by iteration)
    import lightgbm as lgb
    import numpy as np

    from training.distributed import logloss_curve
    from training.fitting import Part

    rng = np.random.default_rng(4)
    x = rng.normal(size=(6_000, 5))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(size=6_000) > 1.2).astype(int)
    weight = rng.uniform(0.5, 3.0, size=2_000)
    train_set = lgb.Dataset(x[:4_000], y[:4_000])
    valid_set = lgb.Dataset(x[4_000:], y[4_000:], weight=weight, reference=train_set)
    recorded: dict[str, dict[str, list[float]]] = {}
    booster = lgb.train(
        {"objective": "binary", "metric": "binary_logloss", "verbosity": -1, "num_threads": 1},
        train_set,
        num_boost_round=150,
        valid_sets=[valid_set],
        callbacks=[lgb.record_evaluation(recorded)],
    )
    curve = logloss_curve(booster, Part(x[4_000:], y[4_000:], weight), chunk=40)
    expected = np.array(recorded["valid_0"]["binary_logloss"])
    np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-7)
    assert int(np.argmin(curve)) == int(np.argmin(expected))
