"""The generator's latent truth as a score: the ceiling of what is knowable.

On a synthetic CRM, `truth/episodes` records each buying episode's stages and the
probabilities the simulation drew them with. For a snapshot (contact, as_of), the latent
propensity is the chance, given the true state of the account at as_of, that an episode
in progress ends in a won deal: p(decision | stage) x p(win). It ignores whether the win
falls inside the horizon, so it is a near-ceiling, not an exact one. No model sees it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.synthetic import TRUTH_DIR


def load_episodes(data: str | Path) -> pd.DataFrame | None:
    """The truth episodes beside a generated CRM, or None for a real export."""
    folder = Path(data) / TRUTH_DIR
    for name in ("episodes.parquet", "episodes.csv"):
        path = folder / name
        if path.is_file():
            frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
            for column in ("started_at", "consideration_at", "decision_at", "ended_at"):
                frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
            return frame
    return None


def latent_propensity(
    episodes: pd.DataFrame, account_ids: pd.Series, as_of: pd.Series
) -> np.ndarray:
    """p(an episode of the account in progress at as_of ends in a win), per snapshot."""
    ep = episodes[episodes["kind"] == "buying"]
    out = np.zeros(len(account_ids))
    frame = pd.DataFrame(
        {
            "account_id": account_ids.to_numpy(),
            "as_of": as_of.to_numpy(),
            "row": np.arange(len(account_ids)),
        }
    )
    joined = frame.merge(ep, on="account_id", how="inner")
    live = (joined["started_at"] <= joined["as_of"]) & (joined["ended_at"] > joined["as_of"])
    joined = joined[live]
    in_decision = joined["decision_at"].notna() & (joined["decision_at"] <= joined["as_of"])
    in_consideration = (
        ~in_decision
        & joined["consideration_at"].notna()
        & (joined["consideration_at"] <= joined["as_of"])
    )
    reach = np.where(
        in_decision,
        1.0,
        np.where(
            in_consideration, joined["p_decision"], joined["p_consideration"] * joined["p_decision"]
        ),
    )
    joined = joined.assign(p=reach * joined["win_probability"])
    best = joined.groupby("row")["p"].max()
    out[best.index.to_numpy()] = best.to_numpy()
    return out
