"""The records store: Parquet files under a results directory, which is also the cache.

Layout::

    RESULTS/records/<model fingerprint>/<task>-<run key>/
        meta.json             who, what and how (fingerprints, settings)
        part-000000.parquet   rows written as they are scored (a killed run keeps them)
        records.parquet       all rows, once the run finished (parts are then removed)

A run key hashes (model fingerprint, task name, settings), so the same
evaluation finds its rows again and scores only the items that are missing or
whose item_hash changed (a stale row is replaced, never compared). The
directory depends on the weights, not the path: a copied checkpoint reuses it. Every
file is written to a temporary name and renamed, so a kill never leaves a
half-written file that a later run would trust.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .schema import COLUMNS, KEY_COLUMNS, SchemaError, conform, empty_table

RECORDS_FILE = "records.parquet"
META_FILE = "meta.json"


class StoreError(ValueError):
    """A records file or directory could not be read."""


def slug(text: str, limit: int = 48) -> str:
    """A filesystem-safe, readable version of a name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/")).strip("._") or "x"
    return cleaned[-limit:]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_table(table: pa.Table, path: Path) -> None:
    """Write a records table to Parquet atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        table = pq.read_table(path, columns=columns if columns else None)
    except FileNotFoundError:
        raise StoreError(f"{path}: file not found") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(
            f"{path}: not a readable Parquet file ({exc}); delete it and re-run to rescore"
        ) from None
    if columns:
        return table
    try:
        return conform(table, str(path))
    except SchemaError as exc:
        raise StoreError(str(exc)) from None


class RunDir:
    """The directory holding one (checkpoint, task, settings) evaluation."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_run(cls, root: Path, model_fp: str, task: str, run_key: str) -> "RunDir":
        return cls(Path(root) / "records" / model_fp[:16] / f"{slug(task)}-{run_key[:16]}")

    @property
    def final(self) -> Path:
        return self.path / RECORDS_FILE

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet")) if self.path.is_dir() else []

    def write_meta(self, meta: dict) -> None:
        atomic_write_text(self.path / META_FILE, json.dumps(meta, indent=2, sort_keys=True))

    def read(self, valid: dict[str, str] | None = None) -> pa.Table:
        """All rows written so far (final file and any parts), without duplicates.

        With `valid` (item_id → current item_hash), rows of those items whose
        hash differs are stale (the item changed) and are left out.
        """
        files = ([self.final] if self.final.exists() else []) + self.parts()
        if not files:
            return empty_table()
        table = pa.concat_tables([read_table(f) for f in files])
        if valid:
            ids = table.column("item_id").to_pylist()
            hashes = table.column("item_hash").to_pylist()
            keep = [valid.get(i, h) == h for i, h in zip(ids, hashes)]
            if not all(keep):
                table = table.filter(pa.array(keep))
        return dedupe(table, RUN_KEY_COLUMNS)

    def append(self, table: pa.Table) -> Path:
        existing = self.parts()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        path = self.path / f"part-{number:06d}.parquet"
        write_table(conform(table), path)
        return path

    def finalize(self, valid: dict[str, str] | None = None, checkpoint: str | None = None) -> pa.Table:
        """Merge parts into records.parquet (atomically), then remove the parts.

        Stale rows (see `read`) are dropped; with `checkpoint`, every row takes
        that name, so one run directory never holds two names for one model.
        """
        parts = self.parts()
        table = self.read(valid)
        changed = self.final.exists() and table.num_rows != pq.ParquetFile(self.final).metadata.num_rows
        if checkpoint is not None and table.num_rows:
            names = table.column("checkpoint")
            if pc.any(pc.not_equal(names, checkpoint)).as_py():
                index = table.schema.get_field_index("checkpoint")
                table = table.set_column(index, "checkpoint", pa.array([checkpoint] * table.num_rows, pa.string()))
                changed = True
        if parts or changed or not self.final.exists():
            write_table(table, self.final)
            for part in parts:
                part.unlink(missing_ok=True)
        return table


#: Within one run directory (one model), a row is identified without the checkpoint name.
RUN_KEY_COLUMNS = ["task", "item_id", "repeat"]


def dedupe(table: pa.Table, key: list[str] = KEY_COLUMNS) -> pa.Table:
    """Keep the first row of each key (default: checkpoint, task, item_id, repeat)."""
    if table.num_rows == 0:
        return table
    keys = table.select(key).to_pandas()
    keep = ~keys.duplicated(keep="first").to_numpy()
    return table if keep.all() else table.filter(pa.array(keep))


def records_files(path: Path) -> list[Path]:
    """Parquet records under `path` (a file, a results directory or a run directory)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise StoreError(f"{path}: no such file or directory")
    return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))


def load_records(paths: Iterable[Path | str], columns: list[str] | None = None) -> pd.DataFrame:
    """Read records from files or directories into one DataFrame (deduplicated)."""
    files = [f for p in paths for f in records_files(Path(p))]
    if not files:
        raise StoreError("no records found; run `forgetscope eval` first or check the path")
    tables = [read_table(f, columns) for f in files]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    if columns is None or all(c in (columns or []) for c in KEY_COLUMNS):
        table = dedupe(table)
    return table.to_pandas()


def save_records(frame: pd.DataFrame | pa.Table, path: Path | str) -> Path:
    """Write a records DataFrame as one Parquet file (validated against the schema)."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    table = conform(table, str(path))
    write_table(table, Path(path))
    return Path(path)


__all__ = [
    "COLUMNS", "RunDir", "StoreError", "load_records", "save_records", "records_files",
    "write_table", "read_table", "atomic_write_text", "slug",
]
