"""Exact TreeSHAP of a LightGBM model in NumPy, from tables computed once per model.

LightGBM's own TreeSHAP (`predict(pred_contrib=True)`) walks every tree recursively for
each row, O(leaves x depth^2) work per tree: about 3 ms for one lead on a 270-tree model,
two fifths of a `/v1/score` answer. Most of that work recomputes, row after row, sums
that depend only on the tree. `TreeShap.of` computes them once per model and leaves a
row a dozen array operations over the model's splits and leaves. The numbers are
LightGBM's (path-dependent TreeSHAP over the training cover) to rounding: the tests hold
them to `pred_contrib` within 1e-9, on every kind of split and value.

Why a table is enough. Take a leaf with value v whose path splits on the distinct
features F (d of them). For f in F, z_f is the share of the training rows that go the
leaf's way at the path's splits on f (multiplied over those splits), and o_f is 1 when
the row goes the leaf's way at all of them, else 0. The leaf adds to each i in F

    v (o_i - z_i) sum over S in F-{i} of w(|S|) prod(o_j, j in S) prod(z_j, j in F-S-{i})

with w(s) = s! (d-s-1)! / d!. Because o is 0 or 1, a row enters only through A, the
features of F it agrees on. With

    T(B) = v prod(z_j, j in F-B) sum over S in B of w(|S|) prod(z_j, j in B-S)

a feature outside A gets -T(A) and a feature in A gets (1 - z_i) / z_i T(A-{i}). T of
every subset of every leaf's F is the table (the idea of Fast TreeSHAP v2, Yang 2021):
sum(2^d) numbers, 2.6 million (21 MB) for a 270-tree, 31-leaf model. A model whose
table would pass `MAX_TABLE` (leaves with very many distinct features on their path),
or that the tables do not describe (several trees per iteration, linear trees, a side
of a split no training row took), is not tabulated: `TreeShap.of` returns None and the
caller keeps LightGBM's TreeSHAP.

The tables gain on one row, where LightGBM's recursion is the cost. From two rows on,
LightGBM's TreeSHAP on all cores is as fast per row, and it is what batches use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np

#: the largest table tabulated (numbers; 8 bytes each): 64 MB
MAX_TABLE = 1 << 23
#: rows explained together: the work arrays are (rows, steps of every leaf's path)
_CHUNK_CELLS = 1 << 22
_ZERO = 1e-35  # LightGBM's kZeroThreshold: |x| <= this is zero for zero-as-missing splits


@dataclass(frozen=True)
class _Tree:
    """One tree of LightGBM's model text (nodes are >= 0, leaf k is ~k = -k-1)."""

    feature: np.ndarray
    threshold: np.ndarray
    decision: np.ndarray
    left: np.ndarray
    right: np.ndarray
    leaf_value: np.ndarray
    leaf_count: np.ndarray
    internal_count: np.ndarray
    cat_boundaries: np.ndarray
    cat_threshold: np.ndarray

    @classmethod
    def parse(cls, fields: dict[str, str]) -> _Tree:
        def ints(key: str) -> np.ndarray:
            text = fields.get(key, "")
            return np.array(text.split(), dtype=np.int64) if text else np.zeros(0, np.int64)

        def floats(key: str) -> np.ndarray:
            text = fields.get(key, "")
            return np.array(text.split(), dtype=np.float64) if text else np.zeros(0)

        return cls(
            feature=ints("split_feature"),
            threshold=floats("threshold"),
            decision=ints("decision_type"),
            left=ints("left_child"),
            right=ints("right_child"),
            leaf_value=floats("leaf_value"),
            leaf_count=floats("leaf_count"),
            internal_count=floats("internal_count"),
            cat_boundaries=ints("cat_boundaries"),
            cat_threshold=ints("cat_threshold"),
        )

    def expected_value(self) -> float:
        """LightGBM's `Tree::ExpectedValue`: the leaves' values weighted by their cover."""
        if len(self.leaf_value) == 1:
            return float(self.leaf_value[0])
        return float(np.sum(self.leaf_count / self.internal_count[0] * self.leaf_value))

    def paths(self) -> list[list[tuple[int, bool]]]:
        """Each leaf's path from the root: (node, whether the leaf is on its left)."""
        out: list[list[tuple[int, bool]]] = [[] for _ in self.leaf_value]
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(0, [])]
        while stack:
            node, path = stack.pop()
            for child, is_left in ((self.left[node], True), (self.right[node], False)):
                steps = [*path, (node, is_left)]
                if child < 0:
                    out[~child] = steps
                else:
                    stack.append((int(child), steps))
        return out


def _trees(booster: lgb.Booster) -> tuple[int, list[_Tree]] | None:
    """The number of features and the trees `booster.predict` uses, from the model text;
    None for what the tables do not cover (several trees per iteration, linear trees)."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in booster.model_to_string().splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line.startswith("end of trees"):
            break
        elif "=" in line:
            key, _, value = line.partition("=")
            (header if current is None else current)[key] = value
    if header.get("num_tree_per_iteration", "1") != "1":
        return None
    if any(t.get("is_linear", "0") != "0" for t in trees):
        return None
    return int(header["max_feature_idx"]) + 1, [_Tree.parse(t) for t in trees]


@dataclass(frozen=True)
class TreeShap:
    """The tables of one model: its splits, its leaves' paths and T per leaf and subset.

    Splits are numbered across the model (`split_*`); a leaf's path is its steps
    (`step_*`: the split and the side the leaf is on), its distinct features its slots
    (`slot_*`: the feature, the bit of the feature in the leaf's subsets, (1 - z) / z).
    """

    n_features: int
    bias: float
    split_feature: np.ndarray
    split_threshold: np.ndarray
    split_nan_left: np.ndarray  # bool: where a numerical split sends NaN
    zero_splits: np.ndarray  # numerical splits where zero means missing
    zero_default_left: np.ndarray  # bool: where those send a missing value
    cat_splits: np.ndarray  # categorical splits
    cat_offset: np.ndarray  # where each one's bitset starts in `cat_words`
    cat_count: np.ndarray  # and its number of words
    cat_words: np.ndarray  # the bitsets of the categories going left (32 per word)
    step_split: np.ndarray
    step_left: np.ndarray  # bool
    step_bit: np.ndarray
    leaf_start: np.ndarray  # each leaf's first step
    leaf_all: np.ndarray  # the bits of all the leaf's distinct features
    slot_leaf: np.ndarray  # slots are ordered by feature
    slot_bit: np.ndarray
    slot_others: np.ndarray  # every bit but the slot's
    slot_table: np.ndarray  # its leaf's offset into `table`
    slot_ratio: np.ndarray  # (1 - z) / z
    features: np.ndarray  # the features some split uses, in order
    feature_start: np.ndarray  # each one's first slot
    table: np.ndarray

    @classmethod
    def of(cls, booster: lgb.Booster) -> TreeShap | None:
        """The tables of a booster, or None when it is not tabulated (see the module)."""
        parsed = _trees(booster)
        if parsed is None:
            return None
        n_features, trees = parsed
        splits: list[_Tree] = []
        leaves: list[tuple[float, list[tuple[int, bool]], _Tree, int]] = []
        offset = 0
        bias = 0.0
        for tree in trees:
            bias += tree.expected_value()
            if len(tree.leaf_value) > 1:
                for k, path in enumerate(tree.paths()):
                    leaves.append((float(tree.leaf_value[k]), path, tree, offset))
                splits.append(tree)
                offset += len(tree.feature)
        distinct = [len({int(t.feature[node]) for node, _ in path}) for _, path, t, _ in leaves]
        if sum(1 << d for d in distinct) > MAX_TABLE:
            return None
        return cls._build(n_features, bias, splits, leaves, distinct)

    @classmethod
    def _build(
        cls,
        n_features: int,
        bias: float,
        splits: list[_Tree],
        leaves: list[tuple[float, list[tuple[int, bool]], _Tree, int]],
        distinct: list[int],
    ) -> TreeShap | None:
        cat_words: list[np.ndarray] = []
        words: list[tuple[int, int]] = []  # (offset, count) of each categorical split
        n_words = 0
        for tree in splits:
            for node in np.flatnonzero(tree.decision & 1).tolist():
                k = int(tree.threshold[node])
                lo, hi = int(tree.cat_boundaries[k]), int(tree.cat_boundaries[k + 1])
                cat_words.append(tree.cat_threshold[lo:hi])
                words.append((n_words, hi - lo))
                n_words += hi - lo
        decision = _joined([t.decision for t in splits], np.int64)
        threshold = _joined([t.threshold for t in splits], np.float64)
        missing, default_left = (decision >> 2) & 3, (decision & 2) > 0
        categorical = (decision & 1) > 0
        zero = ~categorical & (missing == 1)
        # LightGBM's NumericalDecision: NaN is missing where NaN is the missing value
        # and zero where it is not; zero is missing where zero is; otherwise the value
        # 0.0 is compared with the threshold
        nan_left = np.where(missing == 0, threshold >= 0, default_left)
        step_split: list[int] = []
        step_left: list[bool] = []
        step_bit: list[int] = []
        leaf_start: list[int] = []
        slot_leaf: list[int] = []
        slot_feature: list[int] = []
        slot_bit: list[int] = []
        slot_ratio: list[float] = []
        slot_table: list[int] = []
        leaf_all: list[int] = []
        values: list[float] = []
        zeros: list[list[float]] = []
        table_size = 0
        for k, ((value, path, tree, offset), d) in enumerate(zip(leaves, distinct, strict=True)):
            slot_of: dict[int, int] = {}
            z = [1.0] * d
            leaf_start.append(len(step_split))
            for node, is_left in path:
                feature = int(tree.feature[node])
                slot = slot_of.setdefault(feature, len(slot_of))
                child = tree.left[node] if is_left else tree.right[node]
                cover = tree.leaf_count[~child] if child < 0 else tree.internal_count[child]
                z[slot] *= float(cover / tree.internal_count[node])
                step_split.append(offset + node)
                step_left.append(is_left)
                step_bit.append(1 << slot)
            if min(z) <= 0:  # a side no training row took: (1 - z) / z is undefined
                return None
            for feature, slot in slot_of.items():
                slot_leaf.append(k)
                slot_feature.append(feature)
                slot_bit.append(1 << slot)
                slot_ratio.append((1 - z[slot]) / z[slot])
                slot_table.append(table_size)
            leaf_all.append((1 << d) - 1)
            table_size += 1 << d
            values.append(value)
            zeros.append(z)
        order = np.argsort(slot_feature, kind="stable")
        by_feature = np.array(slot_feature, dtype=np.int64)[order]
        features, feature_start = np.unique(by_feature, return_index=True)
        bit = np.array(slot_bit, dtype=np.int32)[order]
        return cls(
            n_features=n_features,
            bias=bias,
            split_feature=_joined([t.feature for t in splits], np.int64),
            split_threshold=threshold,
            split_nan_left=nan_left,
            zero_splits=np.flatnonzero(zero),
            zero_default_left=default_left[zero],
            cat_splits=np.flatnonzero(categorical),
            cat_offset=np.array([w[0] for w in words], dtype=np.int64),
            cat_count=np.array([w[1] for w in words], dtype=np.int64),
            cat_words=_joined(cat_words, np.uint32),
            step_split=np.array(step_split, dtype=np.int64),
            step_left=np.array(step_left, dtype=bool),
            step_bit=np.array(step_bit, dtype=np.int32),
            leaf_start=np.array(leaf_start, dtype=np.int64),
            leaf_all=np.array(leaf_all, dtype=np.int32),
            slot_leaf=np.array(slot_leaf, dtype=np.int64)[order],
            slot_bit=bit,
            slot_others=~bit,
            slot_table=np.array(slot_table, dtype=np.int64)[order],
            slot_ratio=np.array(slot_ratio, dtype=np.float64)[order],
            features=features,
            feature_start=feature_start,
            table=_tabulate(values, zeros, distinct, table_size),
        )

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions of rows of model inputs, (rows, features + 1): the last
        column is the expected value, as in LightGBM's `pred_contrib`."""
        x = np.asarray(x, dtype=np.float64)
        out = np.zeros((len(x), self.n_features + 1))
        out[:, -1] = self.bias
        if len(self.leaf_start) == 0:
            return out
        chunk = max(1, _CHUNK_CELLS // len(self.step_split))
        for start in range(0, len(x), chunk):
            rows = x[start : start + chunk]
            out[start : start + len(rows), self.features] = self._explain(rows)
        return out

    def _explain(self, x: np.ndarray) -> np.ndarray:
        """(rows, features with a split). Arrays are (rows, model part) and gathers are
        `np.take` along the model part: numpy's inner loops then run along the long axis."""
        goes_left = self._decisions(np.take(x, self.split_feature, axis=1))
        disagree = np.take(goes_left, self.step_split, axis=1) != self.step_left
        bits = disagree * self.step_bit
        agreed = ~np.bitwise_or.reduceat(bits, self.leaf_start, axis=1) & self.leaf_all
        mine = np.take(agreed, self.slot_leaf, axis=1)
        # T(A - {i}) for a feature in A, T(A) for one outside: the same index either way
        t = np.take(self.table, (mine & self.slot_others) + self.slot_table)
        phi = t * np.where(mine & self.slot_bit, self.slot_ratio, -1.0)
        return np.add.reduceat(phi, self.feature_start, axis=1)

    def _decisions(self, value: np.ndarray) -> np.ndarray:
        """Whether each row goes left at each split (rows, splits): LightGBM's
        `Tree::Decision`."""
        with np.errstate(invalid="ignore"):
            left = value <= self.split_threshold
        left = np.where(np.isnan(value), self.split_nan_left, left)
        if len(self.zero_splits):
            v = np.take(value, self.zero_splits, axis=1)
            with np.errstate(invalid="ignore"):
                zero = np.isnan(v) | (np.abs(v) <= _ZERO)
                left[:, self.zero_splits] = np.where(
                    zero, self.zero_default_left, v <= self.split_threshold[self.zero_splits]
                )
        if len(self.cat_splits):
            v = np.take(value, self.cat_splits, axis=1)
            left[:, self.cat_splits] = self._in_categories(v)
        return left

    def _in_categories(self, value: np.ndarray) -> np.ndarray:
        """Categorical splits: the category (the value cast to int, as C++ does) is in the
        split's set; NaN, negative and out-of-range values go right."""
        with np.errstate(invalid="ignore"):
            valid = (value > -1) & (value < 2**31)  # False for NaN
        code = np.where(valid, value, 0).astype(np.int64)  # truncates toward zero, like C++
        word = code >> 5
        valid &= word < self.cat_count
        bits = self.cat_words[np.where(valid, self.cat_offset + word, 0)]
        return valid & (((bits >> (code & 31).astype(np.uint32)) & 1) > 0)


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _tabulate(
    values: list[float], zeros: list[list[float]], distinct: list[int], size: int
) -> np.ndarray:
    """T(B) of every leaf and subset B of its distinct features (bit j = slot j)."""
    table = np.empty(size)
    starts = np.cumsum([0, *(1 << d for d in distinct)])
    by_size: dict[int, list[int]] = {}
    for k, d in enumerate(distinct):
        by_size.setdefault(d, []).append(k)
    for d, members in by_size.items():
        weight = np.array(
            [math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d) for s in range(d)]
            + [0.0]  # the whole of F is never a B
        )
        group = max(1, (1 << 22) // ((1 << d) * (d + 1)))
        for at in range(0, len(members), group):
            ks = members[at : at + group]
            z = np.array([zeros[k] for k in ks]).reshape(len(ks), d)
            v = np.array([values[k] for k in ks])
            # poly[B][s] = sum over S in B with |S| = s of prod(z_j, j in B-S), and
            # prod[B] = prod(z_j, j in B); both built by adding one feature at a time
            poly = np.zeros((len(ks), 1 << d, d + 1))
            poly[:, 0, 0] = 1.0
            prod = np.ones((len(ks), 1 << d))
            for j in range(d):
                lo = 1 << j
                poly[:, lo : 2 * lo] = poly[:, :lo] * z[:, j, None, None]
                poly[:, lo : 2 * lo, 1:] += poly[:, :lo, :-1]
                prod[:, lo : 2 * lo] = prod[:, :lo] * z[:, j, None]
            masks = np.arange(1 << d)
            t = v[:, None] * prod[:, ((1 << d) - 1) ^ masks] * (poly @ weight)
            for i, k in enumerate(ks):
                table[starts[k] : starts[k + 1]] = t[i]
    return table
