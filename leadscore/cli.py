"""`leadscore`: thin commands over the project's functions.

Each command parses its flags, builds a configuration, sets up logging and calls one
function; tests call those functions, not the shell. The commands live by subject:
`leadscore/data.py` (generate, validate, build-dataset), `leadscore/models.py` (train,
evaluate, promote), `leadscore/scoring.py` (score, serve), `leadscore/store.py` (db
upgrade, load, rescore: the live lead store), `leadscore/rules.py` (rules suggest,
rules evaluate). Each imports what it needs when it runs, so `leadscore
validate` does not pay for importing MLflow. User mistakes end with a plain message
and exit code 2, never a stack trace (`leadscore/inputs.py`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from features.allocator import use_returning_pool
from leadscore import data, models, rules, scoring, store
from leadscore.inputs import EXIT_USAGE, UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadscore",
        description="Lead scoring for B2B: a calibrated conversion probability next to a "
        "transparent points score, learned from your CRM's closed-won deals.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for group in (data, scoring, store, models, rules):
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    use_returning_pool()  # (features/allocator.py: peaks 19-30 % lower)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its plugins' set-up is noise
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as exc:
        print(f"leadscore {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def run() -> None:
    """The `leadscore` console script: one command in a process of its own.

    `leadscore score` only predicts with LightGBM boosters, and importing LightGBM also
    imports scikit-learn for LightGBM's scikit-learn-style estimators, which the
    command never uses (1.1 s of a 1,500-account run, measured). A `score` process imports
    LightGBM with scikit-learn hidden. Only here: the process runs that one command and
    ends, whereas `main` is also called by tests and notebooks in processes that may
    train afterwards (LightGBM's Dask training needs its scikit-learn estimators).
    """
    argv = sys.argv[1:]
    # the command is the first word that is not an option (the options before it take no
    # value); parsing would not do: it imports LightGBM to read `--reasons-for`'s default
    command = next((word for word in argv if not word.startswith("-")), None)
    if command == "score" and "--rules-only" not in argv:  # (points alone need no model)
        import_lightgbm_alone()
    sys.exit(main(argv))


def import_lightgbm_alone() -> None:
    """Import LightGBM without scikit-learn: its scikit-learn estimators (`LGBMClassifier`
    and the Dask ones) are then unusable in this process; `Booster` is untouched. Nothing
    happens when either is imported already."""
    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # importing it raises ImportError
    try:
        import lightgbm  # noqa: F401
    finally:
        del sys.modules["sklearn"]  # a later `import sklearn` works as usual


if __name__ == "__main__":  # pragma: no cover
    run()
