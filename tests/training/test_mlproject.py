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
    for name, entry in entries.items():
        if name != "main":
            assert entry["command"].startswith(f"leadscore {name.replace('_', '-')}"), name
        for param in entry.get("parameters", {}):
            assert "-" not in param  # snake_case parameters ...
            if name != "main" and param not in ("folder",):
                assert (
                    f"--{param.replace('_', '-')} {{{param}}}" in entry["command"]
                )  # ... kebab-case flags


def test_mlflow_run_main_on_small_data(tmp_path: Path) -> None:
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
    result = subprocess.run(
        [str(bin_dir / "mlflow"), "run", str(ROOT), "-e", "main", "--env-manager", "local",
         "--experiment-name", "lead-scoring", "-P", f"out={tmp_path / 'crm'}", "-P", "accounts=1500"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "succeeded" in result.stderr
    assert "registered lead-scorer version 1 as challenger" in result.stdout
    assert "version 1 is now the champion" in result.stdout
