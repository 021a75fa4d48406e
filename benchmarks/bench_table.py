"""Benchmark: a lead-table model, one lead through the API and a whole file in batch.

Trains a table model (the real X Education table when ../shared is beside the checkout,
else a generated table), then in one run:

- `POST /v1/score` with `attributes`, server-side time from the Server-Timing header,
  through Starlette's TestClient (in process: no network, the app's full ASGI path);
- `features.model.batch.table_scores` on every row of the file, without and with reasons;
- the baseline: the registered MLflow pyfunc's `predict` on the same rows, already
  converted to the model's inputs (the pyfunc's signature).

    python benchmarks/bench_table.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
XEDU = ROOT.parent / "shared" / "data" / "real" / "xeducation_leads" / "Leads.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    import mlflow
    import pandas as pd
    from fastapi.testclient import TestClient

    from features.model.batch import table_scores
    from features.model.pyfunc import load_scorer
    from features.table.cells import model_inputs
    from serving.app import create_app
    from serving.config import Settings
    from training.table_train import TableTrainConfig, train_table

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        if XEDU.is_file():
            path, cfg = XEDU, TableTrainConfig(target="Converted", id_column="Lead Number")
        else:
            from tests.training.test_table import lead_table

            path = Path(tmp) / "leads.csv"
            lead_table(n=10_000).to_csv(path, index=False)
            cfg = TableTrainConfig(target="Converted", id_column="Lead Number")
        result = train_table(cfg, path)
        uri = f"models:/{cfg.model_name}/{result.model_version}"
        raw = pd.read_csv(path)
        rows: list[dict[str, Any]] = [
            {k: _plain(v) for k, v in r.items()} for r in raw.to_dict("records")
        ]
        app = create_app(Settings(model_uri=uri, alias_poll_seconds=0))
        with TestClient(app) as client:
            for row in rows[:100]:
                client.post("/v1/score", json={"attributes": row})
            server = []
            for i in range(args.requests):
                answer = client.post("/v1/score", json={"attributes": rows[i % len(rows)]})
                server.append(float(answer.headers["server-timing"].split("dur=")[1]))
        scorer, _ = load_scorer(uri)
        timings = {}
        for reasons in (0, 3):
            started = time.perf_counter()
            table_scores(raw, scorer, reasons=reasons)
            timings[reasons] = time.perf_counter() - started
        # The pyfunc's signature declares the model's inputs (numbers as float, text), so
        # it gets the rows converted; MLflow's schema check refuses integer columns.
        pyfunc = mlflow.pyfunc.load_model(uri)
        converted = model_inputs(raw, scorer.table_spec)
        started = time.perf_counter()
        pyfunc.predict(converted)
        t_pyfunc = time.perf_counter() - started

    n = len(raw)
    print(f"table: {path.name}, {n:,} rows; model inputs: {len(result.spec.columns)} columns")
    print(
        f"/v1/score with attributes (probability + points + 5 reasons), in process: "
        f"server p50 {np.percentile(server, 50):.2f} ms, p99 {np.percentile(server, 99):.2f} ms"
    )
    print(
        f"batch table_scores: {n / timings[0]:,.0f} leads/s without reasons, "
        f"{n / timings[3]:,.0f} with 3 reasons; pyfunc predict (probability only): "
        f"{n / t_pyfunc:,.0f} leads/s; ratio batch (no reasons) / pyfunc time: "
        f"{timings[0] / t_pyfunc:.2f}x"
    )


def _plain(value: Any) -> Any:
    """A cell as JSON sends it: None for missing, Python numbers."""
    import pandas as pd

    if pd.isna(value):
        return None
    return value.item() if hasattr(value, "item") else value


if __name__ == "__main__":
    main()
