"""The scorer in a process forked after LightGBM ran on several threads."""

from __future__ import annotations

import os
import signal
import time

import lightgbm as lgb
import numpy as np
import pytest

from features.model.scorer import LeadScorer


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    """A real booster with missing values and a categorical feature."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3_000, 6))
    x[:, 5] = rng.integers(0, 7, size=len(x))
    x[rng.random(x.shape) < 0.1] = np.nan
    logit = np.nan_to_num(x[:, 0]) - 0.7 * np.nan_to_num(x[:, 1]) + (x[:, 5] == 3)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "num_leaves": 15, "verbosity": -1, "seed": 1}
    return lgb.train(params, lgb.Dataset(x, y, categorical_feature=[5]), 60)


def _rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 5] = rng.integers(-1, 9, size=n)  # also categories the booster never saw
    x[rng.random(x.shape) < 0.2] = np.nan
    x[0, 0], x[-1, 1] = np.inf, -np.inf
    return x


def test_a_process_forked_after_lightgbm_ran_on_threads_still_scores(
    booster: lgb.Booster,
) -> None:
    """GNU OpenMP does not survive a fork: a child forked after its parent ran LightGBM
    on several threads hung at its first multi-threaded call. Such a child (a
    pre-forking server's worker, after the parent warmed up on a batch) must predict and
    explain, and get the parent's numbers."""
    scorer = LeadScorer(booster=booster, vocabularies={})
    batch, few = _rows(6_000, seed=10), _rows(5, seed=11)
    probability = scorer.predict(batch)  # LightGBM's OpenMP threads exist now
    contributions = scorer.contributions(few)
    np.testing.assert_allclose(
        contributions, booster.predict(few, pred_contrib=True, num_threads=1), atol=1e-12
    )
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            same = np.array_equal(scorer.predict(batch), probability) and np.allclose(
                scorer.contributions(few), contributions, rtol=0, atol=1e-12
            )
            os.write(write, b"same" if same else b"differs")
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            pytest.fail("the forked child hung in LightGBM")
        time.sleep(0.05)
    assert os.read(read, 16) == b"same"
