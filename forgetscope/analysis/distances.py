"""How far each item's answer distribution moved between two checkpoints, beyond right/wrong.

For a multiple-choice item with choice scores s_1..s_k (the summed
log-likelihoods under `acc`; divided by the choice's characters under
`acc_norm`, by its tokens under `acc_per_token`), a checkpoint's choice
distribution is p = softmax(s). Per item, with p before and q after:

    KL(p ‖ q)    = Σ_i p_i (log p_i − log q_i)                       (nats)
    JS(p, q)     = ½ KL(p ‖ m) + ½ KL(q ‖ m),  m = (p + q) / 2       (nats, at most log 2)
    gold margin  = max_{i gold} s_i − max_{i not gold} s_i           (> 0: a gold choice wins)
    margin change = gold margin after − gold margin before

KL is computed from log-softmax values (scipy.special.log_softmax), so a
choice whose probability underflows to 0 after a large move still gives a
finite, correct KL; JS uses scipy.special.rel_entr (m ≥ p/2 never underflows).
Generative items, rows without log-likelihoods and items whose choices are
all gold have none of these (NaN; null in JSON).

Per group (task, category, overall): the means over its multiple-choice rows
(kl_mean, js_mean, margin_change_mean; with repeats, over every repeat's row)
and `flip_share_by_kl_decile`: for the thresholds at the 0th, 10th, ..., 90th
percentile of the group's KL, the share of items with KL at or above the
threshold whose correctness changed (0→1 or 1→0). The first entry is the
group's flip rate; if flips track KL (Dutta et al., NeurIPS 2024) the shares
rise along the list.

Everything is vectorised: rows are grouped by their number of choices k (a
handful of values), and each group is one (rows, k) array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import entr, log_softmax, rel_entr

from ..records.margins import flat_list_column, list_columns_for
from .pairing import PairingError

#: Columns the per-group summary adds (distance_summary).
DISTANCE_COLUMNS = ["kl_mean", "js_mean", "margin_change_mean", "flip_share_by_kl_decile"]
#: Percentiles of KL at which flip_share_by_kl_decile is read.
KL_DECILES = np.arange(0, 100, 10)


class ScoresError(PairingError):
    """Per-choice scores that cannot be read or paired (a gold index out of range, lists of unequal length)."""


def score_columns(metric: str = "acc") -> list[str]:
    """The records columns the choice scores under `metric` are read from."""
    return ["loglikelihoods", "gold", "n_choices"] + list_columns_for(metric)[1:]


def has_scores(records: pd.DataFrame, metric: str = "acc") -> bool:
    """Whether `records` hold what choice scores under `metric` need (reads of a column subset may not)."""
    return all(c in records.columns for c in score_columns(metric))


def _flat(column: pd.Series, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Values and (int64) offsets of a list column's rows `rows` (all when None)."""
    values, offsets = flat_list_column(column if rows is None else column.iloc[rows])
    return values, offsets.astype(np.int64)


@dataclass
class ChoiceScores:
    """Per-choice scores of n rows, flattened: row i's choices are values[offsets[i]:offsets[i + 1]]."""

    values: np.ndarray
    offsets: np.ndarray
    gold: np.ndarray
    """Per choice: is it a gold choice."""

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def of(cls, records: pd.DataFrame, metric: str = "acc", rows: np.ndarray | None = None) -> "ChoiceScores":
        """The scores of `records` (its rows `rows`, in that order) under `metric`.

        Rows with n_choices 0 (generative) count as having no choices.
        """
        missing = [c for c in score_columns(metric) if c not in records.columns]
        if missing:
            raise ScoresError(f"records lack column(s) {', '.join(missing)}: choice scores cannot be read")
        values, offsets = _flat(records["loglikelihoods"], rows)
        n_choices = records["n_choices"].to_numpy()
        n_choices = n_choices if rows is None else n_choices[rows]
        sizes = np.diff(offsets)
        generative = (n_choices == 0) & (sizes > 0)
        if generative.any():  # a generative row's scores (if any) are not choices
            keep = np.repeat(~generative, sizes)
            values, sizes = values[keep], np.where(generative, 0, sizes)
            offsets = np.concatenate([[0], np.cumsum(sizes)])
        extra = score_columns(metric)[3:]
        if extra:  # acc_norm / acc_per_token: divide by the choice's characters / tokens
            lengths, length_offsets = _flat(records[extra[0]], rows)
            if generative.any():
                length_sizes = np.diff(length_offsets)
                lengths = lengths[np.repeat(~generative, length_sizes)]
                length_offsets = np.concatenate([[0], np.cumsum(np.where(generative, 0, length_sizes))])
            if not np.array_equal(offsets, length_offsets):
                raise ScoresError(f"records: {extra[0]} and loglikelihoods differ in length on some rows")
            values = values / np.maximum(lengths, 1.0)
        gold = _gold_mask(records["gold"], rows, offsets, records["item_id"] if "item_id" in records else None)
        return cls(values, offsets, gold)


def _gold_mask(gold: pd.Series, rows: np.ndarray | None, offsets: np.ndarray, item_id: pd.Series | None) -> np.ndarray:
    """Per choice: is it gold (gold holds choice indices joined by "|")."""
    sizes = np.diff(offsets)
    mask = np.zeros(int(offsets[-1]), dtype=bool)
    scored = np.flatnonzero(sizes > 0)
    if not len(scored):
        return mask
    picked = scored if rows is None else np.asarray(rows)[scored]
    subset = gold.iloc[picked]
    if isinstance(subset.dtype, pd.ArrowDtype):
        text = pa.array(subset)
    else:
        text = pa.array(subset.fillna("").astype(str).to_numpy(dtype=object), type=pa.string())
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    text = pc.utf8_trim_whitespace(pc.fill_null(text.cast(pa.string()), ""))
    known = pc.not_equal(text, "").to_numpy(zero_copy_only=False)  # empty gold: unknown, no margin
    scored, text = scored[known], text.filter(pa.array(known))
    parts = pc.split_pattern(text, "|")
    owner = scored[pc.list_parent_indices(parts).to_numpy()]
    pieces = pc.utf8_trim_whitespace(pc.list_flatten(parts))
    try:
        index = pc.cast(pieces, pa.int64()).to_numpy()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = ~np.array([p.isdigit() for p in pieces.to_pylist()])
        raise ScoresError(_gold_message(owner[bad][0], rows, item_id, "is not a list of choice indices")) from None
    outside = (index < 0) | (index >= sizes[owner])
    if outside.any():
        raise ScoresError(_gold_message(owner[outside][0], rows, item_id, "names a choice the item does not have"))
    mask[offsets[owner] + index] = True
    return mask


def _gold_message(row: int, rows, item_id, what: str) -> str:
    where = int(row if rows is None else np.asarray(rows)[row])
    name = f"item {item_id.iloc[where]!r}" if item_id is not None else f"row {where}"
    return f"records: the gold answer of {name} {what}; re-evaluate the task or fix its gold"


def _by_k(sizes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each number of choices k ≥ 1 present: its rows and their choices' flat positions (rows, k)."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if len(sizes) else sizes
    for k in np.unique(sizes):
        if k < 1:
            continue
        rows = np.flatnonzero(sizes == k)
        yield rows, starts[rows, None] + np.arange(k)


def entropy(scores: ChoiceScores) -> np.ndarray:
    """Per row: entropy (nats) of softmax over its choices; NaN without choices."""
    out = np.full(len(scores.sizes), np.nan)
    for rows, at in _by_k(scores.sizes):
        probs = np.exp(log_softmax(scores.values[at], axis=1))
        out[rows] = entr(probs).sum(1)
    return out


def gold_margin(scores: ChoiceScores) -> np.ndarray:
    """Per row: best gold score minus best other score; NaN without choices, gold or other choices."""
    out = np.full(len(scores.sizes), np.nan)
    for rows, at in _by_k(scores.sizes):
        values, gold = scores.values[at], scores.gold[at]
        best_gold = np.where(gold, values, -np.inf).max(1)
        best_other = np.where(gold, -np.inf, values).max(1)
        ok = gold.any(1) & ~gold.all(1)
        with np.errstate(invalid="ignore"):
            out[rows] = np.where(ok, best_gold - best_other, np.nan)
    return out


def item_distances(before: ChoiceScores, after: ChoiceScores) -> dict[str, np.ndarray]:
    """Per paired row: kl, js, margin_before, margin_after, margin_change (NaN where undefined).

    Both sides hold the same rows in the same order (e.g. pair_records' source rows).
    """
    sizes = before.sizes
    if len(sizes) != len(after.sizes):
        raise ScoresError(f"before has {len(sizes)} rows of scores, after {len(after.sizes)}")
    differ = (sizes != after.sizes) & (sizes > 0) & (after.sizes > 0)
    if differ.any():
        row = int(np.flatnonzero(differ)[0])
        raise ScoresError(f"row {row}: before scored {sizes[row]} choices, after {after.sizes[row]}; "
                          "the items differ: re-evaluate both sides on the same task")
    both = np.where(after.sizes == sizes, sizes, 0)
    kl, js = np.full(len(sizes), np.nan), np.full(len(sizes), np.nan)
    for rows, at in _by_k(both):
        log_p, log_q = log_softmax(before.values[at], axis=1), log_softmax(after.values[at], axis=1)
        p, q = np.exp(log_p), np.exp(log_q)
        kl[rows] = np.where(p > 0, p * (log_p - log_q), 0.0).sum(1)
        m = (p + q) / 2
        js[rows] = 0.5 * (rel_entr(p, m).sum(1) + rel_entr(q, m).sum(1))
    margin_before, margin_after = gold_margin(before), gold_margin(after)
    return {"kl": kl, "js": js, "margin_before": margin_before, "margin_after": margin_after,
            "margin_change": margin_after - margin_before}


def _group_mean(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    finite = np.isfinite(values)
    count = np.bincount(group[finite], minlength=n_groups)
    total = np.bincount(group[finite], weights=values[finite], minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def flip_share_above(kl: np.ndarray, flipped: np.ndarray, percentiles=KL_DECILES) -> list[float | None]:
    """Share of flipped items among those with KL at or above each percentile of `kl` (NaN KL ignored)."""
    finite = np.isfinite(kl)
    kl, flipped = kl[finite], np.asarray(flipped, bool)[finite]
    if not len(kl):
        return [None] * len(percentiles)
    order = np.argsort(kl, kind="stable")
    kl, flipped = kl[order], flipped[order]
    flips_from = np.concatenate([np.cumsum(flipped[::-1])[::-1], [0]])  # flips at positions ≥ i
    start = np.searchsorted(kl, np.percentile(kl, percentiles), side="left")
    return [float(flips_from[s] / (len(kl) - s)) for s in start]


def distance_summary(distances: dict[str, np.ndarray], flipped: np.ndarray, group: np.ndarray,
                     n_groups: int) -> dict[str, object]:
    """DISTANCE_COLUMNS per group: `group` codes each row's group (0..n_groups-1; −1: in none)."""
    group = np.asarray(group, np.int64)
    inside = group >= 0
    out: dict[str, object] = {}
    for column, name in (("kl_mean", "kl"), ("js_mean", "js"), ("margin_change_mean", "margin_change")):
        out[column] = _group_mean(distances[name][inside], group[inside], n_groups)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    kl, flipped = distances["kl"], np.asarray(flipped, bool)
    out["flip_share_by_kl_decile"] = [
        flip_share_above(kl[order[bounds[g]:bounds[g + 1]]], flipped[order[bounds[g]:bounds[g + 1]]])
        for g in range(n_groups)
    ]
    return out
