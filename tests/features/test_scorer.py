"""The scorer's explanations: TreeSHAP of a few rows split by trees across threads gives
LightGBM's own contributions, whatever the row count, the number of slices or the
number of threads asking at once."""

from __future__ import annotations

import os
import signal
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
import pytest

from features.model import scorer as scorer_module
from features.model.scorer import SLICED_ROWS, LeadScorer


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    """A real booster with missing values, a categorical feature and early stopping (so
    `predict` uses fewer trees than were grown)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3_000, 6))
    x[:, 5] = rng.integers(0, 7, size=len(x))
    x[rng.random(x.shape) < 0.1] = np.nan
    logit = np.nan_to_num(x[:, 0]) - 0.7 * np.nan_to_num(x[:, 1]) + (x[:, 5] == 3)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(int)
    params = {"objective": "binary", "num_leaves": 15, "verbosity": -1, "seed": 1}
    train = lgb.Dataset(x[:2_000], y[:2_000], categorical_feature=[5])
    valid = lgb.Dataset(x[2_000:], y[2_000:], reference=train)
    booster = lgb.train(
        params,
        train,
        400,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(20, verbose=False)],
        keep_training_booster=True,  # keeps the trees after the best iteration
    )
    assert 0 < booster.best_iteration < booster.current_iteration()
    return booster


def _rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 5] = rng.integers(-1, 9, size=n)  # also categories the booster never saw
    x[rng.random(x.shape) < 0.2] = np.nan
    x[0, 0], x[-1, 1] = np.inf, -np.inf
    return x


@pytest.mark.parametrize("slices", [2, 3, 7])
def test_few_rows_are_explained_by_slices_of_trees_as_lightgbm_explains_them(
    booster: lgb.Booster, slices: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scorer_module, "_cores", lambda: slices)
    monkeypatch.setattr(scorer_module, "_SLICES", weakref.WeakKeyDictionary())
    scorer = LeadScorer(booster=booster, vocabularies={})
    for n in (1, 2, 19, SLICED_ROWS - 1):
        x = _rows(n, seed=n)
        got = scorer.contributions(x)
        expected = booster.predict(x, pred_contrib=True, num_threads=1)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        # every tree that `predict` uses is explained once: they add up to its raw score
        raw = booster.predict(x, raw_score=True)
        np.testing.assert_allclose(got.sum(axis=1), raw, rtol=0, atol=1e-12)
    parts = scorer_module._tree_slices(booster).slices
    assert len(parts) == slices
    assert sum(part.current_iteration() for part in parts) == booster.best_iteration


def test_threads_explaining_at_once_each_get_their_own_rows(
    booster: lgb.Booster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen requests at once, each its own rows: each gets the single-threaded
    answer (a booster keeps the iteration range of the prediction it runs, so slices
    sharing one booster would mix their ranges)."""
    monkeypatch.setattr(scorer_module, "_cores", lambda: 2)
    scorer = LeadScorer(booster=booster, vocabularies={})
    inputs = [_rows(1 + k % 5, seed=100 + k) for k in range(16)]
    expected = [booster.predict(x, pred_contrib=True, num_threads=1) for x in inputs]

    def explain(k: int) -> float:
        worst = 0.0
        for _ in range(30):
            worst = max(worst, float(np.abs(scorer.contributions(inputs[k]) - expected[k]).max()))
        return worst

    with ThreadPoolExecutor(16) as pool:
        assert max(pool.map(explain, range(16))) < 1e-12


def test_a_new_booster_gets_new_slices(
    booster: lgb.Booster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slices belong to the booster they were cut from: a scorer given another booster
    (a refit) explains with the new trees."""
    monkeypatch.setattr(scorer_module, "_cores", lambda: 2)
    scorer = LeadScorer(booster=booster, vocabularies={})
    x = _rows(3, seed=7)
    before = scorer.contributions(x)
    fewer = lgb.Booster(model_str=booster.model_to_string(num_iteration=5))
    scorer.booster = fewer
    after = scorer.contributions(x)
    np.testing.assert_allclose(after, fewer.predict(x, pred_contrib=True), rtol=0, atol=1e-12)
    assert not np.allclose(before, after)


def test_a_forked_child_explains_with_threads_of_its_own(
    booster: lgb.Booster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process forked after an explanation (a pre-forking server) inherits the pool but
    none of its threads; its explanations must not wait for threads that do not exist."""
    monkeypatch.setattr(scorer_module, "_cores", lambda: 2)
    scorer = LeadScorer(booster=booster, vocabularies={})
    x = _rows(2, seed=11)
    expected = scorer.contributions(x)  # the pool and its threads exist now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            got = scorer.contributions(x)
            os.write(write, b"ok" if np.abs(got - expected).max() < 1e-12 else b"differs")
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            pytest.fail("the forked child's explanation never finished")
        time.sleep(0.05)
    assert os.read(read, 16) == b"ok"
