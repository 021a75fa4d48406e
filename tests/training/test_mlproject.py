"""`mlflow run . -e main --env-manager local` works: the MLproject mirrors the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_entry_points_mirror_the_cli() -> None:
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    entries = project["entry_points"]
    assert {"generate", "validate", "build_dataset", "train", "evaluate", "promote", "main"} <= set(
        entries
    )
    assert entries["train_table"]["command"].startswith("leadscore train --table {table}")
    for name, entry in entries.items():
        if name not in ("main", "train_table"):
            assert entry["command"].startswith(f"leadscore {name.replace('_', '-')}"), name
        for param in entry.get("parameters", {}):
            assert "-" not in param  # snake_case parameters ...
            if name != "main" and param not in ("folder",):
                assert (
                    f"--{param.replace('_', '-')} {{{param}}}" in entry["command"]
                )  # ... kebab-case flags


def _env(tmp_path: Path) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    # mlflow.set_experiment() in an earlier in-process test exports MLFLOW_EXPERIMENT_ID;
    # with --experiment-name, `mlflow run` would refuse both.
    for leaked in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(leaked, None)
    return env


def test_mlflow_run_main_on_small_data(tmp_path: Path) -> None:
    # no --experiment-name: `mlflow run` puts its own run in Default, the training run
    # still lands in lead-scoring (linked to the project run); and demo/ is not touched
    import mlflow

    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert not project["entry_points"]["main"]["parameters"]["out"]["default"].startswith("demo")
    bin_dir = Path(sys.executable).parent
    env = _env(tmp_path)
    result = subprocess.run(
        [str(bin_dir / "mlflow"), "run", str(ROOT), "-e", "main", "--env-manager", "local",
         "-P", f"out={tmp_path / 'crm'}", "-P", "accounts=800"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "succeeded" in result.stderr
    assert "registered lead-scorer version 1 as challenger" in result.stdout
    assert "version 1 is now the champion" in result.stdout
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    run = client.get_run(client.get_model_version("lead-scorer", "1").run_id)
    assert client.get_experiment(run.info.experiment_id).name == "lead-scoring"
    assert run.info.run_name.startswith("crm: ") and "ROC AUC" in run.info.run_name
    assert "Touchpoint model on" in run.data.tags["mlflow.note.content"]
    project_run = client.get_run(run.data.tags["leadscore.project_run_id"])
    assert project_run.data.tags["leadscore.training_run_id"] == run.info.run_id


def test_mlflow_run_train_table(tmp_path: Path) -> None:
    """The table entry point: options it does not set arrive as "" and mean "not given";
    the parameters `mlflow run` logged first do not clash with the run's own."""
    from tests.training.test_table import lead_table

    table = tmp_path / "leads.csv"
    lead_table(n=1500).to_csv(table, index=False)
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bin_dir / "mlflow"), "run", str(ROOT), "-e", "train_table", "--env-manager", "local",
         "--experiment-name", "lead-scoring", "-P", f"table={table}", "-P", "target=Converted",
         "-P", "id_column=Lead Number"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "registered lead-scorer-table version 1 as challenger" in result.stdout
    assert "ordered by Lead Number" in result.stdout
