"""Benchmark: where one lead's scoring time goes, in process, stage by stage.

Trains a model on a small synthetic CRM, takes 200 leads' contexts (with their
committees) as the API receives them, and times each stage of `score_requests` alone,
600 calls each (median), next to the whole of `score_requests` with and without reasons.
The model is tabulated as the server tabulates it; TreeSHAP is timed both from the
tables (what the server runs) and by LightGBM (what it ran before).

    python benchmarks/bench_lead_stages.py [--accounts 1500]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _median_ms(f: Callable[[int], Any], n: int, calls: int = 600) -> float:
    for i in range(20):
        f(i % n)
    times = []
    for i in range(calls):
        started = time.perf_counter()
        f(i % n)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1500)
    args = parser.parse_args()
    import json

    import pandas as pd

    from features.crm.load import load_crm
    from features.model.pyfunc import load_scorer
    from features.pipeline.kernel import compute_features
    from features.pipeline.lead import lead_from_crm, lead_problems
    from features.pipeline.snapshots import SnapshotConfig, build_snapshots
    from features.pipeline.store import EventStore, to_seconds
    from features.points.engine import score_rules
    from features.synthetic import GeneratorConfig, generate_crm
    from serving.bodies import parse_lead
    from serving.scoring import _context, score_requests
    from serving.state import LoadedModel
    from training.promote import promote
    from training.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        data = Path(tmp) / "crm"
        generate_crm(GeneratorConfig(accounts=args.accounts, seed=5), data, fmt="parquet")
        train(TrainConfig(), data)
        promote()
        crm = load_crm(data)
        as_of = pd.Timestamp("2025-06-01T00:00:00Z")
        frame, _ = build_snapshots(crm, SnapshotConfig(), dates=[as_of])
        contacts = frame.sample(min(200, len(frame)), random_state=0)["contact_id"]

        def jsonable(d: Any) -> dict[str, Any]:
            return {
                k: (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in dict(d).items()
            }

        bodies = []
        for cid in contacts:
            lead = lead_from_crm(crm, cid)
            bodies.append(
                json.dumps(
                    {
                        "contact": jsonable(lead.contact),
                        "account": jsonable(lead.account) if lead.account else None,
                        "touchpoints": [jsonable(t) for t in lead.touchpoints],
                        "committee": [
                            {"contact": jsonable(c), "touchpoints": [jsonable(t) for t in ts]}
                            for c, ts in lead.committee
                        ],
                        "opportunities": [jsonable(o) for o in lead.opportunities],
                        "as_of": as_of.isoformat(),
                    }
                ).encode()
            )
        scorer, info = load_scorer("models:/lead-scorer@champion")
        scorer.tabulate()  # as the server does when it loads the model
        assert scorer.shap_tables is not None and scorer.booster is not None
        tables, booster = scorer.shap_tables, scorer.booster
        model = LoadedModel(scorer, info["name"], info["version"], info["alias"], "")
        requests = [parse_lead(b) for b in bodies]
        leads = [_context(r) for r in requests]
        stores = [EventStore.from_leads([lead]) for lead in leads]
        moment = to_seconds(as_of.to_pydatetime())

        def kernel(i: int) -> Any:
            s = stores[i]
            return compute_features(s, np.arange(s.n_contacts), np.full(s.n_contacts, moment))

        xs = [scorer.matrix(kernel(i)) for i in range(len(stores))]
        n = len(bodies)
        stages = {
            "JSON parse + validation (parse_lead)": lambda i: parse_lead(bodies[i]),
            "request to lead context": lambda i: _context(requests[i]),
            "contract checks (lead_problems)": lambda i: lead_problems(leads[i], requests[i].as_of),
            "lead door (EventStore.from_leads)": lambda i: EventStore.from_leads([leads[i]]),
            "kernel (compute_features)": kernel,
            "prediction (lead + committee)": lambda i: scorer.predict(xs[i]),
            "TreeSHAP (the lead), the tables": lambda i: tables.contributions(xs[i][:1]),
            "TreeSHAP (the lead), LightGBM's": lambda i: booster.predict(
                xs[i][:1], pred_contrib=True, num_threads=1
            ),
            "points (score_rules)": lambda i: score_rules(
                scorer.rules, stores[i], np.array([0]), np.array([moment])
            ),
        }
        timings = {name: _median_ms(f, n) for name, f in stages.items()}
        whole = _median_ms(lambda i: score_requests([requests[i]], model, 5), n)
        no_reasons = _median_ms(lambda i: score_requests([requests[i]], model, 0), n)

    touches = [len(r.touchpoints) + sum(len(m.touchpoints) for m in r.committee) for r in requests]
    print(f"{n} leads, median {int(np.median(touches))} touchpoints with the committee")
    for name, ms in timings.items():
        print(f"{name}: {ms:.3f} ms")
    print(f"score_requests, 5 reasons: {whole:.3f} ms; without reasons: {no_reasons:.3f} ms")


if __name__ == "__main__":
    main()
