"""Pair two checkpoints' records item by item: the ground every transition stands on.

Rows are paired on (task, item_id, repeat): repeat s of the before checkpoint
with repeat s of the after checkpoint. A pair is only meaningful if both sides
saw the same item, so

- an item whose `item_hash` differs between the sides (the prompt, choices or
  gold changed), whose `n_choices` differs, or that is present on one side
  only, is an error (`ItemMismatchError`) unless `identical_only=True`, which
  drops such items (all their repeats) and reports how many per task;
- an empty `item_hash` on either side means "unknown" (importers of foreign
  logs may have none) and is never flagged;
- if the sides ran different repeats of a task, only the repeats both ran are
  paired, and `PairedItems.notes` says so; no repeat in common is an error;
- a (task, item_id, repeat) occurring twice within one side is an error.

`category` and `n_choices` of a pair come from the before side (they must
agree anyway, since `n_choices` is checked and `category` is item metadata).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..records import codes as record_codes
from ..records.schema import metric_column

#: Columns of `PairedItems.frame`.
PAIRED_COLUMNS = ["task", "category", "item_id", "n_choices", "repeat", "before", "after", "item"]
#: Columns of `PairedItems.dropped`.
DROPPED_COLUMNS = ["task", "n_dropped", "n_changed", "n_only_before", "n_only_after"]
_REASONS = {
    "changed": "changed (item_hash or n_choices differs)",
    "only_before": "only in before",
    "only_after": "only in after",
}


class PairingError(ValueError):
    """Two records tables cannot be paired (wrong columns, duplicates, no common repeats)."""


class ItemMismatchError(PairingError):
    """The two checkpoints were not evaluated on the same items.

    `mismatches` lists every offending item: task, item_id, reason
    ("changed", "only_before" or "only_after").
    """

    def __init__(self, message: str, mismatches: pd.DataFrame) -> None:
        super().__init__(message)
        self.mismatches = mismatches


@dataclass
class PairedItems:
    """Items answered by both checkpoints, one row per (task, item_id, repeat)."""

    frame: pd.DataFrame
    """Columns task and category (categorical), item_id, n_choices, repeat,
    before and after (bool: the item was right under the metric), and item
    (int code of (task, item_id), for fast grouping)."""
    dropped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DROPPED_COLUMNS))
    """Per task, the items left out by identical_only=True, by reason (empty if none)."""
    notes: list[str] = field(default_factory=list)
    """Human-readable remarks, e.g. repeats that only one side ran."""
    metric: str = "acc"
    source_rows: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    """Positions in the before and after frames of each paired row (None: every row, in order)."""


def pair_records(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    metric: str = "acc",
    identical_only: bool = False,
) -> PairedItems:
    """Pair the records of two checkpoints (one checkpoint per frame) item by item."""
    column = metric_column(metric)
    correct_b = _validate(before, "before", column)
    correct_a = _validate(after, "after", column)
    join = _join_aligned(before, after) if _aligned(before, after) else _join(before, after)
    src_b, src_a = join.src_b, join.src_a
    dropped = pd.DataFrame(columns=DROPPED_COLUMNS)
    if any(len(p[0]) for p in join.problems.values()):
        mismatches = _mismatch_table(join.problems, join.tasks)
        if not identical_only:
            raise ItemMismatchError(_mismatch_message(mismatches), mismatches)
        bad = np.unique(np.concatenate([p[0] for p in join.problems.values()]))
        src_b = np.arange(len(before)) if src_b is None else src_b
        src_a = np.arange(len(after)) if src_a is None else src_a
        keep = ~np.isin(join.item_b[src_b], bad)
        src_b, src_a = src_b[keep], src_a[keep]
        dropped = _dropped_table(mismatches)
    n_pairs = len(before) if src_b is None else len(src_b)
    if n_pairs == 0:
        raise PairingError("no item is present (and identical) in both before and after; nothing to compare")

    def pick(values: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        return values if rows is None else values[rows]

    if len(join.rep_values) <= 1:
        item = np.arange(n_pairs)  # one repeat: every pair is its own item
    else:
        item = record_codes.dense_codes(pick(join.item_b, src_b))[0]
    frame = pd.DataFrame(
        {
            "task": pd.Categorical.from_codes(pick(join.task_b, src_b), categories=join.tasks),
            "category": _category(before, src_b),
            "item_id": _take(before["item_id"], src_b),
            "n_choices": pick(_raw_int(before, "n_choices"), src_b).astype(np.int32),
            "repeat": pick(_raw_int(before, "repeat"), src_b).astype(np.int32),
            "before": pick(correct_b, src_b),
            "after": pick(correct_a, src_a),
            "item": item,
        },
        copy=False,  # the arrays are new already; a copy would double the peak at 10M pairs
    )
    return PairedItems(frame=frame, dropped=dropped, notes=join.notes, metric=metric, source_rows=(src_b, src_a))


@dataclass
class _Join:
    """Codes of the before rows, which rows pair with which, and what did not pair."""

    task_b: np.ndarray  # task code per before row
    tasks: pd.Index
    rep_b: np.ndarray  # repeat code per before row
    rep_values: np.ndarray
    item_b: np.ndarray  # item code (one per distinct task and item_id, shared with after) per before row
    src_b: np.ndarray | None  # before rows of the pairs (None: all, in order)
    src_a: np.ndarray | None  # after rows of the pairs (None: all, in order)
    problems: dict  # reason -> (item codes, task codes, frame, rows)
    notes: list[str]


def _aligned(before: pd.DataFrame, after: pd.DataFrame) -> bool:
    """Same (task, item_id, repeat) in the same row order: the usual case, joined for free."""
    if len(before) != len(after) or ("repeat" in before.columns) != ("repeat" in after.columns):
        return False
    columns = ["task", "item_id"] + (["repeat"] if "repeat" in before.columns else [])
    return all(record_codes.same_values(before[c], after[c]) for c in columns)


def _join_aligned(before: pd.DataFrame, after: pd.DataFrame) -> _Join:
    task_b, tasks = record_codes.factorize(before["task"])
    rep_b, _, rep_values = record_codes.joint_small_codes(_raw_int(before, "repeat"), None)
    item_b, _ = record_codes.encode_items(task_b, before["item_id"], None, None, len(tasks))
    n_reps = len(rep_values)
    if n_reps > 1 and int(item_b.max(initial=0)) >= 2**62 // n_reps:
        item_b = record_codes.dense_codes(item_b)[0]
    _check_unique(record_codes.combine(item_b, n_reps, rep_b) if n_reps > 1 else item_b, before, None, "before")
    changed = np.flatnonzero(_changed(before, None, after, None))
    problems = {"changed": (item_b[changed], task_b[changed], before, changed)} if len(changed) else {}
    return _Join(task_b, tasks, rep_b, rep_values, item_b, None, None, problems, [])


def _join(before: pd.DataFrame, after: pd.DataFrame) -> _Join:
    nb = len(before)
    task_b, task_a, tasks = record_codes.encode_labels(before["task"], after["task"])
    rep_b, rep_a, rep_values = record_codes.joint_small_codes(_raw_int(before, "repeat"), _raw_int(after, "repeat"))
    n_reps = len(rep_values)
    keep_b, keep_a, notes = _common_repeats(task_b, rep_b, task_a, rep_a, tasks, rep_values)
    item_b, item_a = record_codes.encode_items(task_b, before["item_id"], task_a, after["item_id"], len(tasks))
    if n_reps > 1 and max(int(item_b.max(initial=0)), int(item_a.max(initial=0))) >= 2**62 // n_reps:
        items, _ = record_codes.dense_codes(np.concatenate([item_b, item_a]))
        item_b, item_a = items[:nb], items[nb:]
    rows_b = None if keep_b is None else np.flatnonzero(keep_b)
    rows_a = None if keep_a is None else np.flatnonzero(keep_a)
    key_b = record_codes.combine(item_b, n_reps, rep_b) if n_reps > 1 else item_b
    key_a = record_codes.combine(item_a, n_reps, rep_a) if n_reps > 1 else item_a
    key_b = key_b if rows_b is None else key_b[rows_b]
    key_a = key_a if rows_a is None else key_a[rows_a]
    _check_unique(key_b, before, rows_b, "before")
    _check_unique(key_a, after, rows_a, "after")

    def rows(subset: np.ndarray | None, where: np.ndarray) -> np.ndarray:
        return where if subset is None else subset[where]

    pos = record_codes.match(key_b, key_a)
    matched = pos >= 0
    n_matched = int(np.count_nonzero(matched))
    if n_matched == nb:  # every before row paired (keys are unique, so in order)
        src_b, src_a = None, rows(rows_a, pos)
        only_b = np.zeros(0, dtype=np.int64)
    else:
        src_b, src_a = rows(rows_b, np.flatnonzero(matched)), rows(rows_a, pos[matched])
        only_b = rows(rows_b, np.flatnonzero(~matched))
    if n_matched == len(key_a):
        only_a = np.zeros(0, dtype=np.int64)
    else:
        hit_a = np.zeros(len(key_a), dtype=bool)
        hit_a[pos[matched]] = True
        only_a = rows(rows_a, np.flatnonzero(~hit_a))
    changed = np.flatnonzero(_changed(before, src_b, after, src_a))
    changed = changed if src_b is None else src_b[changed]
    problems = {
        "changed": (item_b[changed], task_b[changed], before, changed),
        "only_before": (item_b[only_b], task_b[only_b], before, only_b),
        "only_after": (item_a[only_a], task_a[only_a], after, only_a),
    }
    return _Join(task_b, tasks, rep_b, rep_values, item_b, src_b, src_a, problems, notes)


def _check_unique(keys: np.ndarray, frame: pd.DataFrame, rows: np.ndarray | None, name: str) -> None:
    duplicated = record_codes.duplicated(keys)
    if duplicated is not None:
        where = np.flatnonzero(duplicated)
        raise PairingError(_duplicate_message(frame, where if rows is None else rows[where], name))


def _validate(frame: pd.DataFrame, name: str, column: str) -> np.ndarray:
    """Check one side's columns; return its metric column as bool."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame of records, not {type(frame).__name__}")
    missing = [c for c in ("task", "item_id", column) if c not in frame.columns]
    if missing:
        raise PairingError(
            f"{name} records lack column(s) {', '.join(missing)}; expected a forgetscope records "
            "table (see forgetscope.records.schema)"
        )
    if "checkpoint" in frame.columns and len(frame):
        checkpoints = frame["checkpoint"]
        first = checkpoints.iloc[0]
        if pd.isna(first) or bool((checkpoints != first).any()):
            names = ", ".join(repr(str(c)) for c in pd.unique(checkpoints)[:5])
            raise PairingError(
                f"{name} records hold several checkpoints ({names}); select one, "
                f"e.g. records[records.checkpoint == {str(first)!r}]"
            )
    for col in ("task", "item_id"):
        if frame[col].isna().any():
            raise PairingError(f"{name} records: {int(frame[col].isna().sum())} row(s) have no {col}")
    values = frame[column]
    if values.isna().any():
        row = frame[values.isna()].iloc[0]
        raise PairingError(
            f"{name} records: {int(values.isna().sum())} row(s) have no {column} "
            f"(first: task {row['task']!r}, item {row['item_id']!r}); choose another metric"
        )
    if values.dtype == bool:
        return values.to_numpy(dtype=bool)
    numbers = values.to_numpy(dtype=np.float64)
    if not np.isin(numbers, (0.0, 1.0)).all():
        raise PairingError(f"{name} records: column {column} must hold 0/1 or booleans")
    return numbers == 1.0


def _raw_int(frame: pd.DataFrame, name: str) -> np.ndarray:
    """An integer column as numpy (missing column or values: 0)."""
    if name not in frame.columns:
        return np.zeros(len(frame), dtype=np.int64)
    column = frame[name]
    if column.hasnans:
        column = column.fillna(0)
    values = column.to_numpy()
    return values if values.dtype.kind in "iu" else values.astype(np.int64)


def _take(series: pd.Series, rows: np.ndarray | None) -> pd.Series:
    if rows is None:
        return series.reset_index(drop=True)
    return series.iloc[rows].reset_index(drop=True)


def _category(frame: pd.DataFrame, rows: np.ndarray | None) -> pd.Categorical:
    n = len(frame) if rows is None else len(rows)
    if "category" not in frame.columns:
        return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[""])
    codes, uniques = record_codes.factorize(frame["category"])
    uniques = [str(u) for u in uniques]
    if (codes < 0).any():  # a missing category means none: ""
        if "" not in uniques:  # "" sorts first
            uniques = [""] + uniques
            codes = codes.astype(np.int32) + 1
        else:
            codes = np.where(codes >= 0, codes, uniques.index(""))
    return pd.Categorical.from_codes(codes if rows is None else codes[rows], categories=uniques)


def _common_repeats(task_b, rep_b, task_a, rep_a, tasks: pd.Index, rep_values: np.ndarray):
    """Keep masks restricting each side to the repeats both ran (None: keep all)."""
    shape = (len(tasks), max(len(rep_values), 1))
    ran_b, ran_a = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    ran_b[task_b, rep_b] = True
    ran_a[task_a, rep_a] = True
    both = ran_b.any(1) & ran_a.any(1)
    common = ran_b & ran_a
    disjoint = np.flatnonzero(both & ~common.any(1))
    if len(disjoint):
        lines = [
            f"task {tasks[t]!r}: before ran repeats {rep_values[ran_b[t]].tolist()}, "
            f"after ran {rep_values[ran_a[t]].tolist()}"
            for t in disjoint[:10]
        ]
        raise PairingError(
            "no repeat in common to pair:\n  " + "\n  ".join(lines)
            + "\nEvaluate both checkpoints with the same number of repeats."
        )
    differ = np.flatnonzero(both & (ran_b != ran_a).any(1))
    if not len(differ):
        return None, None, []
    notes = [
        f"task {tasks[t]!r}: paired only the repeats both sides ran {rep_values[common[t]].tolist()}; "
        f"ignored before-only {rep_values[ran_b[t] & ~common[t]].tolist()} and "
        f"after-only {rep_values[ran_a[t] & ~common[t]].tolist()}"
        for t in differ
    ]
    keep_b = common[task_b, rep_b] | ~both[task_b]
    keep_a = common[task_a, rep_a] | ~both[task_a]
    return keep_b, keep_a, notes


_BLOCK = 1 << 20


def _changed(before, rows_b, after, rows_a) -> np.ndarray:
    """Per pair: did the item change (n_choices or a known item_hash differs)?"""
    n_b, n_a = _raw_int(before, "n_choices"), _raw_int(after, "n_choices")
    differs = (n_b if rows_b is None else n_b[rows_b]) != (n_a if rows_a is None else n_a[rows_a])
    if "item_hash" not in before.columns or "item_hash" not in after.columns:
        return differs
    if rows_b is None and rows_a is None:
        # aligned rows: compare the Arrow chunks in place (no byte copies of 2 × N hashes);
        # unknown (empty) hashes are looked at only where the values differ
        suspects = np.flatnonzero(record_codes.not_equal(before["item_hash"], after["item_hash"]))
        if len(suspects):
            differs[suspects[_known_and_different(before["item_hash"], after["item_hash"], suspects)]] = True
        return differs
    hex_b = record_codes.hex64(before["item_hash"])
    hex_a = record_codes.hex64(after["item_hash"]) if hex_b is not None else None
    if hex_b is not None and hex_a is not None:  # forgetscope's own 16-hex hashes: 8 bytes a row
        for start in range(0, len(differs), _BLOCK):  # blocks: no full-length gathered copies
            block = slice(start, start + _BLOCK)
            differs[block] |= ((hex_b[block] if rows_b is None else hex_b[rows_b[block]])
                               != (hex_a[block] if rows_a is None else hex_a[rows_a[block]]))
        return differs
    fixed_b, fixed_a = record_codes.fixed_width(before["item_hash"]), record_codes.fixed_width(after["item_hash"])
    if (fixed_b and fixed_b[0] == 0) or (fixed_a and fixed_a[0] == 0):
        return differs  # one side has no hashes at all: nothing to check
    if fixed_b and fixed_a and fixed_b[0] == fixed_a[0]:
        # equally long hashes (hex digests): compare raw bytes, no string objects
        bytes_b, bytes_a = fixed_b[1], fixed_a[1]
        bytes_b = bytes_b if rows_b is None else bytes_b[rows_b]
        bytes_a = bytes_a if rows_a is None else bytes_a[rows_a]
        differs |= bytes_b != bytes_a
        return differs
    hash_b = _take(before["item_hash"], rows_b)
    hash_a = _take(after["item_hash"], rows_a)
    suspects = np.flatnonzero(record_codes.not_equal(hash_b, hash_a))
    if len(suspects):  # only now look for empty (unknown) hashes
        differs[suspects[_known_and_different(hash_b, hash_a, suspects)]] = True
    return differs


def _known_and_different(hash_b: pd.Series, hash_a: pd.Series, rows: np.ndarray) -> np.ndarray:
    """Of `rows`, which have a hash on both sides (empty = unknown) and different ones."""
    sub_b = hash_b.iloc[rows].fillna("").astype(str).to_numpy()
    sub_a = hash_a.iloc[rows].fillna("").astype(str).to_numpy()
    return (sub_b != "") & (sub_a != "") & (sub_b != sub_a)


def _mismatch_table(problems: dict, tasks: pd.Index) -> pd.DataFrame:
    """One row per (offending item, reason): task, item_id, reason."""
    parts = []
    for reason, (items, task_codes, frame, rows) in problems.items():
        if not len(items):
            continue
        _, first = np.unique(items, return_index=True)
        parts.append(
            pd.DataFrame(
                {
                    "task": np.asarray(tasks)[task_codes[first]],
                    "item_id": frame["item_id"].iloc[rows[first]].to_numpy(),
                    "reason": reason,
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    return table.sort_values(["task", "reason"], kind="stable", ignore_index=True)


def _mismatch_message(mismatches: pd.DataFrame, shown: int = 5, max_lines: int = 12) -> str:
    lines = []
    for (task, reason), group in mismatches.groupby(["task", "reason"], sort=False):
        ids = ", ".join(repr(i) for i in group["item_id"].iloc[:shown])
        more = f" and {len(group) - shown} more" if len(group) > shown else ""
        lines.append(f"task {task!r}: {len(group)} item(s) {_REASONS[reason]}: {ids}{more}")
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... and {len(lines) - max_lines} more"]
    return (
        "before and after were not evaluated on the same items, so their answers cannot be paired:\n  "
        + "\n  ".join(lines)
        + "\nRe-run with identical_only=True (CLI: --identical-only) to compare only the items "
        "that are identical on both sides."
    )


def _dropped_table(mismatches: pd.DataFrame) -> pd.DataFrame:
    by_reason = (
        mismatches.groupby(["task", "reason"]).size().unstack(fill_value=0)
        .reindex(columns=list(_REASONS), fill_value=0)
    )
    n_dropped = mismatches.drop_duplicates(["task", "item_id"]).groupby("task").size()
    table = pd.DataFrame(
        {
            "task": by_reason.index.astype(str),
            "n_dropped": n_dropped.reindex(by_reason.index).to_numpy(dtype=np.int64),
            "n_changed": by_reason["changed"].to_numpy(dtype=np.int64),
            "n_only_before": by_reason["only_before"].to_numpy(dtype=np.int64),
            "n_only_after": by_reason["only_after"].to_numpy(dtype=np.int64),
        }
    )
    return table.reset_index(drop=True)


def _duplicate_message(frame: pd.DataFrame, rows: np.ndarray, name: str, shown: int = 5) -> str:
    sample = frame.iloc[rows]
    repeat = sample["repeat"] if "repeat" in sample.columns else pd.Series(0, index=sample.index)
    keys = pd.DataFrame({"task": sample["task"], "item_id": sample["item_id"], "repeat": repeat})
    keys = keys.drop_duplicates()
    listed = "; ".join(
        f"task {r.task!r} item {r.item_id!r} repeat {r.repeat}" for r in keys.iloc[:shown].itertuples()
    )
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return (
        f"{name} records hold {len(rows)} rows that share a (task, item_id, repeat) with another "
        f"row: {listed}{more}. Each item and repeat must occur once per checkpoint; keep one "
        "evaluation run per task (forgetscope.records.store.load_records drops exact duplicates)."
    )
