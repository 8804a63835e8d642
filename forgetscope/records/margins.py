"""Decision margins of multiple-choice rows: best choice score minus the runner-up.

acc scores a choice by its log-likelihood, acc_norm by log-likelihood per
character, acc_per_token per token. A margin is computed per row,
vectorised over the flattened list columns (Arrow offsets), so stored records
at scale never become Python lists: `store.load_records(margins=metric)`
keeps only this column instead of the list columns. What margins are for
(unstable flips, the noise floor) is analysis.stability's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from .schema import metric_column


def margin_column(metric: str = "acc") -> str:
    """Name of the precomputed per-row margin column for `metric` (see store.load_records(margins=))."""
    return f"margin_{metric_column(metric)}"


def list_columns_for(metric: str = "acc") -> list[str]:
    """The list columns a margin under `metric` is computed from."""
    column = metric_column(metric)
    extra = {"correct_norm": ["choice_chars"], "correct_per_token": ["choice_tokens"]}.get(column, [])
    return ["loglikelihoods"] + extra


def flat_list_column(column) -> tuple[np.ndarray, np.ndarray]:
    """Values and offsets of a list column (missing lists count as empty).

    An Arrow list array (or chunked array, or a pandas column backed by one) is
    read in place; a pandas column of Python lists is converted first (fine for
    the thousands of rows an evaluation returns; stored records at scale come as
    Arrow, see margins_of_table).
    """
    if isinstance(column, pd.Series) and isinstance(column.dtype, pd.ArrowDtype):
        column = pa.array(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if not isinstance(column, pa.Array):
        column = pa.array(column.to_numpy(dtype=object), type=pa.list_(pa.float64()), from_pandas=True)
    offsets = column.offsets.to_numpy()  # a null list has equal offsets: empty
    values = column.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
    return values.astype(np.float64, copy=False), offsets - offsets[0]


def margins_of_table(table: pa.Table, metric: str = "acc") -> np.ndarray:
    """decision_margins for an Arrow records table, straight from its list columns (no Python objects)."""
    if table.num_rows == 0:
        return np.zeros(0)
    names = list_columns_for(metric)
    parts = []
    for batch in table.select(names).to_batches(max_chunksize=1 << 20):
        parts.append(margins_from_lists([flat_list_column(batch.column(name)) for name in names], len(batch), metric))
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def decision_margins(records: pd.DataFrame, metric: str = "acc") -> np.ndarray:
    """Per row: best choice score minus the runner-up under `metric`.

    NaN where there is nothing to decide (generative rows, no
    log-likelihoods); +inf with a single choice; 0 for a tie. Records loaded
    with `load_records(..., margins=metric)` carry the margins already.
    """
    if margin_column(metric) in records.columns:
        return records[margin_column(metric)].to_numpy(dtype=np.float64)
    n = len(records)
    if n == 0:
        return np.zeros(0)
    return margins_from_lists([flat_list_column(records[name]) for name in list_columns_for(metric)], n, metric)


def margins_from_lists(lists: list[tuple[np.ndarray, np.ndarray]], n: int, metric: str) -> np.ndarray:
    """Margins of n rows from the flattened (values, offsets) of list_columns_for(metric)."""
    scores, offsets = lists[0]
    if len(lists) > 1:
        lengths, norm_offsets = lists[1]
        if not np.array_equal(offsets, norm_offsets):
            name = list_columns_for(metric)[1]
            raise ValueError(f"records: {name} and loglikelihoods differ in length on some rows")
        scores = scores / np.maximum(lengths, 1.0)
    sizes = np.diff(offsets)
    margins = np.full(n, np.nan)
    if n and sizes[0] >= 2 and (sizes == sizes[0]).all():  # every row k choices: the top two by partition
        k = int(sizes[0])
        top = np.partition(scores.reshape(n, k), k - 2, axis=1)[:, k - 2:]
        with np.errstate(invalid="ignore"):  # -inf - -inf where every choice is impossible: a tie, 0
            return np.where(top[:, 1] == top[:, 0], 0.0, top[:, 1] - top[:, 0])
    rows = np.flatnonzero(sizes > 0)
    if not len(rows):
        return margins
    starts = offsets[rows]
    owner = np.repeat(np.arange(n), sizes)
    best = np.full(n, -np.inf)
    best[rows] = np.maximum.reduceat(scores, starts)
    at_best = scores == best[owner]
    n_best = np.bincount(owner, weights=at_best, minlength=n)
    rest = np.where(at_best, -np.inf, scores)
    second = np.full(n, -np.inf)
    second[rows] = np.maximum.reduceat(rest, starts)
    with np.errstate(invalid="ignore"):
        margins[rows] = np.where(n_best[rows] >= 2, 0.0, best[rows] - second[rows])
    return margins



def has_margins(records: pd.DataFrame, metric: str = "acc") -> bool:
    """Whether a margin under `metric` can be had: precomputed, or from the list columns."""
    return margin_column(metric) in records.columns or all(c in records.columns for c in list_columns_for(metric))
