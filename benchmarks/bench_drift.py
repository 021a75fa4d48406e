"""Experiment: what the field does against drift, measured on later leads the model never saw.

Each dataset is cut in time: the trainer gets the older part as if it were the whole
table, and the registered model is scored on the newer part (real later leads). Variants,
each a full `train_table` run:

- `no refit (before)`: the model fitted on the oldest rows is what is scored (its
  selection twin), as training registered it before;
- `refit (default)`: refitted on every training row;
- `recency 0.5` / `recency 0.25`: rows weighted down with age (half-life as a share of
  the training period);
- `drop calendar`: the columns that only encode the calendar left out;
- `blend`: the average of the refitted booster's and the refitted logistic regression's
  probabilities.

Datasets: the generated drift table of tests/training/test_drift.py (4,000 leads; later:
1,000 leads from the following quarter), and X Education without its sales-entered
columns (`../shared`; the newest 25 % by Lead Number are the later leads). Printed: ROC
AUC on the later leads per variant, and the ratio to the default in the same run.

    python benchmarks/bench_drift.py
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
XEDU = ROOT.parent / "shared" / "data" / "real" / "xeducation_leads" / "Leads.csv"


def main() -> None:
    from features.model.batch import table_scores
    from features.model.pyfunc import load_scorer
    from features.table.cells import model_inputs
    from tests.training.test_drift import SALES_ENTERED, drift_table
    from training.fitting import Part, fit_linear
    from training.table_train import TableTrainConfig, load_labelled, train_table

    logging.disable(logging.WARNING)
    datasets = {}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        os.chdir(home)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home}/mlflow.db"
        older = home / "drift_train.csv"
        drift_table(4000, seed=0).to_csv(older, index=False)
        datasets["drift table"] = (older, drift_table(1000, seed=1, start=1.0, end=1.25), ())
        if XEDU.is_file():
            leads = pd.read_csv(XEDU).sort_values("Lead Number", kind="stable")
            cut = round(len(leads) * 0.75)
            older = home / "xedu_older.csv"
            leads.iloc[:cut].to_csv(older, index=False)
            datasets["X Education (no sales columns)"] = (
                older,
                leads.iloc[cut:].reset_index(drop=True),
                tuple(SALES_ENTERED),
            )
        else:
            print(f"X Education SKIPPED: {XEDU} is absent")
        variants = {
            "no refit (before)": {},
            "refit (default)": {},
            "recency 0.5": {"recency_half_life": 0.5},
            "recency 0.25": {"recency_half_life": 0.25},
            "drop calendar": {"drop_calendar": True},
            "blend": {},
        }
        rows = []
        for dataset, (path, later, exclude) in datasets.items():
            y_later = later["Converted"].to_numpy()
            for k, (variant, options) in enumerate(variants.items()):
                cfg = TableTrainConfig(
                    target="Converted",
                    id_column="Lead Number",
                    exclude=exclude,
                    model_name=f"m{len(rows)}",
                    allow_weak=True,  # the experiment compares boosters: none refused
                    **options,  # type: ignore[arg-type]
                )
                result = train_table(cfg, path)
                scorer, _ = load_scorer(f"models:/{cfg.model_name}/1")
                judged = scorer.selection if variant == "no refit (before)" else scorer
                assert judged is not None
                p = table_scores(later, judged, reasons=0)["probability"].to_numpy()
                if variant == "blend":
                    frame = load_labelled(cfg, path)
                    x = scorer.matrix_from_frame(model_inputs(frame, scorer.table_spec))
                    linear = fit_linear(
                        scorer, Part(x, frame["__converted__"].to_numpy()), cfg.fit_config()
                    )
                    x_later = scorer.matrix_from_frame(model_inputs(later, scorer.table_spec))
                    p = 0.5 * (p + linear.predict(x_later))
                auc = float(roc_auc_score(y_later, p))
                rows.append(
                    {
                        "dataset": dataset,
                        "variant": variant,
                        "estimator": scorer.estimator,
                        "later_roc_auc": auc,
                        "holdout_roc_auc": float(result.comparison.loc["model", "roc_auc"]),
                        "order": k,
                    }
                )
    table = pd.DataFrame(rows)
    default = table[table["variant"] == "refit (default)"].set_index("dataset")["later_roc_auc"]
    table["ratio_to_default"] = table["later_roc_auc"] / table["dataset"].map(default)
    with pd.option_context("display.width", 200):
        print(
            table.drop(columns="order")
            .round({"later_roc_auc": 4, "holdout_roc_auc": 4, "ratio_to_default": 3})
            .to_string(index=False)
        )
    print(
        "(later_roc_auc: the registered model on later leads it never saw; holdout_roc_auc: "
        "the run's own selection figure on its newest 25 %)"
    )


if __name__ == "__main__":
    main()
