"""The notebooks run, top to bottom, on a small synthetic CRM with a trained champion."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from features.synthetic import GeneratorConfig, generate_crm
from training.registry import promote
from training.train import TrainConfig, train

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("notebooks")
    data = home / "crm"
    generate_crm(GeneratorConfig(accounts=1500, seed=13), data, fmt="parquet")
    env = {"LEADSCORE_DATA": str(data), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    old = {k: os.environ.get(k) for k in env}
    old_cwd = Path.cwd()
    os.environ.update(env)
    os.chdir(home)
    try:
        train(TrainConfig(num_boost_round=200, early_stopping_rounds=30), data)
        assert promote().promoted
    finally:
        os.chdir(old_cwd)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {**env, "home": str(home)}


@pytest.mark.parametrize("name", ["01_runs_and_models.ipynb", "02_what_matters.ipynb"])
def test_notebook_executes(
    name: str, trained: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADSCORE_DATA", trained["LEADSCORE_DATA"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["MLFLOW_TRACKING_URI"])
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": trained["home"]}},
    ).execute()
    errors = [
        o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    text = "".join(
        str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", ""))
        for c in notebook.cells
        for o in c.get("outputs", [])
    )
    expected = {
        "01_runs_and_models.ipynb": ["champion", "model lead-scorer v", "metrics.model_roc_auc"],
        "02_what_matters.ipynb": ["mean_abs_shap", "MQL by points", "suggested_points"],
    }[name]
    for piece in expected:
        assert piece in text, piece
