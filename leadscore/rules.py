"""`leadscore rules`: suggest point values from outcomes, measure a points matrix."""

from __future__ import annotations

import argparse
from pathlib import Path

from leadscore.inputs import (
    DATA_HELP,
    EXIT_OK,
    UserError,
    add_csv_options,
    data_source,
    load_crm_or_fail,
    load_rules_or_fail,
    output_or_fail,
    positive_int,
    write_or_fail,
)


def cmd_rules_suggest(args: argparse.Namespace) -> int:
    import pandas as pd

    from features.pipeline.snapshots import SnapshotConfig
    from training.suggest import NotEnoughConversions, suggest_points, suggestion_yaml

    if args.out is not None:
        output_or_fail(args.out)
    config = load_rules_or_fail(args.rules)
    crm = load_crm_or_fail(args.data, args)
    try:
        suggestion = suggest_points(
            crm, config, SnapshotConfig(horizon_days=args.horizon_days),
            min_conversions=args.min_conversions, free_signs=args.free_signs,
        )  # fmt: skip
    except NotEnoughConversions as exc:
        raise UserError(str(exc)) from exc
    print(
        f"learned from {suggestion.conversions:,} conversions in {suggestion.snapshots:,} "
        f"snapshots (base rate {suggestion.base_rate:.2%}); the MQL threshold "
        f"({config.mql_threshold:g}) flags {suggestion.mql_share:.2%} of them now and "
        f"{suggestion.suggested_mql_share:.2%} with the suggested points\n"
    )
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        columns = ["rule", "group", "current_points", "suggested_points", "share",
                   "conversion_rate", "lift", "why"]  # fmt: skip
        print(suggestion.rules[columns].round(3).to_string(index=False))
        print("\nattribute insights (conversion rate and lift over the base rate):")
        print(suggestion.insights.round(3).to_string(index=False))
    text = suggestion_yaml(suggestion)
    if args.out is None:
        print("\n" + text)
    else:
        write_or_fail(args.out, text=text)
        print(f"\nwrote the suggested matrix to {args.out}")
    return EXIT_OK


def cmd_rules_evaluate(args: argparse.Namespace) -> int:
    from features.pipeline.snapshots import SnapshotConfig
    from training.rules_eval import evaluate_rules

    config = load_rules_or_fail(args.rules)
    crm = load_crm_or_fail(args.data, args)
    try:
        result = evaluate_rules(crm, config, SnapshotConfig(horizon_days=args.horizon_days))
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    print(result.to_text())
    return EXIT_OK


def add_commands(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser("rules", help="work with the points matrix")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    sug = rules_sub.add_parser("suggest", help="suggest point values from the CRM's outcomes")
    sug.add_argument("--data", required=True, type=data_source, help=DATA_HELP)
    add_csv_options(sug)
    sug.add_argument("--out", type=Path, default=None, help="YAML file to write (default: print)")
    sug.add_argument(
        "--rules", type=Path, default=None, help="the matrix to improve (default: the shipped one)"
    )
    sug.add_argument("--horizon-days", type=positive_int, default=90)
    sug.add_argument(
        "--free-signs",
        action="store_true",
        help="let the data flip a rule's sign (default: intent adds, negatives take away)",
    )
    sug.add_argument(
        "--min-conversions",
        type=positive_int,
        default=None,
        help="refuse below this many conversions (default: 5 per rule, >= 100)",
    )
    sug.set_defaults(func=cmd_rules_suggest)
    ev = rules_sub.add_parser("evaluate", help="measure how well a points matrix ranks leads")
    ev.add_argument("--data", required=True, type=data_source, help=DATA_HELP)
    add_csv_options(ev)
    ev.add_argument(
        "--rules", type=Path, default=None, help="the matrix (default: the shipped one)"
    )
    ev.add_argument("--horizon-days", type=positive_int, default=90)
    ev.set_defaults(func=cmd_rules_evaluate)
