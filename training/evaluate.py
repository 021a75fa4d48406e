"""Evaluation: the model, the logistic regression and the points, on the same holdout.

Metrics: ROC AUC, PR AUC, log loss, Brier score, expected calibration error, lift and
capture at the top 5/10/20 %, precision and recall at the MQL threshold (for the
probability scores: at the share of leads the points matrix flags as MQL, so all three
pick the same number of leads). Plots: ROC, PR, reliability, cumulative gains and lift,
feature importance by gain and by mean |SHAP|. One comparison table in Markdown and HTML.

Figures are drawn on `matplotlib.figure.Figure` objects, not through pyplot: writing a
PNG needs no backend, and importing this module changes nothing in the caller's
matplotlib (a notebook keeps its inline charts).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

TOP_SHARES = (0.05, 0.10, 0.20)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - predicted probability| over equal-count bins, weighted by size.

    Equal-count bins, because with a 1-2 % base rate equal-width bins leave almost every
    prediction in the first bin and say nothing.
    """
    order = np.argsort(p, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(float(y[chunk].mean()) - float(p[chunk].mean()))
    return total / len(p)


def top_share_metrics(y: np.ndarray, score: np.ndarray, share: float) -> tuple[float, float]:
    """(lift, capture) of the top ``share`` of leads ranked by score."""
    k = max(1, round(share * len(y)))
    top = np.argsort(-score, kind="stable")[:k]
    rate = float(y[top].mean())
    base = float(y.mean())
    return (rate / base if base > 0 else float("nan"), float(y[top].sum() / max(1, y.sum())))


def metrics(
    y: np.ndarray, score: np.ndarray, probability: np.ndarray | None, selected: np.ndarray
) -> dict[str, float]:
    """Every metric of one scorer on one holdout.

    ``score`` ranks (probability or points); ``probability`` is calibrated (for the points:
    mapped to probabilities on the validation slice); ``selected`` is the MQL selection.
    """
    nan = float("nan")
    p = None if probability is None else np.clip(probability, 1e-7, 1 - 1e-7)
    out = {
        "roc_auc": float(roc_auc_score(y, score)),
        "pr_auc": float(average_precision_score(y, score)),
        # Points are not probabilities: without a slice to map them on, these do not exist.
        "log_loss": nan if p is None else float(log_loss(y, p, labels=[0, 1])),
        "brier": nan if p is None else float(brier_score_loss(y, p)),
        "ece": nan if p is None else expected_calibration_error(y, p),
        "mql_precision": float(y[selected].mean()) if selected.any() else float("nan"),
        "mql_recall": float(selected[y == 1].mean()) if y.any() else float("nan"),
    }
    for share in TOP_SHARES:
        lift, capture = top_share_metrics(y, score, share)
        pct = int(share * 100)
        out[f"lift_top{pct}"] = lift
        out[f"capture_top{pct}"] = capture
    return out


def select_top(score: np.ndarray, share: float) -> np.ndarray:
    """The top ``share`` of leads by score, as a mask (ties broken by order)."""
    k = round(share * len(score))
    mask = np.zeros(len(score), dtype=bool)
    mask[np.argsort(-score, kind="stable")[:k]] = True
    return mask


def comparison_table(
    results: Mapping[str, Mapping[str, float]], fits: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Rows: scorers; columns: metrics (in a fixed, readable order), then, with ``fits``,
    `fitted_on`: which fit each row's figures come from."""
    order = [
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
        "ece",
        "lift_top5",
        "capture_top5",
        "lift_top10",
        "capture_top10",
        "lift_top20",
        "capture_top20",
        "mql_precision",
        "mql_recall",
    ]
    frame = pd.DataFrame(results).T
    frame = frame[[c for c in order if c in frame.columns]]
    if fits is not None:
        frame["fitted_on"] = [fits.get(str(name), "") for name in frame.index]
    return frame


def table_markdown(table: pd.DataFrame) -> str:
    header = "| scorer | " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---|" * len(table.columns)
    rows = [f"| {name} | " + " | ".join(map(_cell, row)) + " |" for name, row in table.iterrows()]
    return "\n".join([header, rule, *rows]) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, str):
        return value
    number = float(value)  # type: ignore[arg-type]
    return "n/a" if np.isnan(number) else f"{number:.4f}"


def plot_all(
    out: Path,
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    probabilities: Mapping[str, np.ndarray],
    importance: pd.DataFrame,
) -> list[Path]:
    """ROC, PR, reliability, gains/lift and importance plots; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, s):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    files.append(_save(fig, out / "roc.png"))

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for name, s in scores.items():
        precision, recall, _ = precision_recall_curve(y, s)
        ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y, s):.3f})")
    ax.axhline(y.mean(), color="k", ls=":", lw=0.8)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend(loc="upper right")
    files.append(_save(fig, out / "pr.png"))

    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    top = max(float(np.quantile(p, 0.999)) for p in probabilities.values())
    for name, p in probabilities.items():
        order = np.argsort(p)
        bins = np.array_split(order, 15)
        ax.plot([p[b].mean() for b in bins], [y[b].mean() for b in bins], "o-", ms=3, label=name)
    ax.plot([0, top], [0, top], "k:", lw=0.8)
    ax.set(
        xlabel="predicted probability",
        ylabel="observed conversion rate",
        title="Reliability (equal-count bins)",
    )
    ax.legend(loc="upper left")
    files.append(_save(fig, out / "reliability.png"))

    fig = Figure(figsize=(10, 4.5))
    gain_ax, lift_ax = fig.subplots(1, 2)
    share = np.arange(1, len(y) + 1) / len(y)
    for name, s in scores.items():
        hits = np.cumsum(y[np.argsort(-s, kind="stable")]) / max(1, y.sum())
        gain_ax.plot(share, hits, label=name)
        lift_ax.plot(share[len(y) // 100 :], (hits / share)[len(y) // 100 :], label=name)
    gain_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    gain_ax.set(
        xlabel="share of leads contacted",
        ylabel="share of conversions captured",
        title="Cumulative gains",
    )
    lift_ax.axhline(1, color="k", ls=":", lw=0.8)
    lift_ax.set(xlabel="share of leads contacted", ylabel="lift", title="Lift")
    gain_ax.legend(loc="lower right")
    files.append(_save(fig, out / "gains_lift.png"))

    for column, title, name in (
        ("gain", "Importance by gain", "importance_gain.png"),
        ("mean_abs_shap", "Importance by mean |SHAP|", "importance_shap.png"),
    ):
        top20 = importance.sort_values(column, ascending=False).head(20)[::-1]
        fig = Figure(figsize=(7, 6))
        ax = fig.subplots()
        ax.barh(top20["label"], top20[column])
        ax.set(title=title)
        files.append(_save(fig, out / name))
    return files


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
