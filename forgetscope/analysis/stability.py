"""Unstable flips: transitions that numeric noise alone could cause.

A multiple-choice decision is the argmax of per-choice scores (acc: the
log-likelihood; acc_norm: log-likelihood / characters; acc_per_token:
log-likelihood / tokens). Its MARGIN is the best score minus the runner-up
(0 for a tie, +inf with one choice). Two evaluations of the same checkpoint
that differ in backend, dtype or batch size move every log-likelihood a
little; a decision whose margin is smaller than that movement can flip
without the model having learned or forgotten anything.

A paired row is UNSTABLE when the before or the after decision has a margin
below the flip tolerance. `compare` counts the unstable 1→0 and 0→1 flips
apart ("of which unstable"); the headline figures (forgetting, backward
transfer, ...) still count every flip, so they stay comparable with runs
that did not look at margins. Generative items have no margin and are never
unstable.

Choosing the tolerance: if no log-likelihood moves by more than d between
two settings, a margin can move by at most 2·d, so a decision with margin
above 2·d cannot flip. `forgetscope noise` measures d for a pair of settings
and prints that bound. The default, 1e-3 nats, is about forty times the
largest |Δ log-likelihood| measured between fp32 evaluations at batch size 1
and 16 on CPU (2.6e-5, SmolLM2-135M; README "Unstable flips and the noise
floor"); bfloat16 moved scores by 0.6 nats there, so comparisons across
dtypes or backends need a tolerance measured by `forgetscope noise`.

Everything is vectorised over flattened list columns (Arrow offsets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..schema import metric_column

DEFAULT_FLIP_TOLERANCE = 1e-3
#: records columns the margins need (on top of schema.ANALYSIS_COLUMNS)
MARGIN_COLUMNS = ["loglikelihoods", "choice_chars", "choice_tokens"]
UNSTABLE_COLUMNS = ["n_10_unstable", "n_01_unstable"]


def _flat(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values and offsets of a list column (missing lists count as empty)."""
    array = pa.array(column.to_numpy(dtype=object), type=pa.list_(pa.float64()), from_pandas=True)
    offsets = array.offsets.to_numpy()
    values = array.values.to_numpy(zero_copy_only=False)[offsets[0]:offsets[-1]]
    return values.astype(np.float64, copy=False), offsets - offsets[0]


def decision_margins(records: pd.DataFrame, metric: str = "acc") -> np.ndarray:
    """Per row: best choice score minus the runner-up under `metric`.

    NaN where there is nothing to decide (generative rows, no
    log-likelihoods); +inf with a single choice; 0 for a tie.
    """
    n = len(records)
    if n == 0:
        return np.zeros(0)
    scores, offsets = _flat(records["loglikelihoods"])
    column = metric_column(metric)
    if column in ("correct_norm", "correct_per_token"):
        name = "choice_chars" if column == "correct_norm" else "choice_tokens"
        lengths, norm_offsets = _flat(records[name])
        if not np.array_equal(offsets, norm_offsets):
            raise ValueError(f"records: {name} and loglikelihoods differ in length on some rows")
        scores = scores / np.maximum(lengths, 1.0)
    sizes = np.diff(offsets)
    margins = np.full(n, np.nan)
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
    margins[rows] = np.where(n_best[rows] >= 2, 0.0, best[rows] - second[rows])
    return margins


def align_to_pairs(frame: pd.DataFrame, records: pd.DataFrame) -> np.ndarray:
    """Row of `records` for each paired row (task, item_id, repeat); -1 if absent.

    The usual case (rows already in the paired order) costs one comparison.
    """
    repeat = records["repeat"].to_numpy() if "repeat" in records.columns else np.zeros(len(records), int)
    if len(records) == len(frame):
        same = (np.array_equal(frame["repeat"].to_numpy(), repeat)
                and np.array_equal(frame["item_id"].to_numpy(dtype=object), records["item_id"].to_numpy(dtype=object))
                and np.array_equal(frame["task"].astype(str).to_numpy(dtype=object),
                                   records["task"].astype(str).to_numpy(dtype=object)))
        if same:
            return np.arange(len(frame))
    index = pd.MultiIndex.from_arrays([records["task"].astype(str), records["item_id"].astype(str), repeat])
    wanted = pd.MultiIndex.from_arrays([frame["task"].astype(str), frame["item_id"].astype(str),
                                        frame["repeat"].to_numpy()])
    return index.get_indexer(wanted)


def unstable_rows(frame: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame, tolerance: float,
                  metric: str = "acc") -> np.ndarray:
    """Per paired row: is the before or the after decision's margin below `tolerance`?"""
    flags = np.zeros(len(frame), dtype=bool)
    for records in (before, after):
        rows = align_to_pairs(frame, records)
        margins = decision_margins(records, metric)
        found = rows >= 0
        picked = np.full(len(frame), np.nan)
        picked[found] = margins[rows[found]]
        with np.errstate(invalid="ignore"):
            flags |= picked < tolerance
    return flags


def has_margins(records: pd.DataFrame) -> bool:
    return "loglikelihoods" in records.columns


def unstable_counts(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """n_10_unstable and n_01_unstable per group of `by` ([] = overall), from frame["unstable"].

    Like n_10 and n_01, a count is per repeat: each row weighs 1 / (repeats its task ran).
    """
    before = frame["before"].to_numpy(dtype=bool)
    after = frame["after"].to_numpy(dtype=bool)
    unstable = frame["unstable"].to_numpy(dtype=bool)
    task_codes, _ = pd.factorize(frame["task"])
    repeat_codes, _ = pd.factorize(frame["repeat"])
    ran = np.zeros((task_codes.max(initial=0) + 1, repeat_codes.max(initial=0) + 1), dtype=bool)
    ran[task_codes, repeat_codes] = True
    weight = 1.0 / ran.sum(1)[task_codes]
    parts = pd.DataFrame({"n_10_unstable": (before & ~after & unstable) * weight,
                          "n_01_unstable": (~before & after & unstable) * weight})
    if by:
        for column in by:
            parts[column] = frame[column].astype(str).to_numpy()
        table = parts.groupby(by, sort=True).sum().reset_index()
    else:
        table = parts.sum().to_frame().T
    whole = bool((ran.sum(1) == 1).all())
    for name in UNSTABLE_COLUMNS:
        table[name] = np.rint(table[name]).astype(np.int64) if whole else table[name].astype(float)
    return table


def with_unstable_counts(summary: pd.DataFrame, frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """`summary` (one row per group of `by`) with the two unstable columns added."""
    counts = unstable_counts(frame, by)
    if not by:
        return summary.assign(**{name: counts[name].iloc[0] for name in UNSTABLE_COLUMNS})
    keys = summary[by].astype(str)
    merged = keys.merge(counts, on=by, how="left")
    out = summary.copy()
    for name in UNSTABLE_COLUMNS:
        out[name] = merged[name].fillna(0).to_numpy()
    return out


def add_unstable(comparison, before: pd.DataFrame, after: pd.DataFrame, tolerance: float) -> None:
    """Mark unstable rows in comparison.paired.frame and add the counts to its tables (in place).

    Records without log-likelihoods (e.g. only the analysis columns were
    read) are left as they are: comparison.flip_tolerance stays None.
    """
    if not (has_margins(before) and has_margins(after)):
        return
    frame = comparison.paired.frame
    frame["unstable"] = unstable_rows(frame, before, after, tolerance, comparison.metric)
    comparison.flip_tolerance = tolerance
    comparison.tasks = with_unstable_counts(comparison.tasks, frame, ["task"])
    if len(comparison.categories):
        comparison.categories = with_unstable_counts(comparison.categories, frame, ["task", "category"])
    comparison.overall = with_unstable_counts(comparison.overall, frame, [])


def noise_summary(a: pd.DataFrame, b: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """How two evaluations of the SAME checkpoint differ, per task and overall.

    Columns: task ("(all)" for the overall row), n (paired rows), n_01, n_10,
    flip_rate = (n_01 + n_10) / n, max_abs_dll (largest |Δ log-likelihood| over
    every choice; NaN without multiple-choice rows) and suggested_flip_tolerance
    = 2 · max_abs_dll: no decision with a larger margin can flip between them.
    """
    from .pairing import pair_records

    frame = pair_records(a, b, metric=metric).frame
    rows_a, rows_b = align_to_pairs(frame, a), align_to_pairs(frame, b)
    ll_a, off_a = _flat(a["loglikelihoods"].iloc[rows_a])
    ll_b, off_b = _flat(b["loglikelihoods"].iloc[rows_b])
    if not np.array_equal(off_a, off_b):
        raise ValueError("the two evaluations have different numbers of choices for some items")
    sizes = np.diff(off_a)
    row_max = np.full(len(frame), np.nan)
    scored = np.flatnonzero(sizes > 0)
    if len(scored):
        row_max[scored] = np.maximum.reduceat(np.abs(ll_a - ll_b), off_a[scored])
    before, after = frame["before"].to_numpy(dtype=bool), frame["after"].to_numpy(dtype=bool)
    parts = pd.DataFrame({"task": frame["task"].astype(str).to_numpy(), "n_01": ~before & after,
                          "n_10": before & ~after, "max_abs_dll": row_max})
    per_task = parts.groupby("task", sort=True).agg(n=("n_01", "size"), n_01=("n_01", "sum"),
                                                    n_10=("n_10", "sum"), max_abs_dll=("max_abs_dll", "max"))
    overall = pd.DataFrame({"n": [len(parts)], "n_01": [int(parts["n_01"].sum())], "n_10": [int(parts["n_10"].sum())],
                            "max_abs_dll": [parts["max_abs_dll"].max()]}, index=pd.Index(["(all)"], name="task"))
    table = pd.concat([per_task, overall]).reset_index()
    table["flip_rate"] = (table["n_01"] + table["n_10"]) / table["n"]
    table["suggested_flip_tolerance"] = 2 * table["max_abs_dll"]
    return table[["task", "n", "n_01", "n_10", "flip_rate", "max_abs_dll", "suggested_flip_tolerance"]]
