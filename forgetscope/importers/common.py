"""What the importers share: the imported run, its checks, and writing it into the records store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..records.schema import conform, to_table
from ..records.store import RUN_KEY_COLUMNS, RunDir, write_table
from ..tasks.base import stable_hash


class LogFormatError(ValueError):
    """A log file is missing, malformed or of an unknown kind (message names the file and line)."""


@dataclass
class ImportedRun:
    """The records of one checkpoint read from another tool's logs."""

    checkpoint: str
    backend: str
    """The tool that scored the items: "lm-eval", "lighteval", "inspect" or "olmes"."""
    records: pd.DataFrame
    sources: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def model_fingerprint(self) -> str:
        """Stands in for the weights' hash, which a log does not have: the tool and the checkpoint name."""
        return import_fingerprint(self.backend, self.checkpoint)


def import_fingerprint(backend: str, checkpoint: str) -> str:
    return stable_hash({"import": backend, "checkpoint": checkpoint}, n=32)


def build_records(rows: list[dict], backend: str, checkpoint: str, settings: dict) -> pd.DataFrame:
    """Fill the columns every imported row shares and return a schema-conformant frame."""
    fingerprint = import_fingerprint(backend, checkpoint)
    settings_json = _json(settings)
    settings_hash = stable_hash(settings)
    task_fingerprints = {}
    for row in rows:
        task_fingerprints.setdefault(row["task"], []).append([row["item_id"], row["item_hash"], row["category"]])
    task_fingerprints = {t: stable_hash({"name": t, "items": items}, n=32) for t, items in task_fingerprints.items()}
    for row in rows:
        row.update(checkpoint=checkpoint, model_fingerprint=fingerprint, backend=backend, settings=settings_json,
                   settings_hash=settings_hash, task_fingerprint=task_fingerprints[row["task"]])
    return to_table(rows, source=f"{backend} import").to_pandas()


def write_run(run: ImportedRun, output_dir: Path | str) -> Path:
    """Write one run directory per task (replacing an earlier import of the same checkpoint and task).

    Returns the checkpoint's records directory, which `compare`, `report`
    and `gate` accept as a side.
    """
    root = Path(output_dir)
    fingerprint = run.model_fingerprint
    for task, rows in run.records.groupby("task", sort=True, observed=True):
        run_key = stable_hash({"import": run.backend, "checkpoint": run.checkpoint, "task": str(task)}, n=32)
        run_dir = RunDir.for_run(root, fingerprint, str(task), run_key)
        for part in run_dir.parts():  # a fresh import replaces everything of this run
            part.unlink()
        run_dir.write_meta({
            "checkpoint": run.checkpoint, "model_fingerprint": fingerprint, "task": str(task),
            "backend": run.backend, "imported_from": [str(p) for p in run.sources], "n_items": int(len(rows)),
            "notes": run.notes, "imported": time.time(),
        })
        table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
        write_table(conform(table, str(run_dir.path)), run_dir.final, unique_on=RUN_KEY_COLUMNS)
    return root / "records" / fingerprint[:16]


def check_unique(rows: list[dict], where: list[str]) -> None:
    """No (task, item_id) twice: name both places when it happens."""
    seen: dict[tuple[str, str], str] = {}
    for row, place in zip(rows, where):
        key = (row["task"], row["item_id"])
        if key in seen:
            raise LogFormatError(
                f"{place}: item {key[1]!r} of task {key[0]!r} appears again (first at {seen[key]}); "
                "import one run's files at a time"
            )
        seen[key] = place


def check_finite(values: np.ndarray, place: str) -> None:
    """Per-choice log-likelihoods must be numbers: a NaN would make "choice 0" look like an answer."""
    if not np.isfinite(values).all():
        raise LogFormatError(f"{place}: non-finite log-likelihood(s) {values.tolist()} (NaN or inf); the model "
                             "that was evaluated is broken, so right or wrong cannot be told: re-run it")


def argmax_in(values: np.ndarray, gold: list[int]) -> bool:
    """First maximum (as numpy and both tools break ties) is one of the gold indices."""
    return bool(len(values)) and int(np.argmax(values)) in gold


def _json(value: dict) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
