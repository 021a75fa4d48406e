"""Shared fixtures: a tiny literal CRM export, and a synthetic one."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def tiny_tables() -> dict[str, pd.DataFrame]:
    """A valid export small enough to read: two accounts, three contacts, one deal each.

    Every value is text, as a CSV export delivers it.
    """
    return {
        "accounts": pd.DataFrame(
            {
                "account_id": ["A1", "A2"],
                "industry": ["software", "retail"],
                "employees": ["250", ""],
                "annual_revenue": ["12000000", "3500000.5"],
                "country": ["DE", "US"],
            }
        ),
        "contacts": pd.DataFrame(
            {
                "contact_id": ["C1", "C2", "C3"],
                "account_id": ["A1", "A1", ""],
                "created_at": ["2025-03-02T10:00:00Z", "2025-03-05 09:30:00+02:00", "2025-03-07"],
                "job_title": ["VP Finance", "Генеральный директор", "Student"],
                "seniority": ["", "", "individual"],
                "department": ["", "", ""],
                "lead_source": ["web_form", "outbound", "web_form"],
                "email": ["ana@acme.example", "", "c3@gmail.com"],
            }
        ),
        "touchpoints": pd.DataFrame(
            {
                "touchpoint_id": ["T1", "T2", "T3", "T4"],
                "contact_id": ["C1", "C1", "C2", "C3"],
                "occurred_at": [
                    "2025-03-02T10:00:00Z",
                    "2025-03-04T12:00:00Z",
                    "2025-03-05T08:00:00Z",
                    "2025-03-07T11:00:00Z",
                ],
                "type": ["demo_request", "Pricing_Page_View", "meeting", "careers_page_view"],
                "channel": ["direct", "organic", "", "organic"],
                "topic": ["product", "product", "", "general"],
            }
        ),
        "opportunities": pd.DataFrame(
            {
                "opportunity_id": ["O1", "O2"],
                "account_id": ["A1", "A2"],
                "contact_id": ["C1", ""],
                "created_at": ["2025-03-10T00:00:00Z", "2024-05-01T00:00:00Z"],
                "closed_at": ["", "2024-07-01T00:00:00Z"],
                "stage": ["open", "closed_lost"],
                "amount": ["5000", "1200"],
            }
        ),
    }


def write_tables(folder: Path, tables: dict[str, pd.DataFrame], fmt: str = "csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


@pytest.fixture
def tiny_crm_dir(tmp_path: Path) -> Path:
    return write_tables(tmp_path / "crm", tiny_tables())


@pytest.fixture
def make_crm_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write the tiny export after applying ``edit`` to its tables."""

    def make(edit: Callable[[dict[str, pd.DataFrame]], None], fmt: str = "csv") -> Path:
        tables = tiny_tables()
        edit(tables)
        return write_tables(tmp_path / "crm", tables, fmt)

    return make


@pytest.fixture(scope="session")
def synthetic() -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """A 4,000-account synthetic CRM in memory: (contract tables, latent truth)."""
    from features.synthetic import GeneratorConfig, generate_frames

    return generate_frames(GeneratorConfig(accounts=4_000, seed=3))


def pytest_report_header() -> list[str]:
    if SHARED.is_dir():
        return [f"shared data: {SHARED}"]
    return [f"shared data: NOT FOUND at {SHARED}; tests marked needs_shared will be SKIPPED"]


def pytest_terminal_summary(terminalreporter: object) -> None:
    if not SHARED.is_dir():
        print(
            f"\nWARNING: {SHARED} is absent: the real-data tests were skipped.",
            file=sys.stderr,
        )


def _train_champion(home: Path) -> None:
    """A 1,500-account synthetic CRM in ``home``/crm and a champion in ``home``/mlflow.db."""
    import os

    from features.synthetic import GeneratorConfig, generate_crm
    from training.promote import promote
    from training.train import TrainConfig, train

    data = home / "crm"
    generate_crm(GeneratorConfig(accounts=1500, seed=13), data, fmt="parquet")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    old_uri, old_cwd = os.environ.get("MLFLOW_TRACKING_URI"), Path.cwd()
    old_experiment = os.environ.get("MLFLOW_EXPERIMENT_ID")  # set_experiment() exports it
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.chdir(home)
    try:
        train(TrainConfig(num_boost_round=200, early_stopping_rounds=30), data)
        assert promote().promoted
    finally:
        os.chdir(old_cwd)
        for name, old in (
            ("MLFLOW_TRACKING_URI", old_uri),
            ("MLFLOW_EXPERIMENT_ID", old_experiment),
        ):
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    """A small synthetic CRM and an MLflow store whose lead-scorer has a champion.

    Returns the CRM folder and the tracking URI; tests set MLFLOW_TRACKING_URI themselves.
    Under pytest-xdist the champion is trained once for every worker (a file lock in the
    run's shared temporary folder), and each worker gets its own copy of the tracking
    database (tests register and promote versions in it); the CRM and the artifacts are
    shared (artifacts of new runs land under their own run ids).
    """
    import fcntl
    import shutil

    if worker_id == "master":  # not under xdist
        home = tmp_path_factory.mktemp("champion")
        _train_champion(home)
        return {"data": str(home / "crm"), "tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
                "home": str(home)}  # fmt: skip
    shared = tmp_path_factory.getbasetemp().parent / "champion"
    shared.mkdir(exist_ok=True)
    with (shared.parent / "champion.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "trained").exists():
            _train_champion(shared)
            (shared / "trained").touch()
    home = tmp_path_factory.mktemp("champion")
    shutil.copyfile(shared / "mlflow.db", home / "mlflow.db")
    return {"data": str(shared / "crm"), "tracking_uri": f"sqlite:///{home / 'mlflow.db'}",
            "home": str(home)}  # fmt: skip
