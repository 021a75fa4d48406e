"""TreeSHAP from tables: LightGBM's own numbers, for every kind of split and value."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.model import treeshap
from features.model.scorer import LeadScorer
from features.model.treeshap import TreeShap

#: what a row may hold: the values where LightGBM's decisions change behaviour (missing,
#: zero as missing, negative and fractional category codes, codes past the bitsets,
#: values C++ cannot cast to int) and ordinary ones
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-36, -1e-36, -0.5, -1.0, 0.7, 40.0, 3e9, -3e9]


def _train(params: dict[str, object], rounds: int = 40, seed: int = 0) -> lgb.Booster:
    """A booster on 8 features: numeric with NaN, numeric without missing values, zeros
    that mean missing, and two categorical features (one with 45 categories, so its
    splits' bitsets span two 32-bit words)."""
    rng = np.random.default_rng(seed)
    n = 4_000
    x = np.column_stack(
        [
            rng.normal(size=n),
            rng.normal(size=n),
            rng.integers(0, 4, n).astype(float),  # many exact zeros
            rng.exponential(size=n),
            rng.normal(size=n),
            rng.integers(0, 45, n).astype(float),
            rng.integers(0, 6, n).astype(float),
            rng.normal(size=n),
        ]
    )
    x[rng.random(n) < 0.15, 0] = np.nan
    x[rng.random(n) < 0.1, 5] = np.nan
    logit = (
        np.nan_to_num(x[:, 0])
        - 0.8 * x[:, 1]
        + 0.5 * (x[:, 2] == 0)
        + np.isin(x[:, 5], [3, 17, 33, 40])
        - 0.6 * (x[:, 6] == 2)
        + np.sin(3 * x[:, 7])
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    base = {"objective": "binary", "verbosity": -1, "seed": 1, "min_data_per_group": 5}
    data = lgb.Dataset(x, y, categorical_feature=[5, 6])
    return lgb.train({**base, **params}, data, rounds)


@pytest.fixture(scope="module")
def boosters() -> dict[str, lgb.Booster]:
    return {
        "deep": _train({"num_leaves": 63, "min_data_in_leaf": 5, "max_cat_threshold": 40}),
        "zero_as_missing": _train({"num_leaves": 15, "zero_as_missing": True}, seed=1),
        "shallow": _train({"num_leaves": 4, "learning_rate": 0.3}, rounds=80, seed=2),
    }


def _rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)) * 2
    x[:, 5] = rng.integers(-2, 70, n)
    x[:, 6] = rng.integers(0, 8, n)
    special = rng.random(x.shape) < 0.25
    x[special] = rng.choice(SPECIAL, size=int(special.sum()))
    return x


@pytest.mark.parametrize("name", ["deep", "zero_as_missing", "shallow"])
def test_the_tables_give_lightgbms_contributions(
    boosters: dict[str, lgb.Booster], name: str
) -> None:
    booster = boosters[name]
    tables = TreeShap.of(booster)
    assert tables is not None
    x = _rows(400, seed=7)
    expected = booster.predict(x, pred_contrib=True, num_threads=1)
    got = tables.contributions(x)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    # the contributions add up to the model's raw score, as LightGBM's do
    np.testing.assert_allclose(got.sum(axis=1), booster.predict(x, raw_score=True), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    row=st.lists(
        st.one_of(st.sampled_from(SPECIAL), st.floats(-50, 50), st.integers(-3, 80).map(float)),
        min_size=8,
        max_size=8,
    )
)
def test_any_one_row_is_explained_as_lightgbm_explains_it(
    boosters: dict[str, lgb.Booster], row: list[float]
) -> None:
    booster = boosters["deep"]
    tables = _tables(booster)
    x = np.array([row])
    np.testing.assert_allclose(
        tables.contributions(x),
        booster.predict(x, pred_contrib=True, num_threads=1),
        rtol=1e-9,
        atol=1e-12,
    )


_CACHE: dict[int, TreeShap] = {}


def _tables(booster: lgb.Booster) -> TreeShap:
    if id(booster) not in _CACHE:
        tables = TreeShap.of(booster)
        assert tables is not None
        _CACHE[id(booster)] = tables
    return _CACHE[id(booster)]


def test_rows_are_explained_the_same_alone_and_in_chunks(
    boosters: dict[str, lgb.Booster], monkeypatch: pytest.MonkeyPatch
) -> None:
    booster = boosters["zero_as_missing"]
    tables = _tables(booster)
    x = _rows(50, seed=3)
    together = tables.contributions(x)
    monkeypatch.setattr(treeshap, "_CHUNK_CELLS", 1)  # one row per chunk
    np.testing.assert_array_equal(tables.contributions(x), together)
    assert tables.contributions(x[:0]).shape == (0, 9)


def test_trees_without_a_split_count_in_the_expected_value_only() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3))
    y = (rng.random(500) < 0.3).astype(int)  # nothing to learn: every tree is one leaf
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "min_gain_to_split": 1e9}, lgb.Dataset(x, y), 5
    )
    tables = TreeShap.of(booster)
    assert tables is not None
    np.testing.assert_allclose(
        tables.contributions(x[:3]), booster.predict(x[:3], pred_contrib=True), atol=1e-12
    )


def test_a_model_the_tables_do_not_cover_keeps_lightgbms_treeshap(
    boosters: dict[str, lgb.Booster],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    booster = boosters["deep"]
    monkeypatch.setattr(treeshap, "MAX_TABLE", 1000)  # too big to tabulate
    assert TreeShap.of(booster) is None
    with caplog.at_level("INFO", logger="features.model.scorer"):
        scorer = LeadScorer(booster=booster, vocabularies={}).tabulate()
    assert scorer.shap_tables is None
    assert "reasons by LightGBM's TreeSHAP" in caplog.text  # the operator sees which
    x = _rows(1, seed=5)
    np.testing.assert_array_equal(
        scorer.contributions(x), booster.predict(x, pred_contrib=True, num_threads=1)
    )
    rng = np.random.default_rng(1)
    linear = lgb.train(
        {"objective": "binary", "verbosity": -1, "linear_tree": True},
        lgb.Dataset(rng.normal(size=(400, 3)), rng.integers(0, 2, 400)),
        3,
    )
    assert TreeShap.of(linear) is None  # a leaf is a linear model there, not a value


def test_a_tabulated_scorer_explains_one_row_from_its_tables(
    boosters: dict[str, lgb.Booster],
) -> None:
    booster = boosters["deep"]
    scorer = LeadScorer(booster=booster, vocabularies={}).tabulate()
    assert scorer.shap_tables is not None
    x = _rows(2, seed=9)
    one = scorer.contributions(x[:1])
    np.testing.assert_array_equal(one, scorer.shap_tables.contributions(x[:1]))
    np.testing.assert_allclose(one, scorer.contributions(x)[:1], rtol=1e-9, atol=1e-12)
