"""What the benchmarks share: a trained champion, realistic lead bodies, ports, and an
earlier commit checked out beside this one to measure against.

Each benchmark is a script (`python benchmarks/bench_x.py`); this module sits beside them
on their import path.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

AS_OF = pd.Timestamp("2025-06-01T00:00:00Z")
#: this checkout
ROOT = Path(__file__).resolve().parents[1]
#: the command that starts an earlier commit's CLI, whatever its console script's entry
#: point was then (`main` before `leadscore.cli:run`); run with the commit on PYTHONPATH
OLD_CLI = ["-c", "import sys; from leadscore.cli import main; sys.exit(main())"]


@contextlib.contextmanager
def checked_out(rev: str) -> Iterator[Path]:
    """Commit `rev` of this repository as a git worktree in a temporary folder, removed
    afterwards: a baseline measured on the same machine at the same moment."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def champion_and_leads(
    home: Path, accounts: int, leads: int = 200
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """In ``home`` (the working directory from now on): a synthetic CRM, a model trained and
    promoted in `home/mlflow.db`, and request bodies of ``leads`` eligible contacts at
    AS_OF with their committees (the snapshot rows, for comparisons, come first)."""
    from features.crm.load import load_crm
    from features.pipeline.lead import lead_from_crm
    from features.pipeline.snapshots import SnapshotConfig, build_snapshots
    from features.synthetic import GeneratorConfig, generate_crm
    from training.promote import promote
    from training.train import TrainConfig, train

    os.chdir(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
    data = home / "crm"
    generate_crm(GeneratorConfig(accounts=accounts, seed=5), data, fmt="parquet")
    train(TrainConfig(), data)
    promote()
    crm = load_crm(data)
    frame, _ = build_snapshots(crm, SnapshotConfig(), dates=[AS_OF])
    sample = frame.sample(min(leads, len(frame)), random_state=0)

    def js(record: Any) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, pd.Timestamp) else v)
            for k, v in dict(record).items()
        }

    bodies = []
    for contact_id in sample["contact_id"]:
        lead = lead_from_crm(crm, contact_id)
        bodies.append(
            {
                "contact": js(lead.contact),
                "account": js(lead.account) if lead.account else None,
                "touchpoints": [js(t) for t in lead.touchpoints],
                "committee": [
                    {"contact": js(c), "touchpoints": [js(t) for t in ts]}
                    for c, ts in lead.committee
                ],
                "opportunities": [js(o) for o in lead.opportunities],
                "as_of": AS_OF.isoformat(),
            }
        )
    return sample, bodies
