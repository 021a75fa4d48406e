"""The lead store itself: its schema, seeding it, reading it back, rescoring it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import serving.store.tables  # noqa: F401  (the ledger's tables join the metadata)
from features.crm.database import metadata, touchpoints
from features.crm.load import load_crm
from features.model.pyfunc import load_scorer
from leadscore.cli import main
from serving.state import LoadedModel
from serving.store.engine import Store
from serving.store.rescore import LEASE, RescoreBusy, acquire, release, rescore
from serving.store.schema import VERSION_TABLE, SchemaError, require_current, schema_state
from serving.store.tables import rescore_runs, scores

pytestmark = pytest.mark.slow


def test_the_migrations_make_the_declared_schema(store_url: str) -> None:
    store = Store(store_url)
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        diff = [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"]
    store.dispose()
    assert diff == []  # (other tables of the database, e.g. MLflow's, are left alone)


def test_a_store_that_is_not_migrated_is_refused_with_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tracking: dict[str, str]
) -> None:
    absent = tmp_path / "leadscore.db"
    url = f"sqlite:///{absent}"
    with pytest.raises(SchemaError, match="leadscore db upgrade"):
        require_current(Store(url))
    assert not absent.exists()  # asking does not create it
    assert main(["serve", "--database", url]) == 2
    assert "run `leadscore db upgrade`" in capsys.readouterr().err
    assert main(["db", "upgrade", "--database", url]) == 0
    assert schema_state(Store(url)).up_to_date
    assert main(["db", "status", "--database", url]) == 0


def test_load_twice_changes_nothing_and_the_store_reads_back_as_the_export(
    tracking: dict[str, str], sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tracking["data"]
    assert main(["load", "--data", data, "--database", sqlite_url]) == 0
    first = capsys.readouterr().out
    assert "new scores in the ledger" in first
    engine = sa.create_engine(sqlite_url)

    def snapshot() -> tuple[int, int, int]:
        with engine.connect() as c:
            return (
                c.execute(sa.select(sa.func.count()).select_from(touchpoints)).scalar_one(),
                c.execute(sa.select(sa.func.count()).select_from(scores)).scalar_one(),
                c.execute(sa.select(sa.func.max(touchpoints.c.received_us))).scalar_one(),
            )

    before = snapshot()
    assert main(["load", "--data", data, "--database", sqlite_url]) == 0
    again = capsys.readouterr().out
    assert " 0 new, 0 updated" in again and "0 new scores in the ledger" in again
    assert snapshot() == before
    engine.dispose()

    # `--data URL`: the store read back is the export, to the last score
    end = "2025-12-31T00:00:00Z"
    for source, out in ((data, "folder.csv"), (sqlite_url, "store.csv")):
        assert main(["score", "--data", source, "--as-of", end, "--out", str(tmp_path / out)]) == 0
    folder, store = (pd.read_csv(tmp_path / n) for n in ("folder.csv", "store.csv"))
    pd.testing.assert_frame_equal(folder, store)
    crm = load_crm(data)
    assert len(folder) > 0.5 * len(crm.contacts)


def test_rescore_runs_one_at_a_time_and_keeps_newer_scores(
    tracking: dict[str, str], sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "load",
                "--data",
                tracking["data"],
                "--database",
                sqlite_url,
                "--as-of",
                "2025-11-01T00:00:00Z",
            ]
        )
        == 0
    )
    capsys.readouterr()
    store = Store(sqlite_url)
    scorer, info = load_scorer("models:/lead-scorer@champion")
    model = LoadedModel(scorer, info["name"], info["version"], info["alias"], "")

    assert acquire(store, LEASE, "someone-else", 60)  # another worker's run is going on
    with pytest.raises(RescoreBusy):
        rescore(store, model)
    assert main(["rescore", "--database", sqlite_url]) == 2
    assert "another rescoring run is in progress" in capsys.readouterr().err
    release(store, LEASE, "someone-else")

    # a month later: decay and moving windows change scores without any event
    run = rescore(store, model, as_of=dt.datetime(2025, 12, 1, tzinfo=dt.UTC))
    assert run.active > 0 and run.changed > 0
    with store.read() as c:
        rows = c.execute(sa.select(scores.c.trigger_id).where(scores.c.trigger == "rescore"))
        assert {r[0] for r in rows} == {run.run_id}
        done = c.execute(sa.select(rescore_runs).where(rescore_runs.c.run_id == run.run_id)).one()
    assert (done.scored, done.changed) == (run.active, run.changed) and done.finished_us
    same = rescore(store, model, as_of=dt.datetime(2025, 12, 1, tzinfo=dt.UTC))
    assert same.changed == 0  # nothing moved: nothing appended
    store.dispose()
