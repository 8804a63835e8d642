"""The records store: Parquet files under a results directory, which is also the cache.

Layout::

    RESULTS/records/<model fingerprint>/<task>-<run key>/
        meta.json                  who, what and how (fingerprints, settings)
        part-000000-<id>.parquet   rows written as they are scored (a killed run keeps them)
        records.parquet            all rows, once the run finished (parts are then removed)
        .lock                      held while parts are merged into records.parquet

A run key hashes (model fingerprint, task name, task content, settings), so
the same evaluation finds its rows again, and two different tasks that share a
name (`a/quiz.jsonl`, `b/quiz.jsonl`) never share a directory. The directory
depends on the weights, not the path: a copied checkpoint reuses it. Every
file is written to a temporary name (`tempfiles.temp_sibling`) and renamed, so
a kill never leaves a half-written file that a later run would trust; the
next finalisation of that directory removes the temporaries of dead writers.
Writers of one directory never overwrite each other's parts (each part has its
own name), and merging them into records.parquet holds the directory's lock,
so concurrent runs on one output keep every row.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import strings
from .codes import dense_codes
from .margins import list_columns_for, margin_column, margins_of_table
from .memory import return_free_memory, system_memory_pool
from .schema import COLUMNS, KEY_COLUMNS, SCHEMA, SchemaError, conform, conform_columns, empty_table
from .tempfiles import remove_stale, temp_sibling

RECORDS_FILE = "records.parquet"
META_FILE = "meta.json"
LOCK_FILE = ".lock"
#: how long a finalisation waits for another process's before giving up (it takes seconds)
LOCK_TIMEOUT_SECONDS = 600


class StoreError(ValueError):
    """A records file or directory could not be read."""


def slug(text: str, limit: int = 48) -> str:
    """A filesystem-safe, readable version of a name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/")).strip("._") or "x"
    return cleaned[-limit:]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


#: File metadata key: the columns on which a file's rows are known unique (JSON),
#: and which (checkpoint, task) pairs it holds, so a loader can skip deduplication.
UNIQUE_KEY = b"forgetscope_unique"
#: String columns with a handful of values per file: read dictionary-encoded
#: (pandas: categorical), which costs nothing to decode and little memory.
DICTIONARY_COLUMNS = [
    "checkpoint", "model_fingerprint", "task", "task_fingerprint", "settings_hash",
    "category", "backend", "settings",
]


def write_table(table: pa.Table, path: Path, unique_on: list[str] | None = None) -> None:
    """Write a records table to Parquet atomically.

    `unique_on`: the caller guarantees no two rows share these columns (e.g.
    a run directory deduplicated on task, item_id, repeat); recorded in the
    file so that `load_records` need not check again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    pq.write_table(with_unique_note(table, unique_on), tmp, compression="zstd")
    os.replace(tmp, path)


def with_unique_note(table: pa.Table, unique_on: list[str] | None) -> pa.Table:
    """`table` carrying the note that its rows are unique on `unique_on` (see `write_table`)."""
    if unique_on is not None:
        groups = _groups(table)
        if groups is not None:
            note = json.dumps({"key": list(unique_on), "groups": groups}).encode()
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), UNIQUE_KEY: note})
    return table


def _groups(table: pa.Table, limit: int = 1000) -> list[list[str]] | None:
    """The distinct (checkpoint, task) pairs of a table, or None if more than `limit`."""
    if table.num_rows == 0:
        return []
    pairs = table.select(["checkpoint", "task"]).group_by(["checkpoint", "task"]).aggregate([])
    if pairs.num_rows > limit:
        return None
    return sorted([str(c), str(t)] for c, t in zip(pairs.column(0).to_pylist(), pairs.column(1).to_pylist()))


def read_table(path: Path | str, columns: list[str] | None = None, *, dictionary: bool = False,
               filters: list | None = None, filesystem=None) -> pa.Table:
    """Read a records file (all columns, conformed to the schema, or just `columns`).

    dictionary=True reads the DICTIONARY_COLUMNS dictionary-encoded, as
    Parquet stores them (no decoding, a fraction of the memory). `filters`
    (pyarrow's form) keeps only the matching rows. `filesystem` (pyarrow's or
    fsspec's) reads `path` from there (records.fsstore).
    """
    wanted = columns if columns else None
    read_dictionary = [c for c in DICTIONARY_COLUMNS if columns is None or c in columns] if dictionary else None
    try:
        if wanted:  # a column the file lacks gets its neutral value below, as a whole-file read gives it
            present = set(pq.read_schema(path, filesystem=filesystem).names)
            wanted = [c for c in wanted if c in present]
        table = pq.read_table(path, columns=wanted, read_dictionary=read_dictionary, filters=filters,
                              filesystem=filesystem)
    except FileNotFoundError:
        raise StoreError(f"{path}: file not found") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise StoreError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}); delete it and re-run to rescore"
        ) from None
    if columns:  # e.g. item_id written as large_string: the same types as every other file
        try:
            table = conform_columns(table, columns, str(path))
        except SchemaError as exc:
            raise StoreError(str(exc)) from None
        for name in DICTIONARY_COLUMNS if dictionary else ():  # a filled-in column, encoded as read ones are
            if name in table.column_names and not pa.types.is_dictionary(table.schema.field(name).type):
                index = table.schema.get_field_index(name)
                table = table.set_column(index, name, table.column(name).dictionary_encode())
        return table
    if _conforms(table.schema):
        return table
    if dictionary:  # conform casts to the plain types; decode first
        table = pa.table({n: c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                          for n, c in zip(table.column_names, table.columns)})
    try:
        table = conform(table, str(path))
    except SchemaError as exc:
        raise StoreError(str(exc)) from None
    if dictionary:  # encoded again, as a conforming file reads, so that the two concatenate
        for name in DICTIONARY_COLUMNS:
            index = table.schema.get_field_index(name)
            table = table.set_column(index, name, table.column(name).dictionary_encode())
    return table


def _conforms(schema: pa.Schema) -> bool:
    """Whether a table already has exactly the schema's columns and types (dictionary-encoded allowed)."""
    if schema.names != SCHEMA.names:
        return False
    for field, wanted in zip(schema, SCHEMA):
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if not kind.equals(wanted.type):
            return False
    return True


def unique_note(path: Path) -> dict | None:
    """The file's uniqueness note (see `write_table`), or None."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return None
    note = metadata.get(UNIQUE_KEY)
    try:
        return json.loads(note) if note else None
    except ValueError:
        return None


class RunDir:
    """The directory holding one (checkpoint, task content, settings) evaluation."""

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

    def read_meta(self) -> dict:
        try:
            meta = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def siblings(self) -> list["RunDir"]:
        """Other run directories of the same model whose name starts like this one's (same task slug)."""
        prefix = self.path.name.rsplit("-", 1)[0] + "-"
        parent = self.path.parent
        if not parent.is_dir():
            return []
        return [RunDir(p) for p in sorted(parent.iterdir())
                if p.is_dir() and p.name.startswith(prefix) and p != self.path]

    @contextmanager
    def lock(self):
        """Held while parts are merged (finalize) or the directory is removed: one process at a time."""
        from filelock import FileLock, Timeout

        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self.path / LOCK_FILE), timeout=LOCK_TIMEOUT_SECONDS):
                yield
        except Timeout:
            raise StoreError(f"{self.path}: another process has been finalising it for {LOCK_TIMEOUT_SECONDS} s; "
                             "wait for it or stop it, then re-run") from None

    def read(self, valid: dict[str, str] | None = None) -> pa.Table:
        """All rows written so far (final file and any parts), without duplicates.

        With `valid` (item_id → current item_hash), rows of those items whose
        hash differs are stale (the item changed) and are left out.
        """
        for _ in range(10):
            files = ([self.final] if self.final.exists() else []) + self.parts()
            try:
                tables = [read_table(f) for f in files]
                break
            except StoreError:
                if all(f.exists() for f in files):
                    raise
                # a concurrent finalize merged a part into records.parquet and removed it: list again
        else:
            raise StoreError(f"{self.path}: its files kept changing while being read; re-run")
        return usable_rows(tables, valid)

    def append(self, table: pa.Table, tag: str | None = None) -> Path:
        """Write rows as a new part; its name is this writer's alone, so concurrent writers never clash.

        `tag` (12 hex digits, e.g. a hash of the unit of work) names the part instead of a random id,
        so a writer that is retried can see with `has_part` that its rows are already stored."""
        existing = self.parts()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        path = self.path / part_name(number, tag)
        write_table(conform(table), path)
        return path

    def has_part(self, tag: str) -> bool:
        """Whether a part written with this tag exists (it is removed once merged into records.parquet)."""
        return self.path.is_dir() and any(self.path.glob(f"part-*-{tag}.parquet"))

    def finalize(self, valid: dict[str, str] | None = None, checkpoint: str | None = None) -> pa.Table:
        """Merge parts into records.parquet (atomically), then remove the parts.

        Stale rows (see `read`) are dropped; with `checkpoint`, every row takes
        that name, so one run directory never holds two names for one model.
        Holds the directory's lock: a concurrent finalisation waits, then merges
        what this one wrote with its own parts (neither's rows are lost). Leftover
        temporaries of killed writers are removed here.
        """
        if self.final.exists() and not self.parts():  # finished and cached: nothing to merge, no lock
            table = self.read(valid)
            if not self._outdated(table, checkpoint):
                return table
        with self.lock():
            remove_stale(self.path)
            parts = self.parts()
            table = self.read(valid)
            if parts or self._outdated(table, checkpoint):
                table = named(table, checkpoint)
                write_table(table, self.final, unique_on=RUN_KEY_COLUMNS)  # read() deduplicated it
                for part in parts:
                    part.unlink(missing_ok=True)
        return table

    def _outdated(self, table: pa.Table, checkpoint: str | None) -> bool:
        """Whether records.parquet must be (re)written to hold exactly `table` under `checkpoint`."""
        if not self.final.exists() or table.num_rows != pq.ParquetFile(self.final).metadata.num_rows:
            return True
        return names_another(table, checkpoint)

    def remove_if_within(self, table: pa.Table) -> bool:
        """Delete this directory if every row it holds (item, repeat, item_hash) is also in `table`.

        Nothing is lost: used to retire a run directory of the layout before task
        contents were part of the run key, once its rows live on in the new one.
        """
        with self.lock():
            mine = self.read()
            have = set(zip(*(table.column(c).to_pylist() for c in ("item_id", "repeat", "item_hash"))))
            if not all(key in have for key in zip(*(mine.column(c).to_pylist()
                                                    for c in ("item_id", "repeat", "item_hash")))):
                return False
            shutil.rmtree(self.path, ignore_errors=True)
        return True


def part_name(number: int, tag: str | None = None) -> str:
    """`part-000003-<tag or a random id>.parquet`."""
    if tag is not None and not re.fullmatch(r"[0-9a-f]{12}", tag):
        raise ValueError(f"a part tag is 12 hex digits, got {tag!r}")
    return f"part-{number:06d}-{tag or uuid.uuid4().hex[:12]}.parquet"


def named(table: pa.Table, checkpoint: str | None) -> pa.Table:
    """`table` with every row under the name `checkpoint` (None: as it is)."""
    if checkpoint is None or not table.num_rows:
        return table
    index = table.schema.get_field_index("checkpoint")
    return table.set_column(index, "checkpoint", pa.array([checkpoint] * table.num_rows, pa.string()))


def names_another(table: pa.Table, checkpoint: str | None) -> bool:
    """Whether some row of `table` holds a checkpoint name other than `checkpoint` (None: never)."""
    return (checkpoint is not None and table.num_rows > 0
            and pc.any(pc.not_equal(table.column("checkpoint"), checkpoint)).as_py())


def usable_rows(tables: list[pa.Table], valid: dict[str, str] | None = None) -> pa.Table:
    """The rows of a run directory's files that a run may reuse, without duplicates.

    With `valid` (item_id → current item_hash), rows of those items whose hash differs are
    stale (the item changed) and are left out; so are rows with non-finite scores."""
    if not tables:
        return empty_table()
    table = pa.concat_tables(tables)
    if valid:
        ids = table.column("item_id").to_pylist()
        hashes = table.column("item_hash").to_pylist()
        keep = [valid.get(i, h) == h for i, h in zip(ids, hashes)]
        if not all(keep):
            table = table.filter(pa.array(keep))
    broken = non_finite_rows(table)
    if broken.any():  # a NaN score is no answer (older versions stored them): rescored, never reused
        table = table.filter(pa.array(~broken))
    return dedupe(table, RUN_KEY_COLUMNS)


def non_finite_rows(table: pa.Table) -> np.ndarray:
    """Per row: is any of its log-likelihoods NaN, infinite or missing (null, as pandas writes a NaN)?
    A broken model's scores: no answer can be read from them."""
    bad = np.zeros(table.num_rows, dtype=bool)
    if "loglikelihoods" not in table.column_names:
        return bad
    offset = 0
    for chunk in table.column("loglikelihoods").chunks:
        values = pc.list_flatten(chunk)
        if not pa.types.is_floating(values.type):
            values = values.cast(pa.float64())
        broken = pc.invert(pc.fill_null(pc.is_finite(values), False))
        if pc.any(broken).as_py():
            parents = pc.list_parent_indices(chunk).to_numpy()
            bad[offset + parents[broken.to_numpy(zero_copy_only=False)]] = True
        offset += len(chunk)
    return bad


#: Within one run directory (one model), a row is identified without the checkpoint name.
RUN_KEY_COLUMNS = ["task", "item_id", "repeat"]


#: From this many rows on, dedupe takes the integer-code route (below: pandas).
FAST_DEDUPE_ROWS = 50_000


def dedupe(table: pa.Table, key: list[str] = KEY_COLUMNS) -> pa.Table:
    """Keep the first row of each key (default: checkpoint, task, item_id, repeat).

    Keys are turned into exact integer codes (dictionary indices, integers,
    hashed-and-verified strings: see records.strings), so ten million rows
    take about a second rather than the many seconds of a pandas
    `duplicated` over string columns.
    """
    if table.num_rows == 0:
        return table
    # Small tables: pandas is quick enough, and the fast route's import is not needed.
    codes = _key_codes(table, key) if table.num_rows >= FAST_DEDUPE_ROWS else None
    if codes is None:  # the exact string route, slow but always right
        keep = ~table.select(key).to_pandas().duplicated(keep="first").to_numpy()
    else:
        codes, n_distinct = codes
        if n_distinct == table.num_rows:
            return table
        keep = ~pd.Series(codes).duplicated(keep="first").to_numpy()
    return table if keep.all() else table.filter(pa.array(keep))


def _key_codes(table: pa.Table, key: list[str]) -> tuple[np.ndarray, int] | None:
    """Dense codes (0..U-1) of the key columns taken together, or None when not exact here."""

    codes, size = np.zeros(table.num_rows, dtype=np.int64), 1
    texts = []
    for name in key:
        column = table.column(name)
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = pa.table({name: column}).unify_dictionaries().column(0)
            n_values = len(column.chunk(0).dictionary) if column.num_chunks else 0
            indices = pa.chunked_array([c.indices for c in column.chunks], type=kind.index_type)
            values = indices.fill_null(n_values).to_numpy().astype(np.int64)
            n_values += 1
        elif pa.types.is_integer(kind) or pa.types.is_boolean(kind):
            if column.null_count:
                return None
            values = column.to_numpy().astype(np.int64)
            low = int(values.min())
            values -= low
            n_values = int(values.max()) + 1
            if n_values > 1 << 32:
                values, n_values = dense_codes(values)
        elif strings.is_text(column):
            texts.append(column)
            continue
        else:
            return None
        if size * n_values >= 1 << 62:
            codes, size = dense_codes(codes)
        codes = codes * n_values + values
        size *= n_values
    for column in texts:  # each hashed together with the codes so far, so the result stays dense
        found = strings.text_codes([column], salt=codes if size > 1 else None)
        if found is None:
            return None
        codes, size = found
    if not texts:
        codes, size = dense_codes(codes)
    return codes, size


def records_files(path: Path) -> list[Path]:
    """Parquet records under `path` (a file, a results directory or a run directory)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise StoreError(f"{path}: no such file or directory")
    return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith("."))


def load_records(paths: Iterable[Path | str], columns: list[str] | None = None,
                 margins: str | None = None) -> pd.DataFrame:
    """Read records from files or directories into one DataFrame (deduplicated).

    `columns` reads only those (e.g. schema.ANALYSIS_COLUMNS for a
    comparison: a fraction of the time and memory). `margins` (a metric:
    acc, acc_norm, acc_per_token) adds each row's decision margin as column
    `margin_<correct column>` (records.margins), computed file by file from
    the list columns in Arrow, which are then dropped unless `columns` asks
    for them: 10M rows' log-likelihoods as Python lists would take ~10 GB.
    The low-cardinality text
    columns (DICTIONARY_COLUMNS: checkpoint, task, category, ...) come back
    as pandas categoricals. Rows are deduplicated on the key columns (first
    row wins) unless the files say they are unique and hold different
    (checkpoint, task) pairs, which is what forgetscope's own run
    directories write.
    """
    files = [f for p in paths for f in records_files(Path(p))]
    if not files:
        raise StoreError("no records found; run `forgetscope eval` first or check the path")
    with system_memory_pool():
        frame = _read_frame(files, columns, margins)
    return_free_memory()  # after _read_frame's temporaries are gone
    return frame


def load_item_rows(paths: Iterable[Path | str], items: pd.DataFrame) -> pd.DataFrame:
    """Every column, but only the rows of the given (task, item_id) pairs: what a list of a few
    items shows (prompts, answers), read without loading millions of rows' text and lists."""
    files = [f for p in paths for f in records_files(Path(p))]
    if not files or items.empty:
        return pd.DataFrame(columns=KEY_COLUMNS)
    ids = sorted({str(i) for i in items["item_id"]})
    wanted = set(zip(items["task"].astype(str), items["item_id"].astype(str)))
    parts = []
    with system_memory_pool():
        for f in files:
            table = read_table(f, filters=[("item_id", "in", ids)])
            if table.num_rows:
                parts.append(table.to_pandas(types_mapper=_ARROW_TEXT.get))
    return_free_memory()
    if not parts:
        return pd.DataFrame(columns=KEY_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    keep = [(t, i) in wanted for t, i in zip(frame["task"].astype(str), frame["item_id"].astype(str))]
    return frame[keep].drop_duplicates(KEY_COLUMNS, ignore_index=True)


def _read_frame(files: list[Path], columns: list[str] | None, margins: str | None = None) -> pd.DataFrame:
    if margins is None:
        tables = [_refuse_non_finite(f, read_table(f, columns, dictionary=True)) for f in files]
    else:  # file by file: one file's per-choice lists in memory at a time

        lists = list_columns_for(margins)
        wanted = None if columns is None else list(dict.fromkeys(columns + lists))
        drop = [] if columns is None else [c for c in lists if c not in columns]
        tables = []
        for table in (_refuse_non_finite(f, read_table(f, wanted, dictionary=True)) for f in files):
            margin = pa.array(margins_of_table(table, margins), type=pa.float64())
            tables.append(table.drop_columns(drop).append_column(margin_column(margins), margin))
    sizes = [t.num_rows for t in tables]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    del tables
    if (columns is None or all(c in columns for c in KEY_COLUMNS)) and not _known_unique(files):
        deduped = dedupe(table)
        if deduped.num_rows < table.num_rows:
            _refuse_two_versions(table, files, sizes)
        table = deduped
    return table.to_pandas(types_mapper=_ARROW_TEXT.get)


def _refuse_non_finite(path: Path, table: pa.Table) -> pa.Table:
    """`table` (all of `path`'s rows), unless a row's log-likelihoods are NaN or inf: then StoreError.

    Its `correct` would be a broken model's accident (a NaN picks choice 0), so no figure or gate
    decision may use it. Without the column in `table`, the file's column is read by itself, a
    row group at a time (bounded memory)."""
    if "loglikelihoods" in table.column_names:
        bad = non_finite_rows(table)
    else:
        try:
            handle = pq.ParquetFile(path)
            if "loglikelihoods" not in handle.schema_arrow.names:
                return table
            bad = np.concatenate([non_finite_rows(pa.table({"loglikelihoods": batch.column(0)}))
                                  for batch in handle.iter_batches(columns=["loglikelihoods"], batch_size=1 << 18)]
                                 or [np.zeros(0, dtype=bool)])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise StoreError(f"{path}: column loglikelihoods is unreadable ({str(exc).splitlines()[0]})") from None
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise StoreError(
            f"{path}: {int(bad.sum())} row(s) have non-finite log-likelihoods (NaN, inf or missing), first: task "
            f"{table.column('task')[first].as_py()!r}, item {table.column('item_id')[first].as_py()!r}; a broken "
            "model scored them, so their right or wrong means nothing and no figure can be decided. Re-evaluate "
            "that checkpoint (eval refuses such scores) or remove those rows")
    return table


def _refuse_two_versions(table: pa.Table, files: list[Path], sizes: list[int]) -> None:
    """StoreError when rows of one (checkpoint, task, item, repeat) disagree on a known item_hash.

    Duplicate rows are normal (the same items under two task contents, e.g. with and without
    --limit) and the first one is kept, but only when they describe the same item: two
    versions of an item (an edited task file, or two different tasks sharing a name) leave
    no right choice, so reading fails and says where they are.
    """
    if "item_hash" not in table.column_names:
        return
    frame = table.select(KEY_COLUMNS + ["item_hash"]).to_pandas()
    frame["file"] = np.repeat(np.arange(len(sizes)), sizes)
    frame = frame[frame.duplicated(KEY_COLUMNS, keep=False) & (frame["item_hash"].astype(str) != "")]
    versions = frame.groupby(KEY_COLUMNS, observed=True, sort=False)["item_hash"].nunique()
    clashing = versions[versions > 1]
    if clashing.empty:
        return
    checkpoint, task, item_id, _ = clashing.index[0]
    where = frame.set_index(KEY_COLUMNS).loc[clashing.index[:1], "file"].unique()
    places = " and ".join(str(files[i].parent if files[i].name == RECORDS_FILE else files[i]) for i in where[:2])
    raise StoreError(
        f"checkpoint {checkpoint!r}, task {task!r}: item {item_id!r} has two versions (different item_hash) "
        f"in {places} ({len(clashing)} items in all): the task changed between evaluations, or two different "
        "tasks share the name; remove the outdated run directory (its meta.json names the task file) "
        "or give one task another name"
    )


#: Text columns stay Arrow `string` in pandas (pd.ArrowDtype): no copy into
#: 64-bit offsets, as pandas' default "str" dtype would make of every value.
_ARROW_TEXT = {pa.string(): pd.ArrowDtype(pa.string())}


def _known_unique(files: list[Path]) -> bool:
    """Whether the rows of these files together are unique on KEY_COLUMNS, by their notes alone."""
    seen: set[tuple[str, str]] = set()
    for path in files:
        note = unique_note(path)
        if not note or not set(note.get("key", [])) <= set(KEY_COLUMNS):
            return False
        groups = {tuple(g) for g in note.get("groups", [])}
        if groups & seen:  # two files hold the same (checkpoint, task): rows may repeat
            return False
        seen |= groups
    return True


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
