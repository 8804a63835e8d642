"""Figures of a comparison's rows that need more than the transition counts.

`compare_records` adds them to its task, category and overall rows:

- from the per-choice scores of both sides (distances): kl_mean, js_mean,
  margin_change_mean, flip_share_by_kl_decile;
- from the "before" scores and the observed 1→0 items (risk): risk_auroc,
  risk_ap and their bootstrap intervals, the same for the entropy score;
- paired statistics (paired): acc_change with a paired bootstrap interval, and
  mde, the smallest accuracy change detectable at 80 % power for the row's N
  and discordance (means over repeats, with repeats).

Without per-choice log-likelihoods (records read without those columns, generative tasks) the
score-based figures are null. Each row's figures come from its own items,
never from other rows, and each bootstrap draws from a generator seeded by
(seed, row label, figure), so they do not move the existing intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .distances import DISTANCE_COLUMNS, ChoiceScores, distance_summary, entropy, has_scores, item_distances
from .paired import accuracy_change_interval, minimum_detectable_effect
from .pairing import PairedItems
from .risk import RISK_COLUMNS, risk_summary
from .stats import group_names, group_rng

PAIRED_COLUMNS = ["acc_change", "acc_change_ci_low", "acc_change_ci_high", "mde"]
#: Every column item_figures adds, in order.
ITEM_FIGURE_COLUMNS = PAIRED_COLUMNS + DISTANCE_COLUMNS + RISK_COLUMNS
_COUNT_COLUMNS = ["risk_n", "risk_n_forgotten"]


def per_row_scores(paired: PairedItems, before: pd.DataFrame, after: pd.DataFrame,
                   metric: str = "acc") -> dict[str, np.ndarray] | None:
    """Per paired row: kl, js, margin_before, margin_after, margin_change, entropy_before;
    None when either side lacks the per-choice scores."""
    if not (has_scores(before, metric) and has_scores(after, metric)):
        return None
    rows_b, rows_a = paired.source_rows
    scores_b = ChoiceScores.of(before, metric, rows_b)
    scores_a = ChoiceScores.of(after, metric, rows_a)
    out = item_distances(scores_b, scores_a)
    out["entropy_before"] = entropy(scores_b)
    return out


def row_groups(frame: pd.DataFrame, by: list[str], labels: pd.DataFrame) -> np.ndarray:
    """Per row of `frame`: the position of its group in `labels` (labels of `by`, as strings), −1 if absent."""
    if not by:
        return np.zeros(len(frame), dtype=np.int64)
    row_key, label_key, span = np.zeros(len(frame), np.int64), np.zeros(len(labels), np.int64), 1
    unknown = np.zeros(len(labels), dtype=bool)  # a label no row has
    for column in by:
        values = frame[column]
        cat = values.array if isinstance(values.dtype, pd.CategoricalDtype) else pd.Categorical(values)
        names = [str(c) for c in cat.categories] + [""]  # a missing value reads as ""
        first = {}
        canon = np.array([first.setdefault(name, i) for i, name in enumerate(names)], dtype=np.int64)
        codes = canon[np.where(cat.codes >= 0, cat.codes, len(names) - 1)]  # equal labels, one code
        label_codes = np.array([first.get(str(v), -1) for v in labels[column]], dtype=np.int64)
        row_key = row_key * len(names) + codes
        label_key = label_key * len(names) + label_codes
        unknown |= label_codes < 0
        span *= len(names)
    label_key[unknown] = -1
    if span <= 1 << 24:  # a lookup table: one gather per row, no hashing
        lookup = np.full(span, -1, dtype=np.int64)
        known = label_key >= 0
        lookup[label_key[known]] = np.flatnonzero(known)
        return lookup[row_key]
    return pd.Index(label_key).get_indexer(row_key).astype(np.int64)


def _change_types(frame: pd.DataFrame, before: np.ndarray, after: np.ndarray, group: np.ndarray, n_groups: int):
    """Per group: item counts of each distinct per-item accuracy change, and those changes.

    One row per item: the changes are −1, 0, +1, counted in one bincount. With
    repeats, an item's change is its mean over its repeats (after − before).
    """
    change = after.astype(np.int64) - before.astype(np.int64)
    inside = group >= 0
    item = frame["item"].to_numpy(dtype=np.int64)
    rows = np.bincount(item[inside]) if inside.any() else np.zeros(0, np.int64)
    if not len(rows) or rows.max() <= 1:
        counts = np.bincount(group[inside] * 3 + change[inside] + 1, minlength=n_groups * 3).reshape(n_groups, 3)
        steps = np.array([-1.0, 0.0, 1.0])
        return [(counts[g], steps) for g in range(n_groups)]
    present = np.flatnonzero(rows)
    total = np.rint(np.bincount(item[inside], weights=change[inside], minlength=len(rows))[present])
    first = np.empty(len(rows), np.int64)
    at = np.flatnonzero(inside)
    first[item[at][::-1]] = at[::-1]
    # items alike when in the same group with the same (net change, repeats): an exact key for the mean
    keys, counts = np.unique(np.stack([group[first[present]], total.astype(np.int64), rows[present]]), axis=1,
                             return_counts=True)
    bounds = np.searchsorted(keys[0], np.arange(n_groups + 1))
    return [(counts[bounds[g]:bounds[g + 1]], keys[1, bounds[g]:bounds[g + 1]] / keys[2, bounds[g]:bounds[g + 1]])
            for g in range(n_groups)]


def item_figures(table: pd.DataFrame, by: list[str], paired: PairedItems, scores: dict | None, *,
                 n_bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """`table` (a transition summary by `by`) with ITEM_FIGURE_COLUMNS added."""
    table = table.reset_index(drop=True)
    n_groups = len(table)
    frame = paired.frame
    labels = table[by] if by else pd.DataFrame(index=range(n_groups))
    group = row_groups(frame, by, labels)
    names = group_names(labels)
    before, after = frame["before"].to_numpy(dtype=bool), frame["after"].to_numpy(dtype=bool)
    out: dict[str, object] = {}

    n = table["n"].to_numpy(dtype=np.float64) if n_groups else np.zeros(0)
    acc_before = table["acc_before"].to_numpy(dtype=np.float64) if n_groups else np.zeros(0)
    acc_after = table["acc_after"].to_numpy(dtype=np.float64) if n_groups else np.zeros(0)
    out["acc_change"] = acc_after - acc_before
    with np.errstate(invalid="ignore", divide="ignore"):
        discordant = (table["n_01"].to_numpy(np.float64) + table["n_10"].to_numpy(np.float64)) / n
    out["mde"] = minimum_detectable_effect(n, discordant)
    interval = np.full((n_groups, 2), np.nan)
    for g, (counts, changes) in enumerate(_change_types(frame, before, after, group, n_groups)):
        if counts.sum():
            interval[g] = accuracy_change_interval(counts, changes, n_bootstrap=max(int(n_bootstrap or 0), 0),
                                                   rng=group_rng(seed, names[g] + "\x1faccuracy change"))
    out["acc_change_ci_low"], out["acc_change_ci_high"] = interval[:, 0], interval[:, 1]

    if scores is None:
        for column in DISTANCE_COLUMNS + RISK_COLUMNS:
            out[column] = [None] * n_groups if column == "flip_share_by_kl_decile" else np.full(n_groups, np.nan)
    else:
        out.update(distance_summary(scores, before != after, group, n_groups))
        out.update(risk_summary(scores["margin_before"], scores["entropy_before"], before, after, group, names,
                                n_bootstrap=n_bootstrap, seed=seed))
        for column in _COUNT_COLUMNS:
            out[column] = np.asarray(out[column]).astype(np.int64)
    return pd.concat([table, pd.DataFrame({c: out[c] for c in ITEM_FIGURE_COLUMNS})], axis=1)
