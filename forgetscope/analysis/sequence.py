"""Checkpoint sequences: every item's trajectory through training, and the transitions along it.

Two checkpoints say which items flipped; an ordered sequence (the checkpoints
of a training run) says *when*, and how often an item flipped back and forth.

    from forgetscope.analysis import checkpoint_sequence
    seq = checkpoint_sequence(records, order=["step-100", "step-200", "step-300"])
    seq.items           # per (task, item_id, repeat): trajectory "011", forgetting events, first learned, ...
    seq.consecutive()   # per task and consecutive pair: the `compare` figures
    seq.from_first()    # per task: first checkpoint vs each later one
    seq.learned_then_forgotten()  # items learned along the way and lost again later (0→1→0)

Definitions (after Toneva et al., 2019, "An empirical study of example
forgetting"), per item row (one per repeat) with correctness c_0..c_{T-1}:

- forgetting event: c_t = 1 and c_{t+1} = 0 for consecutive checkpoints;
  learning event: c_t = 0 and c_{t+1} = 1;
- first learned: the first checkpoint with c_t = 1 (possibly the first one;
  missing, NA, for an item never learned);
- never learned: c_t = 0 at every checkpoint;
- unforgettable: learned at some checkpoint and never forgotten afterwards
  (no forgetting event at all).

Item matching and chance adjustment are not redone here: every checkpoint is
paired with the first through `pair_records` (same item ids, same item_hash,
common repeats; `identical_only` drops mismatches), the trajectory keeps the
items present in all of them, and every pairwise table is `transition_summary`
over those same items, so its numbers equal what `forgetscope compare` prints
for the pair (the same items, the same bootstrap seeds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..records import codes as record_codes
from .pairing import PairingError, pair_records
from .transitions import SUMMARY_COLUMNS, transition_summary

#: Columns of `CheckpointSequence.items`, in order.
ITEM_COLUMNS = [
    "task", "category", "item_id", "n_choices", "repeat", "trajectory", "n_correct", "forgetting_events",
    "learning_events", "first_learned", "first_learned_index", "never_learned", "unforgettable",
]
#: Columns of `CheckpointSequence.task_summary()`, after "task".
TASK_SUMMARY_COLUMNS = [
    "n", "acc_first", "acc_last", "never_learned", "unforgettable", "forgotten_at_least_once",
    "forgetting_events", "learning_events",
]
_KEYS = ["task", "item_id", "repeat"]


class SequenceError(PairingError):
    """The checkpoints cannot form a sequence (fewer than two, unknown or repeated names)."""


@dataclass
class CheckpointSequence:
    """Items followed through an ordered list of checkpoints (see the module docstring)."""

    checkpoints: list[str]
    """Checkpoint names, in order."""
    items: pd.DataFrame
    """One row per (task, item_id, repeat) present at every checkpoint: ITEM_COLUMNS."""
    correct: np.ndarray
    """Boolean (len(items), len(checkpoints)): correctness of each item row at each checkpoint."""
    metric: str = "acc"
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)
    """With identical_only: per (checkpoint, task), the items left out because they differ from the first."""
    notes: list[str] = field(default_factory=list)
    n_bootstrap: int = 1000
    seed: int = 0

    # ------------------------------------------------------------------ pairs
    def paired(self, before: int | str, after: int | str) -> pd.DataFrame:
        """The paired-items frame (as `pair_records` makes) of two checkpoints of the sequence."""
        i, j = self.index(before), self.index(after)
        frame = self.items[["task", "category", "item_id", "n_choices", "repeat"]].copy()
        frame["before"] = self.correct[:, i]
        frame["after"] = self.correct[:, j]
        frame["item"] = self._item_codes()
        return frame

    def pair_summary(self, before: int | str, after: int | str, by: str | list[str] = "task",
                     *, n_bootstrap: int | None = None) -> pd.DataFrame:
        """`transition_summary` of one pair (by task, ["task", "category"], or None for overall)."""
        n_boot = self.n_bootstrap if n_bootstrap is None else n_bootstrap
        summary = transition_summary(self.paired(before, after), _by(by), n_bootstrap=n_boot, seed=self.seed)
        if "category" in _by(by):  # as compare_records: items without a category form no category row
            summary = summary[summary["category"] != ""].reset_index(drop=True)
        return summary

    def consecutive(self, by: str | list[str] = "task") -> pd.DataFrame:
        """Per group and consecutive pair (t-1, t): before, after, after_index and SUMMARY_COLUMNS."""
        return self._pairs([(t - 1, t) for t in range(1, len(self.checkpoints))], by)

    def from_first(self, by: str | list[str] = "task") -> pd.DataFrame:
        """Per group and later checkpoint t: the first checkpoint (before) against t (after)."""
        return self._pairs([(0, t) for t in range(1, len(self.checkpoints))], by)

    def _pairs(self, pairs: list[tuple[int, int]], by) -> pd.DataFrame:
        labels = _by(by)
        parts = []
        for i, j in pairs:
            summary = self.pair_summary(i, j, labels)
            summary.insert(len(labels), "before", self.checkpoints[i])
            summary.insert(len(labels) + 1, "after", self.checkpoints[j])
            summary.insert(len(labels) + 2, "after_index", j)
            parts.append(summary)
        table = pd.concat(parts, ignore_index=True)
        return table.sort_values(labels + ["after_index"], kind="stable", ignore_index=True)

    def pairwise(self, task: str, value: str = "forgetting_true") -> pd.DataFrame:
        """Checkpoint × checkpoint matrix of one figure for one task: row = before, column = after.

        Filled above the diagonal (before earlier than after); NaN on and below
        it. No bootstrap: the matrix shows point values.
        """
        if value not in SUMMARY_COLUMNS:
            raise ValueError(f"unknown figure {value!r}; choose one of {', '.join(SUMMARY_COLUMNS)}")
        rows = self._task_rows(task)
        n = len(self.checkpoints)
        matrix = np.full((n, n), np.nan)
        base = self.paired(0, 0).iloc[rows].reset_index(drop=True)
        for i in range(n):
            for j in range(i + 1, n):
                frame = base.assign(before=self.correct[rows, i], after=self.correct[rows, j])
                matrix[i, j] = float(transition_summary(frame, None, n_bootstrap=0)[value].iloc[0])
        return pd.DataFrame(matrix, index=pd.Index(self.checkpoints, name="before"),
                            columns=pd.Index(self.checkpoints, name="after"))

    # ------------------------------------------------------------------ items
    def task_summary(self) -> pd.DataFrame:
        """Per task: rows (items × repeats), accuracy at the first and last checkpoint, and how many
        rows were never learned, unforgettable, forgotten at least once, and the events in total."""
        items = self.items
        grouped = items.assign(
            acc_first=self.correct[:, 0], acc_last=self.correct[:, -1],
            forgotten_at_least_once=items["forgetting_events"] > 0,
        ).groupby("task", observed=True, sort=True)
        table = grouped.agg(
            n=("item_id", "size"), acc_first=("acc_first", "mean"), acc_last=("acc_last", "mean"),
            never_learned=("never_learned", "sum"), unforgettable=("unforgettable", "sum"),
            forgotten_at_least_once=("forgotten_at_least_once", "sum"),
            forgetting_events=("forgetting_events", "sum"), learning_events=("learning_events", "sum"),
        ).reset_index()
        table["task"] = table["task"].astype(str)
        return table[["task"] + TASK_SUMMARY_COLUMNS]

    def learned_then_forgotten(self) -> pd.DataFrame:
        """Item rows learned at some checkpoint and forgotten at a later one (a 0→1 event followed by a
        1→0 event: trajectories such as 010, 0110, 0101), which a first-vs-last comparison misses when the
        two ends agree.

        Columns: task, item_id, repeat, trajectory, learned_at (the checkpoint of the first learning event),
        forgotten_at (the checkpoint of the first forgetting event after it), learned_index,
        forgotten_index; sorted by task and learned index, records order within.
        """
        correct = self.correct
        n_rows, n_ckpt = correct.shape
        columns = ["task", "item_id", "repeat", "trajectory", "learned_at", "forgotten_at", "learned_index",
                   "forgotten_index"]
        if n_ckpt < 3 or not n_rows:
            return pd.DataFrame(columns=columns)
        learns = ~correct[:, :-1] & correct[:, 1:]  # event at column t: checkpoint t + 1
        forgets = correct[:, :-1] & ~correct[:, 1:]
        learned = np.where(learns.any(1), learns.argmax(1) + 1, n_ckpt)
        after = forgets & (np.arange(1, n_ckpt)[None, :] > learned[:, None])
        rows = np.flatnonzero(after.any(1))
        forgotten = after[rows].argmax(1) + 1
        names = np.asarray(self.checkpoints, dtype=object)
        table = pd.DataFrame({
            "task": self.items["task"].astype(str).to_numpy()[rows],
            "item_id": self.items["item_id"].to_numpy()[rows],
            "repeat": self.items["repeat"].to_numpy()[rows],
            "trajectory": np.asarray(self.items["trajectory"].astype(str))[rows],
            "learned_at": names[learned[rows]], "forgotten_at": names[forgotten],
            "learned_index": learned[rows], "forgotten_index": forgotten,
        }, columns=columns)
        return table.sort_values(["task", "learned_index"], kind="stable", ignore_index=True)

    def raster(self, task: str, repeat: int | None = None) -> pd.DataFrame:
        """Items × checkpoints correctness (0/1) of one task and repeat (default: the first),
        items ordered by the checkpoint where they were first learned (never learned last),
        then by forgetting events, then in their records order."""
        rows = self._task_rows(task)
        repeats = self.items["repeat"].to_numpy()[rows]
        chosen = int(repeats.min()) if repeat is None else int(repeat)
        rows = rows[repeats == chosen]
        if not len(rows):
            raise ValueError(f"task {task!r} has no rows with repeat {chosen}")
        first = self.items["first_learned_index"].to_numpy()[rows]
        first = np.where(first < 0, len(self.checkpoints), first)
        events = self.items["forgetting_events"].to_numpy()[rows]
        order = rows[np.lexsort((np.arange(len(rows)), events, first))]
        return pd.DataFrame(self.correct[order].astype(np.int8),
                            index=pd.Index(self.items["item_id"].to_numpy()[order], name="item_id"),
                            columns=pd.Index(self.checkpoints, name="checkpoint"))

    def index(self, checkpoint: int | str) -> int:
        """Position of a checkpoint given by name or index."""
        if isinstance(checkpoint, (int, np.integer)):
            if not -len(self.checkpoints) <= checkpoint < len(self.checkpoints):
                raise IndexError(f"checkpoint index {checkpoint} out of range 0..{len(self.checkpoints) - 1}")
            return int(checkpoint) % len(self.checkpoints)
        try:
            return self.checkpoints.index(checkpoint)
        except ValueError:
            raise SequenceError(f"checkpoint {checkpoint!r} is not in the sequence "
                                f"({', '.join(self.checkpoints)})") from None

    @property
    def tasks(self) -> list[str]:
        return sorted(map(str, pd.unique(self.items["task"])))

    def _task_rows(self, task: str) -> np.ndarray:
        rows = np.flatnonzero((self.items["task"] == task).to_numpy())
        if not len(rows):
            raise ValueError(f"task {task!r} is not in the sequence ({', '.join(map(repr, self.tasks))})")
        return rows

    def _item_codes(self) -> np.ndarray:
        if self.items["repeat"].nunique() <= 1:
            return np.arange(len(self.items))
        return self.items.groupby(["task", "item_id"], observed=True, sort=False).ngroup().to_numpy()


def checkpoint_sequence(
    records: pd.DataFrame | Sequence[pd.DataFrame],
    order: Sequence[str] | None = None,
    *,
    metric: str = "acc",
    identical_only: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> CheckpointSequence:
    """Follow every item through the checkpoints in `order`.

    `records`: one records table holding all checkpoints (then `order` names
    them; default: their order of first appearance in the table), or a list
    of per-checkpoint tables in training order. Items must be the same at
    every checkpoint (see `pair_records`); `identical_only` keeps those that are.
    """
    names, frames = _split(records, order)
    base = None
    dropped, notes = [], []
    for t in range(1, len(frames)):
        paired = pair_records(frames[0], frames[t], metric=metric, identical_only=identical_only)
        if len(paired.dropped):
            dropped.append(paired.dropped.assign(checkpoint=names[t]))
        notes += [f"{names[0]} vs {names[t]}: {note}" for note in paired.notes]
        frame = paired.frame
        if base is None:
            base = frame.drop(columns=["item"]).rename(columns={"before": 0, "after": 1})
        elif _same_rows(base, frame):
            base[t] = frame["after"].to_numpy()
        else:
            base = base.merge(frame[_KEYS + ["after"]].rename(columns={"after": t}), on=_KEYS, how="inner")
    if base is None or not len(base):
        raise SequenceError("no item is present (and identical) at every checkpoint of the sequence")
    correct = np.ascontiguousarray(base[list(range(len(names)))].to_numpy(dtype=bool))
    items = _item_table(base, correct, names)
    dropped_table = pd.concat(dropped, ignore_index=True) if dropped else pd.DataFrame()
    return CheckpointSequence(names, items, correct, metric, dropped_table, notes, n_bootstrap, seed)


def _split(records, order) -> tuple[list[str], list[pd.DataFrame]]:
    """Checkpoint names and one records frame per checkpoint, in sequence order."""
    if isinstance(records, pd.DataFrame):
        if "checkpoint" not in records.columns:
            raise SequenceError("records lack the checkpoint column; pass one table per checkpoint instead")
        if not isinstance(records["checkpoint"].dtype, pd.CategoricalDtype):  # once, not once per name
            records = records.assign(checkpoint=records["checkpoint"].astype(str).astype("category"))
        column = records["checkpoint"]
        present = [str(column.cat.categories[c]) for c in pd.unique(column.cat.codes.to_numpy()) if c >= 0]
        names = list(order) if order is not None else present
        unknown = [n for n in names if n not in present]
        if unknown:
            raise SequenceError(f"no records for checkpoint(s) {', '.join(map(repr, unknown))}; "
                                f"the records hold {', '.join(map(repr, present))}")
        frames = [checkpoint_rows(records, name) for name in names]
    else:
        frames = list(records)
        names = [str(f["checkpoint"].iloc[0]) if "checkpoint" in f.columns and len(f) else f"#{i}"
                 for i, f in enumerate(frames)]
        if order is not None:
            if len(order) != len(frames):
                raise SequenceError(f"{len(order)} names for {len(frames)} records tables")
            names = list(map(str, order))
            frames = [f.assign(checkpoint=n) for f, n in zip(frames, names)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SequenceError(f"checkpoint(s) {', '.join(map(repr, repeated))} occur twice in the order")
    if len(names) < 2:
        raise SequenceError(f"a sequence needs at least two checkpoints, got {len(names)}")
    return names, frames


def checkpoint_rows(records: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of checkpoint `name`, reindexed from 0.

    A categorical checkpoint column is compared by its codes (no per-row
    strings), and rows that are contiguous, as they are when each checkpoint's
    records were read one after the other, come as a slice: no copy of
    millions of rows.
    """
    column = records["checkpoint"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        matches = [i for i, c in enumerate(column.cat.categories) if str(c) == name]
        mask = column.cat.codes.isin(matches).to_numpy()
    else:
        mask = (column.astype(str) == name).to_numpy()
    where = np.flatnonzero(mask)
    if len(where) and where[-1] - where[0] + 1 == len(where):
        return records.iloc[where[0]: where[-1] + 1].reset_index(drop=True)
    return records.iloc[where].reset_index(drop=True)


def _same_rows(base: pd.DataFrame, frame: pd.DataFrame) -> bool:
    """Whether a pairing with the first checkpoint kept exactly the base's rows, in order (the usual case)."""
    if len(base) != len(frame):
        return False
    return all(record_codes.same_values(base[c].reset_index(drop=True), frame[c].reset_index(drop=True)) for c in _KEYS)


def _item_table(base: pd.DataFrame, correct: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Per item row: trajectory text, event counts, first learned checkpoint, flags (vectorised)."""
    base = base.reset_index(drop=True)  # every column below is positional
    n_rows, n_ckpt = correct.shape
    forgotten = (correct[:, :-1] & ~correct[:, 1:]).sum(1)
    learned = (~correct[:, :-1] & correct[:, 1:]).sum(1)
    ever = correct.any(1)
    first = np.where(ever, correct.argmax(1), -1)
    # text columns stay categorical or Arrow: at 10M rows, Python strings per row cost gigabytes
    first_name = pd.Categorical.from_codes(first, categories=pd.Index(names, dtype=object))
    task = base["task"]
    category = base["category"]
    items = pd.DataFrame({
        "task": task.astype(str).astype("category") if not isinstance(task.dtype, pd.CategoricalDtype) else task,
        "category": category.astype(str) if not isinstance(category.dtype, pd.CategoricalDtype)
        else category.cat.rename_categories([str(c) for c in category.cat.categories]),
        "item_id": base["item_id"].reset_index(drop=True),
        "n_choices": base["n_choices"].to_numpy(),
        "repeat": base["repeat"].to_numpy(),
        "trajectory": _trajectories(correct),
        "n_correct": correct.sum(1),
        "forgetting_events": forgotten,
        "learning_events": learned,
        "first_learned": first_name,
        "first_learned_index": first,
        "never_learned": ~ever,
        "unforgettable": ever & (forgotten == 0),
    })
    return items[ITEM_COLUMNS]


def _trajectories(correct: np.ndarray) -> pd.Categorical:
    """One digit per checkpoint ("0110"), as a categorical: one string per distinct trajectory."""
    n_rows, n_ckpt = correct.shape
    if n_ckpt > 62:  # beyond a 64-bit pattern: plain strings
        digits = (correct.astype(np.uint8) + ord("0")).view(f"S{n_ckpt}").ravel()
        return pd.Categorical(digits.astype(str) if n_rows else np.array([], dtype=str))
    pattern = correct.astype(np.int64) @ (np.int64(1) << np.arange(n_ckpt - 1, -1, -1, dtype=np.int64))
    values, codes = np.unique(pattern, return_inverse=True)
    labels = [format(int(v), f"0{n_ckpt}b") for v in values]
    return pd.Categorical.from_codes(codes.reshape(-1), categories=pd.Index(labels, dtype=object))


def _by(by) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


# ---------------------------------------------------------------- run manifests
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "forgetscope-run-manifest"


@dataclass(frozen=True)
class ManifestCheckpoint:
    """One checkpoint of a training run, as its manifest lists it."""

    name: str
    """e.g. "pretrain/step-100"; used as the checkpoint name in records."""
    path: Path
    """The Hugging Face model directory (absolute: resolved against the manifest's directory)."""
    stage: str = ""
    step: int | None = None
    final: bool = False
    tokens_seen: dict = field(default_factory=dict)
    val_loss: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RunManifest:
    """`<run_dir>/manifest.json` written by the training runner: the run's checkpoints in training order.

    The only file reading in this module; it is here so that the Python API
    can build a sequence from a run without the command line.
    """

    run: str
    config_hash: str
    checkpoints: list[ManifestCheckpoint]
    path: Path

    @classmethod
    def read(cls, path: str | Path) -> "RunManifest":
        """Read a manifest file, or `manifest.json` inside a run directory."""
        file = Path(path)
        if file.is_dir():
            file = file / MANIFEST_FILE
        try:
            data = json.loads(file.read_text())
        except FileNotFoundError:
            raise SequenceError(f"{file}: no such manifest; pass a run directory or its {MANIFEST_FILE}") from None
        except ValueError as exc:
            raise SequenceError(f"{file}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise SequenceError(f"{file}: not a run manifest (its \"format\" must be {MANIFEST_FORMAT!r})")
        if data.get("version") != 1:
            raise SequenceError(f"{file}: manifest version {data.get('version')!r}; this forgetscope reads version 1")
        entries = data.get("checkpoints")
        if not isinstance(entries, list) or not entries:
            raise SequenceError(f"{file}: the manifest lists no checkpoints")
        checkpoints = []
        for number, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("name") or not entry.get("path"):
                raise SequenceError(f"{file}: checkpoint #{number} needs a \"name\" and a \"path\"")
            checkpoints.append(ManifestCheckpoint(
                name=str(entry["name"]), path=(file.parent / str(entry["path"])).resolve(),
                stage=str(entry.get("stage", "")), step=entry.get("step"), final=bool(entry.get("final", False)),
                tokens_seen=dict(entry.get("tokens_seen") or {}), val_loss=dict(entry.get("val_loss") or {}),
            ))
        return cls(str(data.get("run", "")), str(data.get("config_hash", "")), checkpoints, file)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.checkpoints]


def is_manifest(path: str | Path) -> bool:
    """True for a manifest.json file or a directory holding one."""
    p = Path(path)
    return (p.is_file() and p.name == MANIFEST_FILE) or (p.is_dir() and (p / MANIFEST_FILE).is_file())
