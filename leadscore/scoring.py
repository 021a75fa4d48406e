"""Commands that score: `score` (an export or a lead table, to a file) and `serve` (the API)."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

from features.model.names import CHAMPION_URI, DEFAULT_REASONS_FOR, TABLE_CHAMPION_URI
from leadscore.inputs import (
    DATA_HELP,
    EXIT_OK,
    UserError,
    add_csv_options,
    add_engine_options,
    csv_format,
    dask_or_fail,
    data_source,
    load_crm_or_fail,
    load_model_or_fail,
    load_rules_or_fail,
    output_or_fail,
    positive_int,
    timestamp,
    write_or_fail,
)


def reasons_for(text: str) -> Any:
    """`--reasons-for` (mql, top:K, top:P%, all), checked as the flag is read."""
    from features.model.batch import ReasonsFor

    try:
        parsed = ReasonsFor.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return parsed


def cmd_score(args: argparse.Namespace) -> int:
    if args.table is not None:
        return _score_table(args)
    if args.data is None:
        raise UserError("give --data FOLDER (a CRM export) or --table FILE (a lead table)")
    args.model = args.model or CHAMPION_URI
    if args.engine == "dask":
        return _score_dask(args)
    from features.model.batch import resolve_as_of, rules_table

    output_or_fail(args.out)
    crm = load_crm_or_fail(args.data, args)
    as_of = resolve_as_of(crm, args.as_of)
    if args.rules_only:
        config = load_rules_or_fail(args.rules)
        table, _, _ = rules_table(crm, config, as_of)
    else:
        from features.model.batch import model_table

        scorer, info = load_model_or_fail(args.model)
        if scorer.kind != "touchpoint":
            raise UserError(f"{args.model} scores a lead table: use --table FILE, not --data")
        config = (
            load_rules_or_fail(args.rules)
            if args.rules
            else (scorer.rules or load_rules_or_fail(None))
        )
        table = model_table(
            crm, scorer, config, as_of, reasons=args.reasons, reasons_for=args.reasons_for
        )
        print(f"model {info['name'] or args.model} version {info['version'] or '?'}")
        _say_reasons(table, args)
    _write_scores(args, table, None)
    mql = int(table["mql"].sum())
    how = "the points matrix" if args.rules_only else "the model and the points matrix"
    print(
        f"scored {len(table):,} contacts at {as_of.isoformat()} with {how}; "
        f"{mql:,} MQLs (threshold {config.mql_threshold:g}); wrote {args.out}"
    )
    return EXIT_OK


def _score_dask(args: argparse.Namespace) -> int:
    """A CRM export scored on Dask, partition by partition, into a folder of CSV parts."""
    from features.model.partitioned import score_dask
    from features.pipeline.partitions import PartitionError

    dask_or_fail()
    if args.rules_only or args.format != "csv":
        raise UserError("--engine dask scores with the model into CSV parts (no --rules-only, "
                        "no --format bitrix24)")  # fmt: skip
    scorer, info = load_model_or_fail(args.model)
    if scorer.kind != "touchpoint":
        raise UserError(f"{args.model} scores a lead table: use --table FILE, not --data")
    config = (
        load_rules_or_fail(args.rules) if args.rules else (scorer.rules or load_rules_or_fail(None))
    )
    try:
        done = score_dask(
            args.data, args.out, scorer, config, as_of=args.as_of, reasons=args.reasons,
            reasons_for=args.reasons_for, scheduler=args.scheduler,
            n_partitions=args.partitions, workers=args.workers, csv_format=csv_format(args),
        )  # fmt: skip
    except (PartitionError, ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    print(f"model {info['name'] or args.model} version {info['version'] or '?'}")
    if done.reason_rows:
        print(
            f"reasons ({args.reasons_for}) for {done.reason_rows:,} of {done.rows:,} leads: "
            f"{done.reason_seconds:.1f} s of worker time"
        )
    print(
        f"scored {done.rows:,} contacts at {done.as_of.isoformat()} in {done.partitions} "
        f"partitions on {done.workers} workers; {done.mql:,} MQLs (threshold "
        f"{config.mql_threshold:g}); wrote {args.out}/part-*.csv"
    )
    return EXIT_OK


def _score_table(args: argparse.Namespace) -> int:
    from features.model.batch import table_scores
    from features.table.read import read_table

    if args.rules_only:
        raise UserError("--rules-only scores a CRM export; a table is scored by its model")
    uri = args.model or TABLE_CHAMPION_URI
    output_or_fail(args.out)
    scorer, info = load_model_or_fail(uri)
    if scorer.kind != "table":
        raise UserError(f"{uri} scores touchpoint histories (--data), not a lead table")
    try:
        source = read_table(args.table, args.sep, args.encoding)
        table = table_scores(source, scorer, reasons=args.reasons, reasons_for=args.reasons_for)
        _say_reasons(table, args)
    except ValueError as exc:  # TableError: the file, a column, a cell
        raise UserError(str(exc)) from exc
    _write_scores(args, table, source)
    print(
        f"model {info['name'] or uri} version {info['version'] or '?'}: scored "
        f"{len(table):,} leads of {args.table}; {int(table['mql'].sum()):,} MQLs; wrote {args.out}"
    )
    return EXIT_OK


def _say_reasons(table: Any, args: argparse.Namespace) -> None:
    cost = table.attrs.get("reasons")
    if cost is not None:
        print(
            f"reasons ({args.reasons_for}) for {cost.rows:,} of {len(table):,} leads: "
            f"{cost.seconds:.1f} s, {cost.us_per_row:,.0f} µs a row"
        )


def _write_scores(args: argparse.Namespace, table: Any, source: Any) -> None:
    """Our CSV, or Bitrix24's import file (`;`, BOM or cp1251, its titles), whole."""
    if args.format != "bitrix24":
        write_or_fail(args.out, table)
        return
    from features.files import OutputError, written_whole
    from features.table.bitrix24 import import_table

    out = import_table(table, source, args.language)
    text = out.to_csv(index=False, sep=";")
    data = text.encode(args.out_encoding, errors="replace")
    lost = text.count("?") < data.count(b"?")
    try:
        with written_whole(args.out) as partial:
            partial.write_bytes(data)
    except OutputError as exc:
        raise UserError(str(exc)) from exc
    if lost:
        print(f"note: some characters have no {args.out_encoding} form and became '?'")


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    # Checked here, before any worker starts: the model is there (in which tracking
    # store, absolute), plain files only; a server started in the wrong folder would
    # otherwise create an empty mlflow.db and answer 503 forever.
    _, info = load_model_or_fail(args.model)
    os.environ["LEADSCORE_MODEL_URI"] = args.model
    # The live store: its schema must be the code's, or the server would fail on the
    # first event instead of now. --no-store serves the stateless routes only.
    mapping = os.environ.get("LEADSCORE_SEGMENT_MAPPING")
    if mapping:
        from serving.segment.translate import MappingError, load_mapping

        try:
            load_mapping(mapping)
        except MappingError as exc:
            raise UserError(str(exc)) from None
    connectors = os.environ.get("LEADSCORE_CONNECTORS")
    if connectors:
        from serving.connectors.config import ConnectorConfigError, load_connectors

        try:
            load_connectors(connectors)
        except ConnectorConfigError as exc:
            raise UserError(str(exc)) from None
        os.environ["LEADSCORE_CONNECTORS"] = os.path.abspath(connectors)
    if args.no_store:
        os.environ["LEADSCORE_DATABASE_URL"] = ""
    else:
        from features.crm.database import absolute_url, safe_url
        from leadscore.store import open_store

        store = open_store(args)
        os.environ["LEADSCORE_DATABASE_URL"] = absolute_url(store.url)
        print(f"live store: {safe_url(store.url)}", flush=True)
        store.dispose()
    version = f" version {info['version']}" if info["version"] else ""
    print(
        f"serving {args.model}{version} on http://{args.host}:{args.port} (docs at /docs)",
        flush=True,
    )
    uvicorn.run(
        "serving.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        log_config=_log_config(),
    )
    return EXIT_OK


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the project's own loggers (which model is served, warnings
    about open access, disconnects) on the same handler, in every worker."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for name in ("serving", "features"):
        config["loggers"][name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


# --- the parser ---------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction) -> None:
    sc = sub.add_parser("score", help="score every eligible contact of a CRM export")
    sc.add_argument("--data", type=data_source, default=None, help=DATA_HELP)
    sc.add_argument("--table", type=Path, default=None, help="or a lead table (CSV or Parquet)")
    add_csv_options(sc, "the CSV files of --data or --table")
    sc.add_argument("--out", required=True, type=Path, help="CSV file to write")
    sc.add_argument(
        "--as-of",
        type=timestamp,
        default=None,
        help="scoring moment, ISO 8601 (default: the end of the data)",
    )
    sc.add_argument(
        "--rules", type=Path, default=None, help="points matrix YAML (default: the shipped one)"
    )
    sc.add_argument("--rules-only", action="store_true", help="points only, no model")
    sc.add_argument(
        "--model",
        default=None,
        help=f"model URI (default {CHAMPION_URI}, with --table {TABLE_CHAMPION_URI})",
    )
    sc.add_argument(
        "--reasons",
        type=int,
        default=3,
        choices=range(0, 21),
        metavar="N",
        help="top reasons per contact, 0-20 (default 3; 0 is fastest)",
    )
    sc.add_argument(
        "--reasons-for",
        type=reasons_for,
        default=DEFAULT_REASONS_FOR,
        metavar="WHO",
        help="which leads get reasons: mql, top:K, top:P%%, all, or several with commas "
        f"(default {DEFAULT_REASONS_FOR}: reasons cost ~100x a prediction)",
    )
    sc.add_argument(
        "--format",
        choices=["csv", "bitrix24"],
        default="csv",
        help="csv (ours), or bitrix24: a file Bitrix24's lead import takes (; separated, "
        "its column titles; see docs/integrations.md)",
    )
    sc.add_argument(
        "--out-encoding",
        choices=["utf-8-sig", "cp1251"],
        default="utf-8-sig",
        help="with --format bitrix24: UTF-8 with BOM (default) or cp1251",
    )
    sc.add_argument(
        "--language",
        choices=["ru", "en"],
        default="ru",
        help="with --format bitrix24: the titles of the score columns (default ru)",
    )
    add_engine_options(sc)
    sc.set_defaults(func=cmd_score)

    sv = sub.add_parser("serve", help="run the scoring API")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=positive_int, default=8000)
    sv.add_argument("--workers", type=positive_int, default=1)
    sv.add_argument("--model", default=CHAMPION_URI, help="model URI")
    sv.add_argument(
        "--database",
        default=None,
        help="the live lead store (default: LEADSCORE_DATABASE_URL, else sqlite:///leadscore.db)",
    )
    sv.add_argument(
        "--no-store", action="store_true", help="no live store: only /v1/score and the model routes"
    )
    sv.set_defaults(func=cmd_serve)

    ui = sub.add_parser(
        "ui-user",
        help="print a LEADSCORE_UI_USERS entry: a user of the marketing workspace (/ui)",
        description="Prints name:role:hash for LEADSCORE_UI_USERS (join several with commas). "
        "The password is read from --password, else from standard input (one line).",
    )
    ui.add_argument("name", help="the user name to sign in with")
    ui.add_argument("--role", choices=["marketing", "admin"], default="marketing")
    ui.add_argument("--password", default=None, help="default: read from standard input")
    ui.set_defaults(func=cmd_ui_user)


def cmd_ui_user(args: argparse.Namespace) -> int:
    """A workspace user entry; the password never appears in it (PBKDF2-SHA256)."""
    from serving.workspace.session import UserEntryError, user_entry

    password = args.password if args.password is not None else sys.stdin.readline().rstrip("\n")
    if not password:
        raise UserError("an empty password: give --password or one line on standard input")
    try:
        print(user_entry(args.name, args.role, password))
    except UserEntryError as exc:
        raise UserError(str(exc)) from None
    return EXIT_OK
