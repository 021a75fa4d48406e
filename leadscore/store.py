"""Commands of the live lead store: `db upgrade`, `db status`, `load`, `rescore`,
`dispatch` (the webhook dispatcher as its own process).

The store is `--database URL`, or LEADSCORE_DATABASE_URL, or `sqlite:///leadscore.db`
in the current folder (the server's default too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import TYPE_CHECKING

from features.model.names import CHAMPION_URI
from leadscore.inputs import (
    DATA_HELP,
    EXIT_OK,
    UserError,
    add_csv_options,
    csv_format,
    data_source,
    load_model_or_fail,
    timestamp,
)

if TYPE_CHECKING:
    from serving.state import LoadedModel
    from serving.store.engine import Store

DEFAULT_DATABASE = "sqlite:///leadscore.db"


def database_url(args: argparse.Namespace) -> str:
    from features.crm.database import is_database_url

    url = args.database or os.environ.get("LEADSCORE_DATABASE_URL") or DEFAULT_DATABASE
    if not is_database_url(url):
        raise UserError(
            f"{url!r} is not a database URL; expected sqlite:///FILE or "
            "postgresql://USER@HOST:PORT/DATABASE"
        )
    return url


def open_store(args: argparse.Namespace, require_schema: bool = True) -> Store:
    from serving.store.engine import Store
    from serving.store.schema import SchemaError, require_current

    store = Store(database_url(args))
    if require_schema:
        try:
            require_current(store)
        except SchemaError as exc:
            raise UserError(str(exc)) from None
    return store


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from features.crm.database import safe_url
    from serving.store.schema import SchemaError, upgrade

    store = open_store(args, require_schema=False)
    try:
        before, after = upgrade(store)
    except SchemaError as exc:
        raise UserError(str(exc)) from None
    where = safe_url(store.url)
    if before == after:
        print(f"the lead store at {where} is up to date (revision {after})")
    else:
        print(f"migrated the lead store at {where}: {before or 'empty'} -> {after}")
    return EXIT_OK


def cmd_db_status(args: argparse.Namespace) -> int:
    from features.crm.database import safe_url
    from serving.store.schema import SchemaError, schema_state

    store = open_store(args, require_schema=False)
    try:
        state = schema_state(store)
    except SchemaError as exc:
        raise UserError(str(exc)) from None
    status = "up to date" if state.up_to_date else "BEHIND: run `leadscore db upgrade`"
    print(
        f"lead store {safe_url(store.url)}: revision {state.current or 'none'}, "
        f"code {state.head} ({status})"
    )
    return EXIT_OK if state.up_to_date else 1


def _loaded(uri: str, store: Store) -> LoadedModel:
    """The model by URI, scoring points with the matrix applied in the store (if any)."""
    from serving.state import LoadedModel, with_matrix
    from serving.store.matrices import in_effect

    scorer, info = load_model_or_fail(uri)
    if scorer.kind != "touchpoint":
        raise UserError(f"{uri} scores lead tables; the live store needs a touchpoint model")
    loaded = LoadedModel(
        scorer, info["name"] or uri, info["version"], info["alias"], uri, trained_rules=scorer.rules
    )
    return with_matrix(loaded, in_effect(store))


def cmd_load(args: argparse.Namespace) -> int:
    from features.crm.database import is_database_url, safe_url
    from features.crm.load import read_crm
    from features.model.batch import resolve_as_of
    from serving.store.load import load_export
    from serving.store.rescore import RescoreBusy, rescore

    if is_database_url(str(args.data)):
        raise UserError("--data is the export to load (a folder), not a database")
    store = open_store(args)
    model = None if args.no_score else _loaded(args.model, store)
    crm, report = read_crm(args.data, csv_format(args))
    if crm is None:
        raise UserError(f"{report.to_text()}\nnothing was loaded")
    result = load_export(store, crm, report.derived)
    print(f"loaded {args.data} into {safe_url(store.url)}:")
    print("\n".join(result.lines()))
    if model is None:
        return EXIT_OK
    as_of = resolve_as_of(crm, args.as_of).to_pydatetime()
    try:
        run = rescore(store, model, "load", as_of, progress=print)
    except RescoreBusy as exc:
        raise UserError(f"{exc}; scores were not updated, run `leadscore rescore` later") from None
    print(
        f"scored {run.active:,} active leads at {as_of.isoformat()} with {model.name} "
        f"version {model.version}: {run.changed:,} new scores in the ledger ({run.seconds:.1f} s)"
    )
    return EXIT_OK


def cmd_rescore(args: argparse.Namespace) -> int:
    from serving.store.rescore import RescoreBusy, rescore

    store = open_store(args)
    model = _loaded(args.model, store)
    as_of = None
    if args.as_of is not None:
        as_of = dt.datetime.fromisoformat(args.as_of)
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.UTC)
    try:
        run = rescore(store, model, "rescore", as_of, progress=print)
    except RescoreBusy as exc:
        raise UserError(str(exc)) from None
    print(
        f"rescored {run.active:,} active leads at {run.as_of.isoformat()} with {model.name} "
        f"version {model.version} in {run.seconds:.1f} s: {run.changed:,} scores changed"
        + (f", {run.skipped:,} left as an event had just rescored them" if run.skipped else "")
        + f" (run {run.run_id})"
    )
    return EXIT_OK


def cmd_dispatch(args: argparse.Namespace) -> int:
    """The outbox's dispatcher as its own process (the server's stays off with
    LEADSCORE_DISPATCH=false); several may run against one PostgreSQL store."""
    import signal
    import threading

    from pydantic import ValidationError

    from serving.config import Settings, dispatch_settings
    from serving.connectors.config import ConnectorConfigError, load_connectors, sync_connectors
    from serving.connectors.registry import formats
    from serving.webhooks.dispatch import Dispatcher, backlog

    store = open_store(args)
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "LEADSCORE_" + str(first["loc"][0]).upper()
        raise UserError(f"{name}: {first['msg']}") from None
    try:
        specs = load_connectors(settings.connectors)
    except ConnectorConfigError as exc:
        raise UserError(str(exc)) from None
    if args.status:
        counts = backlog(store)
        print(", ".join(f"{n:,} {s}" for s, n in sorted(counts.items())) or "the outbox is empty")
        return EXIT_OK
    sync_connectors(store, specs)
    dispatcher = Dispatcher(store, dispatch_settings(settings), formats())
    if args.once:
        total = 0
        while True:
            done = dispatcher.run_once()
            total += done
            if not done:
                break
        print(f"attempted {total:,} messages; outbox now: {backlog(store)}")
        return EXIT_OK
    stop = threading.Event()

    def halt(*_: object) -> None:
        stop.set()
        dispatcher.wake.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, halt)
    print(f"dispatching the outbox of {store!r} as {dispatcher.name} (Ctrl-C stops)", flush=True)
    dispatcher.run(stop)
    dispatcher.close()
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    def database(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--database",
            default=None,
            help="the lead store (default: LEADSCORE_DATABASE_URL, else sqlite:///leadscore.db)",
        )

    db = sub.add_parser("db", help="the live lead store's schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="create the store or migrate it to this version")
    database(up)
    up.set_defaults(func=cmd_db_upgrade)
    st = db_sub.add_parser("status", help="the store's schema revision and the code's")
    database(st)
    st.set_defaults(func=cmd_db_status)

    ld = sub.add_parser("load", help="seed the live store from a CRM export, then score it")
    ld.add_argument("--data", required=True, type=data_source, help=DATA_HELP)
    add_csv_options(ld)
    database(ld)
    ld.add_argument("--model", default=CHAMPION_URI, help="model URI for the first scores")
    ld.add_argument(
        "--as-of", type=timestamp, default=None, help="scoring moment (default: the data's end)"
    )
    ld.add_argument("--no-score", action="store_true", help="load only; score later")
    ld.set_defaults(func=cmd_load)

    rs = sub.add_parser("rescore", help="rescore every lead active in the last year")
    database(rs)
    rs.add_argument("--model", default=CHAMPION_URI, help="model URI")
    rs.add_argument("--as-of", type=timestamp, default=None, help="scoring moment (default: now)")
    rs.set_defaults(func=cmd_rescore)

    dp = sub.add_parser(
        "dispatch", help="deliver webhooks and CRM write-backs (the outbox) as its own process"
    )
    database(dp)
    dp.add_argument("--once", action="store_true", help="deliver what is due, then stop")
    dp.add_argument("--status", action="store_true", help="print the outbox's counts by status")
    dp.set_defaults(func=cmd_dispatch)
