"""The `leadscore` command line: what a user types and what they see."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from leadscore.cli import main


def test_generate_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "crm"
    code = main(["generate", "--out", str(out), "--accounts", "150", "--seed", "4", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "touchpoints" in printed and str(out) in printed
    assert main(["validate", str(out)]) == 0
    report = capsys.readouterr().out
    assert "result: accepted" in report
    assert "touchpoints.occurred_at" in report  # the date range is shown


def test_generate_parquet_and_custom_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "crm"
    args = ["generate", "--out", str(out), "--accounts", "80", "--format", "parquet",
            "--start", "2023-06-01", "--months", "6", "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert (out / "touchpoints.parquet").is_file()
    capsys.readouterr()
    assert main(["validate", str(out)]) == 0
    report = capsys.readouterr().out
    line = next(x for x in report.splitlines() if "touchpoints.occurred_at" in x)
    assert "2023-06" in line and "2023-11" in line and "2023-12" not in line


def test_generate_into_a_folder_with_data_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "mine.csv").write_text("x\n")
    assert main(["generate", "--out", str(tmp_path / "crm"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--out", "x", "--accounts", "0"], "expected a number >= 1"),
        (["generate", "--out", "x", "--start", "01/02/2024"], "expected a date as YYYY-MM-DD"),
        (["generate", "--out", "x", "--format", "xlsx"], "invalid choice"),
    ],
)
def test_bad_flags_are_explained(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_console_script_is_installed(tmp_path: Path) -> None:
    # The real entry point, as a user runs it: exit code 1 for a refused export.
    exe = Path(sys.executable).with_name("leadscore")
    result = subprocess.run(
        [str(exe), "validate", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "no file accounts.csv or accounts.parquet" in result.stdout


def test_build_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    crm = tmp_path / "crm"
    assert main(["generate", "--out", str(crm), "--accounts", "120", "--seed", "2", "--quiet"]) == 0
    out = tmp_path / "ds" / "train.parquet"
    code = main(["build-dataset", "--data", str(crm), "--out", str(out), "--horizon-days", "60",
                 "--snapshot-every-days", "45", "--quiet"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0
    frame = pd.read_parquet(out)
    assert {"contact_id", "account_id", "as_of", "converted", "decision_touches_30d"} <= set(
        frame.columns
    )
    assert f"rows: {len(frame):,}" in printed and "positive rate" in printed
    assert "outcome window not closed" in printed
    # Every emitted as_of has a closed outcome window.
    end = pd.Timestamp("2026-01-01", tz="UTC")
    assert (frame["as_of"] + pd.Timedelta(days=60) <= end).all()
    assert frame["as_of"].nunique() > 5


def test_build_dataset_on_a_refused_export_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "train.parquet"
    assert main(["build-dataset", "--data", str(tmp_path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "was refused" in err and "leadscore validate" in err and "Traceback" not in err
    assert not out.exists()


@pytest.fixture(scope="module")
def crm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "crm"
    assert (
        main(["generate", "--out", str(folder), "--accounts", "1500", "--seed", "5", "--quiet"])
        == 0
    )
    return folder


def test_score_rules_only(
    crm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    out = tmp_path / "scores.csv"
    assert main(["score", "--rules-only", "--data", str(crm_dir), "--out", str(out),
                 "--as-of", "2025-06-01T00:00:00Z"]) == 0  # fmt: skip
    assert "MQLs (threshold 100)" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert list(table.columns) == ["contact_id", "account_id", "rule_points", "fit_points",
                                   "engagement_points", "mql", "grade", "top_rules"]  # fmt: skip
    # each column is rounded to 2 decimals on its own
    assert (
        (table["fit_points"] + table["engagement_points"] - table["rule_points"]).abs() <= 0.011
    ).all()
    assert (table["mql"] == (table["rule_points"] >= 100)).all()
    assert table["grade"].str.fullmatch(r"[A-D][1-4]").all()
    assert table["contact_id"].is_unique


def test_score_with_a_broken_rules_file_names_the_key(
    crm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "mql_threshold: high\ngroups: {}\nrules: []\ngrades: {fit: {A: 1, B: 0, C: -1}, engagement: {'1': 1, '2': 0, '3': -1}}\n"
    )
    code = main(
        [
            "score",
            "--rules-only",
            "--data",
            str(crm_dir),
            "--rules",
            str(rules),
            "--out",
            str(tmp_path / "x.csv"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "mql_threshold: Input should be a valid number" in err and "Traceback" not in err


def test_rules_suggest_writes_a_matrix_that_loads(
    crm_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from features.points.matrix import load_rules

    out = tmp_path / "suggested.yaml"
    assert (
        main(
            [
                "rules",
                "suggest",
                "--data",
                str(crm_dir),
                "--out",
                str(out),
                "--min-conversions",
                "50",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "learned from" in printed and "conversions" in printed and "lift" in printed
    assert "attribute insights" in printed and "touchpoint (90 days)" in printed
    suggested = load_rules(out)
    assert [r.name for r in suggested.rules] == [r.name for r in load_rules().rules]
    assert out.read_text().startswith("# Points suggested by `leadscore rules suggest`")
    assert "why" in printed


def test_suggested_points_keep_the_mql_share_and_the_signs(crm_dir: Path) -> None:
    # The promise: the same share of snapshots is MQL (it flagged 1.08 % instead of
    # 3.30 %), and intent actions and executive buyers never get negative points.
    from features.crm.load import load_crm
    from features.points.matrix import load_rules
    from training.rules_eval import evaluate_rules
    from training.suggest import suggest_points

    crm, current = load_crm(crm_dir), load_rules()
    suggestion = suggest_points(crm, current, min_conversions=50)
    flagged = evaluate_rules(crm, suggestion.config).mql_share
    assert abs(flagged - suggestion.mql_share) < 0.002, (flagged, suggestion.mql_share)
    assert suggestion.suggested_mql_share == pytest.approx(flagged)
    before = {r.name: r.points for r in current.rules}
    after = {r.name: r.points for r in suggestion.config.rules}
    for name, points in before.items():
        assert after[name] * points >= 0, (name, points, after[name])
    why = dict(zip(suggestion.rules["rule"], suggestion.rules["why"], strict=True))
    assert all(why.values()) and "base rate" in why["demo_request"]
    free = suggest_points(crm, current, min_conversions=50, free_signs=True)
    flipped = [r for r in free.config.rules if r.points * before[r.name] < 0]
    assert flipped, "with --free-signs the data may flip a sign (it does on this CRM)"


def test_rules_suggest_refuses_with_too_few_conversions(
    crm_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "suggest", "--data", str(crm_dir), "--min-conversions", "100000"]) == 2
    assert "at least 100000 are needed" in capsys.readouterr().err


def test_rules_evaluate(crm_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "evaluate", "--data", str(crm_dir)]) == 0
    out = capsys.readouterr().out
    auc = float(out.split("points ROC AUC ")[1].split()[0])
    assert 0.6 < auc < 0.95  # points rank leads, and far from perfectly
    assert "fit A" in out and "engagement 4" in out and "MQL share" in out


def test_serve_in_the_wrong_folder_names_the_store_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # started where no model was trained, serve used to create an empty mlflow.db and
    # answer 503 forever; now it refuses before starting, naming the store it looked in
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["serve", "--model", "models:/lead-scorer@champion"]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow tracking store at {tmp_path.resolve() / 'mlflow.db'}" in err
    assert not (tmp_path / "mlflow.db").exists()


def test_serve_refuses_a_model_that_holds_a_pickle(
    champion: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a model logged the old way (a cloudpickled python_model) is never loaded: unpickling
    # runs whatever code the artifact store holds
    import shutil

    import mlflow

    from features.model.pyfunc import LeadScorerModel

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    mlflow.set_tracking_uri(champion["tracking_uri"])
    folder = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri="models:/lead-scorer@champion", dst_path=str(tmp_path / "good")
        )
    )
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=LeadScorerModel(),
            artifacts={"scorer": str(folder / "artifacts" / "scorer")},
            registered_model_name="pickled-scorer",
            pip_requirements=["lightgbm"],
        )
    assert main(["serve", "--model", "models:/pickled-scorer/1"]) == 2
    err = capsys.readouterr().err
    assert "holds a pickle (python_model.pkl)" in err and "never a pickle" in err
    # the same for a model folder on disk with a pickle slipped in
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    (tampered / "artifacts" / "scorer" / "extra.bin").write_bytes(b"\x80\x04K\x01.")
    assert main(["serve", "--model", str(tampered)]) == 2
    assert "holds a pickle (artifacts/scorer/extra.bin)" in capsys.readouterr().err


def test_score_into_a_folder_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (the export does not even exist: the destination is checked first)
    code = main(
        ["score", "--rules-only", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is a folder; give a file path such as" in err and "Traceback" not in err


def test_a_full_disk_leaves_no_cut_file(
    crm_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # a CRM would import a CSV cut short by a full disk as a smaller, valid export
    import errno

    import pandas as pd

    out = tmp_path / "scores.csv"
    out.write_text("contact_id,rule_points\nC1,10\n")  # yesterday's scores
    real = pd.DataFrame.to_csv

    def disk_fills_up(self: pd.DataFrame, path: Any, **kwargs: Any) -> None:
        real(self.head(3), path, **kwargs)  # some rows reach the disk, then it is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_fills_up)
    code = main(["score", "--rules-only", "--data", str(crm_dir), "--out", str(out),
                 "--as-of", "2025-06-01T00:00:00Z"])  # fmt: skip
    assert code == 2
    assert f"could not write {out}: No space left on device" in capsys.readouterr().err
    assert out.read_text() == "contact_id,rule_points\nC1,10\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]  # no partial file


def test_an_interrupted_generator_leaves_no_half_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from features.synthetic import GeneratorConfig, generate_crm
    from features.synthetic import write as writer

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    real = writer.iter_chunks

    def chunks_then_crash(*args: Any, **kwargs: Any) -> Any:
        yield next(iter(real(*args, **kwargs)))
        crash()

    monkeypatch.setattr(writer, "iter_chunks", chunks_then_crash)
    with pytest.raises(KeyboardInterrupt):
        generate_crm(GeneratorConfig(accounts=6_000, seed=1), tmp_path / "crm")
    assert list(tmp_path.iterdir()) == []


def test_commands_give_freed_memory_back_and_respect_a_chosen_pool(
    tiny_crm_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa

    from features.allocator import ENV

    before = pa.default_memory_pool()
    try:
        monkeypatch.delenv(ENV, raising=False)
        assert main(["validate", str(tiny_crm_dir)]) == 0
        # jemalloc returns freed pages (peaks 19-30 % lower); the processes
        # a command starts (Dask workers) inherit it
        assert pa.default_memory_pool().backend_name == "jemalloc"
        assert os.environ[ENV] == "jemalloc"
        pa.set_memory_pool(before)
        monkeypatch.setenv(ENV, "system")  # the user's choice is theirs
        assert main(["validate", str(tiny_crm_dir)]) == 0
        assert pa.default_memory_pool().backend_name == before.backend_name
    finally:
        pa.set_memory_pool(before)
    capsys.readouterr()


def test_a_score_process_imports_lightgbm_without_scikit_learn(
    champion: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console script's `score` skips scikit-learn (about a second it never uses:
    LightGBM imports it for its estimators) and writes the same file as `main` does in a
    process that has scikit-learn."""
    script = _RUN_AND_SAY.format(modules=["sklearn"])
    flags = ["--data", champion["data"], "--as-of", "2025-06-01T00:00:00Z", "--reasons", "3"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion["tracking_uri"]}
    alone = tmp_path / "alone.csv"
    done = subprocess.run(
        [sys.executable, "-c", script, "score", *flags, "--out", str(alone)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.stdout.split()[-3:] == ["exit", "0", "[]"], done.stderr[-2000:]
    # the same command in this process, where scikit-learn is imported
    import sklearn  # noqa: F401

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion["tracking_uri"])
    in_process = tmp_path / "in_process.csv"
    assert main(["score", *flags, "--out", str(in_process)]) == 0
    assert alone.read_bytes() == in_process.read_bytes()


#: the console script's `run` in a child process, then the exit code and which of
#: `modules` it imported
_RUN_AND_SAY = (
    "import sys\n"
    "from leadscore.cli import run\n"
    "try:\n"
    "    run()\n"
    "except SystemExit as stop:\n"
    "    imported = [m for m in {modules!r} if m in sys.modules]\n"
    "    print('exit', stop.code, str(imported).replace(' ', ''), flush=True)\n"
)


def test_scoring_by_the_points_alone_imports_no_model_library(
    crm_dir: Path, tmp_path: Path
) -> None:
    """`score --rules-only` needs no model: it imports neither LightGBM (nor the
    scikit-learn it would pull in) nor MLflow, and still writes the points."""
    import pandas as pd

    out = tmp_path / "points.csv"
    script = _RUN_AND_SAY.format(modules=["lightgbm", "sklearn", "mlflow"])
    flags = ["--rules-only", "--data", str(crm_dir), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", script, "score", *flags],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout.split()[-3:] == ["exit", "0", "[]"], done.stderr[-2000:]
    assert pd.read_csv(out)["rule_points"].notna().all()
