"""Commands on a CRM export: `generate`, `validate`, `build-dataset`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from leadscore.inputs import (
    DATA_HELP,
    EXIT_OK,
    EXIT_REFUSED,
    UserError,
    add_csv_options,
    add_engine_options,
    csv_format,
    dask_or_fail,
    data_source,
    date,
    positive_int,
)


def cmd_generate(args: argparse.Namespace) -> int:
    from features.synthetic import GeneratorConfig, generate_crm

    cfg = GeneratorConfig(
        accounts=args.accounts, seed=args.seed, start=args.start, months=args.months
    )
    started = time.perf_counter()
    try:
        manifest = generate_crm(
            cfg, args.out, fmt=args.format, progress=not args.quiet, overwrite=args.overwrite
        )
    except FileExistsError as exc:
        raise UserError(str(exc)) from exc
    seconds = time.perf_counter() - started
    rows = manifest["rows"]
    print(f"generated a synthetic CRM in {args.out} ({args.format}) in {seconds:.1f} s")
    for name, count in rows.items():
        print(f"  {name:<14} {count:>12,} rows")
    print(f"  latent truth (never a model input) in {Path(args.out) / 'truth'}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from features.crm.load import read_crm

    _, report = read_crm(args.folder, csv_format(args))
    print(report.to_json() if args.json else report.to_text())
    return EXIT_OK if report.ok else EXIT_REFUSED


def cmd_build_dataset(args: argparse.Namespace) -> int:
    from features.crm.validation import InvalidCRMError
    from features.files import OutputError
    from features.pipeline.snapshots import SnapshotConfig, build_dataset

    cfg = SnapshotConfig(
        horizon_days=args.horizon_days,
        every_days=args.snapshot_every_days,
        start=args.start,
        end=args.end,
        active_days=args.active_days or None,
    )
    try:
        if args.engine == "dask":
            from features.pipeline.partitions import PartitionError, build_dataset_dask

            dask_or_fail()
            try:
                report = build_dataset_dask(
                    args.data, args.out, cfg, scheduler=args.scheduler,
                    n_partitions=args.partitions, csv_format=csv_format(args),
                    workers=args.workers, say=print,
                )  # fmt: skip
            except PartitionError as exc:
                raise UserError(str(exc)) from None
        else:
            report = build_dataset(
                args.data, args.out, cfg, progress=not args.quiet, csv_format=csv_format(args)
            )
    except InvalidCRMError as exc:
        raise UserError(
            f"{exc}\n(run `leadscore validate {args.data}` for the full report)"
        ) from exc
    except (OutputError, ValueError) as exc:  # the output, or an export with nothing to learn
        raise UserError(str(exc)) from exc
    print(f"wrote {args.out}")
    print(report.to_text())
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    gen = sub.add_parser("generate", help="write a synthetic B2B CRM export")
    gen.add_argument("--out", required=True, type=Path, help="folder to write (must be empty)")
    gen.add_argument("--accounts", type=positive_int, default=2_000, help="accounts to simulate")
    gen.add_argument("--seed", type=int, default=0, help="random seed (same seed, same CRM)")
    gen.add_argument("--start", type=date, default="2024-01-01", help="first day, YYYY-MM-DD")
    gen.add_argument("--months", type=positive_int, default=24, help="months to simulate")
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv")
    gen.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)

    val = sub.add_parser("validate", help="check a CRM export folder against the data contract")
    val.add_argument(
        "folder",
        type=data_source,
        help="folder with accounts, contacts, touchpoints, opportunities (.csv or .parquet), "
        "or a lead store's database URL",
    )
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    add_csv_options(val)
    val.set_defaults(func=cmd_validate)
    ds = sub.add_parser("build-dataset", help="build point-in-time training snapshots")
    ds.add_argument("--data", required=True, type=data_source, help=DATA_HELP)
    add_csv_options(ds)
    ds.add_argument(
        "--out",
        required=True,
        type=Path,
        help="Parquet file to write (--engine dask: a folder of Parquet parts)",
    )
    ds.add_argument(
        "--horizon-days",
        type=positive_int,
        default=90,
        help="a deal won within this many days after as_of is a conversion",
    )
    ds.add_argument("--snapshot-every-days", type=positive_int, default=30)
    ds.add_argument(
        "--start",
        type=date,
        default=None,
        help="first as_of (default: a step after the first touchpoint)",
    )
    ds.add_argument(
        "--end",
        type=date,
        default=None,
        help="last as_of considered (default: the end of the data)",
    )
    ds.add_argument(
        "--active-days",
        type=int,
        default=365,
        help="leave out contacts with no "
        "touchpoint or creation in this many days before as_of (0 keeps them all)",
    )
    ds.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_options(ds)
    ds.set_defaults(func=cmd_build_dataset)
