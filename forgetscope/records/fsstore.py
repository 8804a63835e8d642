"""Run directories at a URL (s3://, gs://, file://, memory://, anything fsspec opens): no lock needed.

The local store (`store.RunDir`) merges a run directory's parts under a file
lock, and file locks need a POSIX filesystem. Object stores have none, so a
run directory at a URL relies on immutable files instead:

- every writer's part has a name of its own and appears whole (an object store
  publishes an object when it is closed; a `file://` part is written to a
  temporary name and renamed);
- finalising writes a new, uniquely named `records-<id>.parquet` holding every
  usable row of the files it read, and only then deletes those files. A file is
  deleted only once its rows are in a file written before, so two
  finalisations at once (two drivers on one output) lose nothing: they leave
  two records files whose rows overlap, and every read deduplicates.

Layout, as in the local store but with the records file named by its writer::

    RESULTS/records/<model fingerprint>/<task>-<run key>/
        meta.json  part-000000-<id>.parquet ...  records-<id>.parquet

Listings are read fresh (fsspec's listing cache is cleared first), so parts
written by other machines are seen. The analysis commands (`report`,
`heatmap`, a stored side of `compare`) read local paths: copy the results
directory down first (`aws s3 sync`, `gsutil rsync`).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .schema import conform
from .store import (META_FILE, RUN_KEY_COLUMNS, StoreError, atomic_write_bytes, named, names_another, part_name,
                    read_table, slug, usable_rows, with_unique_note)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: Any) -> bool:
    """Whether `path` names a location by URL (`s3://b/x`, `file:///x`), not a plain local path."""
    return isinstance(path, str) and bool(_URL.match(path))


def filesystem(url: str):
    """(fsspec filesystem, path inside it) of a URL; a StoreError when no implementation is installed."""
    try:
        import fsspec

        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # e.g. s3fs or gcsfs missing
        raise StoreError(f"{url}: cannot open this kind of URL ({exc}); install its fsspec implementation "
                         "(s3fs for s3://, gcsfs for gs://)") from None
    except ValueError as exc:
        raise StoreError(f"{url}: not a URL fsspec can open ({exc})") from None


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def put_bytes(fs, path: str, data: bytes) -> None:
    """Write `data` at `path` so that readers see all of it or nothing (see the module docstring)."""
    if _is_local(fs):
        from pathlib import Path

        atomic_write_bytes(Path(path), data)
    else:
        fs.pipe_file(path, data)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


class FsRunDir:
    """`store.RunDir`'s interface for a run directory at a URL, without a lock (module docstring)."""

    def __init__(self, url: str, fs=None, path: str | None = None) -> None:
        if fs is None:
            fs, path = filesystem(url)
        self.fs, self.dir, self.url = fs, str(path).rstrip("/"), url

    @classmethod
    def for_run(cls, root: str, model_fp: str, task: str, run_key: str) -> "FsRunDir":
        return cls(f"{root.rstrip('/')}/records/{model_fp[:16]}/{slug(task)}-{run_key[:16]}")

    @property
    def path(self) -> str:
        """The URL (for messages)."""
        return self.url

    def __repr__(self) -> str:
        return f"FsRunDir({self.url!r})"

    def _glob(self, pattern: str) -> list[str]:
        self.fs.invalidate_cache(self.dir)
        return sorted(self.fs.glob(f"{self.dir}/{pattern}"))

    def parts(self) -> list[str]:
        return self._glob("part-*.parquet")

    def records_files(self) -> list[str]:
        return self._glob("records-*.parquet")

    def has_part(self, tag: str) -> bool:
        return bool(self._glob(f"part-*-{tag}.parquet"))

    def write_meta(self, meta: dict) -> None:
        put_bytes(self.fs, f"{self.dir}/{META_FILE}", json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))

    def read_meta(self) -> dict:
        try:
            meta = json.loads(self.fs.cat_file(f"{self.dir}/{META_FILE}").decode("utf-8"))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def siblings(self) -> list["FsRunDir"]:
        """Other run directories of the same model whose name starts like this one's (same task slug)."""
        parent, name = self.dir.rsplit("/", 1)
        prefix = name.rsplit("-", 1)[0] + "-"
        self.fs.invalidate_cache(parent)
        try:
            entries = self.fs.ls(parent, detail=True)
        except FileNotFoundError:
            return []
        found = []
        for entry in sorted(entries, key=lambda e: e["name"]):
            path = entry["name"].rstrip("/")
            base = path.rsplit("/", 1)[-1]
            if entry.get("type") == "directory" and base.startswith(prefix) and base != name:
                found.append(FsRunDir(self.fs.unstrip_protocol(path), self.fs, path))
        return found

    def _read_files(self) -> tuple[list[str], list[pa.Table]]:
        for _ in range(10):
            files = self.records_files() + self.parts()
            try:
                return files, [read_table(f, filesystem=self.fs) for f in files]
            except StoreError:
                self.fs.invalidate_cache(self.dir)
                if all(self.fs.exists(f) for f in files):
                    raise
                # a concurrent finalize merged a file and removed it: list again
        raise StoreError(f"{self.url}: its files kept changing while being read; re-run")

    def read(self, valid: dict[str, str] | None = None) -> pa.Table:
        """All rows written so far (records files and parts), without duplicates (as `RunDir.read`)."""
        return usable_rows(self._read_files()[1], valid)

    def append(self, table: pa.Table, tag: str | None = None) -> str:
        """Write rows as a new part named by `tag` (or a random id): see `RunDir.append`."""
        existing = self.parts()
        number = int(existing[-1].rsplit("/", 1)[-1].split("-")[1]) + 1 if existing else 0
        path = f"{self.dir}/{part_name(number, tag)}"
        put_bytes(self.fs, path, parquet_bytes(conform(table)))
        return path

    def finalize(self, valid: dict[str, str] | None = None, checkpoint: str | None = None) -> pa.Table:
        """Merge every file into one new records file, then remove the files merged (no lock: see above)."""
        files, tables = self._read_files()
        table = named(usable_rows(tables, valid), checkpoint)
        merged = (len(files) == 1 and files[0].rsplit("/", 1)[-1].startswith("records-")
                  and tables[0].num_rows == table.num_rows and not names_another(tables[0], checkpoint))
        if not merged and files:  # no files: nothing stored, nothing to merge
            target = f"{self.dir}/records-{uuid.uuid4().hex[:12]}.parquet"
            put_bytes(self.fs, target, parquet_bytes(with_unique_note(table, RUN_KEY_COLUMNS)))
            for path in files:  # every row of these is in `target` now
                try:
                    self.fs.rm_file(path)
                except FileNotFoundError:
                    pass  # a concurrent finalisation merged it first
            if _is_local(self.fs):
                from pathlib import Path

                from .tempfiles import remove_stale

                remove_stale(Path(self.dir))
        return table  # no files: usable_rows gave the empty table

    def remove_if_within(self, table: pa.Table) -> bool:
        """Run directories at a URL never had the layout this retires (store.RunDir.remove_if_within)."""
        return False


def open_run_dir(root, model_fp: str, task: str, run_key: str):
    """The run directory of an evaluation: a `store.RunDir` for a local path, an `FsRunDir` for a URL."""
    if is_url(str(root)):
        return FsRunDir.for_run(str(root), model_fp, task, run_key)
    from pathlib import Path

    from .store import RunDir

    return RunDir.for_run(Path(root), model_fp, task, run_key)


def write_text(url: str, text: str) -> None:
    """Write a small text file at a URL, whole or not at all."""
    fs, path = filesystem(url)
    put_bytes(fs, path, text.encode("utf-8"))


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)
