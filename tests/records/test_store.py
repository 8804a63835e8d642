"""The records store: deduplication, column reads, uniqueness notes, round trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgetscope.records import store
from forgetscope.records import strings as _strings
from forgetscope.records.schema import ANALYSIS_COLUMNS, KEY_COLUMNS, to_table
from forgetscope.records.store import RunDir, dedupe, load_records, read_table, save_records

# Strings chosen to trip a word-wise hash: empty, shorter and longer than 8
# bytes, exactly 8 and 16, NUL bytes, multi-byte UTF-8, shared prefixes.
TRICKY = ["", "a", "a\x00", "\x00", "abcdefg", "abcdefgh", "abcdefghi", "abcdefghabcdefgh",
          "abcdefghabcdefgh ", "é", "é\x00", "mmlu/abstract_algebra/12", "mmlu/abstract_algebra/121"]


def _rows(keys: list[tuple[str, str, str, int]]) -> list[dict]:
    return [
        {"checkpoint": c, "task": t, "item_id": i, "repeat": r, "correct": n % 2 == 0, "item_hash": f"h{n}"}
        for n, (c, t, i, r) in enumerate(keys)
    ]


def _reference(table: pa.Table) -> pa.Table:
    keep = ~table.select(KEY_COLUMNS).to_pandas().duplicated(keep="first").to_numpy()
    return table.filter(pa.array(keep))


@pytest.fixture(autouse=True)
def fast_dedupe(monkeypatch):
    """Take the fast (integer code) route even for these small tables."""
    monkeypatch.setattr(store, "FAST_DEDUPE_ROWS", 0)


def test_dedupe_keeps_the_first_row_of_each_key():
    table = to_table(_rows([("c", "t", "x", 0), ("c", "t", "y", 0), ("c", "t", "x", 0), ("c", "t", "x", 1),
                            ("d", "t", "x", 0), ("c", "u", "x", 0), ("c", "t", "y", 0)]))
    out = dedupe(table)
    assert out.column("item_hash").to_pylist() == ["h0", "h1", "h3", "h4", "h5"]


@pytest.mark.parametrize("seed", range(20))
def test_dedupe_matches_pandas_on_tricky_strings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    keys = [
        (str(rng.choice(["a", "b", ""])), str(rng.choice(["t", "t\x00", "é"])),
         str(rng.choice(TRICKY)) + ("" if rng.random() < 0.5 else str(rng.integers(0, 3))), int(rng.integers(0, 2)))
        for _ in range(n)
    ]
    table = to_table(_rows(keys))
    if rng.random() < 0.5:  # several chunks, as after concatenating files
        table = pa.concat_tables([table.slice(0, n // 2), table.slice(n // 2)])
    assert dedupe(table).equals(_reference(table))
    assert store._key_codes(table, KEY_COLUMNS) is not None  # the fast route was taken
    # the same through dictionary-encoded key columns
    index = table.schema.get_field_index("task")
    encoded = table.set_column(index, "task", table.column("task").dictionary_encode())
    assert dedupe(encoded).column("item_hash").equals(_reference(table).column("item_hash"))


def test_text_codes_are_an_exact_factorisation():
    rng = np.random.default_rng(0)
    values = [str(v) for v in rng.choice(TRICKY * 3 + [f"id/{i}" for i in range(50)], 400)]
    salt = rng.integers(0, 3, 400)
    left, right = pa.array(values[:150]), pa.array(values[150:], pa.large_string())
    codes, n_distinct = _strings.text_codes([left, right], salt=salt)
    expected, uniques = pd.factorize(pd.Series([f"{v!r}|{s}" for v, s in zip(values, salt)]))
    assert n_distinct == len(uniques)
    # same partition of the rows
    assert len(set(zip(codes, expected))) == n_distinct


def test_text_codes_give_up_on_nulls():
    assert _strings.text_codes([pa.array(["a", None])]) is None


def test_run_dir_files_say_they_are_unique_and_load_skips_dedupe(tmp_path, monkeypatch):
    for task in ("t1", "t2"):
        run = RunDir(tmp_path / "res" / task)
        run.append(to_table(_rows([("c", task, "x", 0), ("c", task, "y", 0)])))
        run.append(to_table(_rows([("c", task, "x", 0)])))  # rescored: a duplicate
        run.finalize()
        note = store.unique_note(run.final)
        assert note == {"key": ["task", "item_id", "repeat"], "groups": [["c", task]]}

    calls = []
    monkeypatch.setattr(store, "dedupe", lambda table, *a: calls.append(1) or table)
    records = load_records([tmp_path / "res"])
    assert calls == [] and len(records) == 4
    # two files holding the same (checkpoint, task) are deduplicated after all
    (tmp_path / "res" / "copy").mkdir()
    pq.write_table(pq.read_table(tmp_path / "res" / "t1" / "records.parquet"),
                   tmp_path / "res" / "copy" / "records.parquet")
    load_records([tmp_path / "res"])
    assert calls == [1]


def test_load_records_dedupes_plain_files_and_reads_columns(tmp_path):
    rows = _rows([("c", "t", "x", 0), ("c", "t", "x", 0), ("c", "t", "y", 0)])
    rows[1]["item_hash"] = rows[0]["item_hash"]  # the same item twice (two versions would be refused)
    path = save_records(to_table(rows), tmp_path / "r.parquet")
    full = load_records([path])
    assert len(full) == 2 and list(full.columns) == store.COLUMNS
    assert isinstance(full["task"].dtype, pd.CategoricalDtype)  # low-cardinality text: categorical
    assert full["item_id"].tolist() == ["x", "y"]
    some = load_records([path], columns=ANALYSIS_COLUMNS)
    assert list(some.columns) == ANALYSIS_COLUMNS and len(some) == 2


def test_read_table_round_trip_and_foreign_files(tmp_path):
    table = to_table(_rows([("c", "t", "x", 0), ("c", "t", "y", 1)]))
    save_records(table, tmp_path / "a.parquet")
    assert read_table(tmp_path / "a.parquet").equals(table)
    assert read_table(tmp_path / "a.parquet", dictionary=True).column("task").type == pa.dictionary(pa.int32(), pa.string())
    # a foreign file with only some columns is conformed (defaults filled in)
    pq.write_table(table.select(["checkpoint", "task", "item_id", "correct"]), tmp_path / "b.parquet")
    for dictionary in (False, True):
        read = read_table(tmp_path / "b.parquet", dictionary=dictionary)
        assert read.schema.names == store.COLUMNS and read.num_rows == 2


def test_load_records_mixes_forgetscope_and_foreign_files(tmp_path):
    save_records(to_table(_rows([("c", "t", "x", 0), ("c", "t", "y", 0)])), tmp_path / "a.parquet")
    foreign = to_table(_rows([("c", "t", "x", 0), ("c", "u", "z", 0)])).select(["checkpoint", "task", "item_id", "correct"])
    pq.write_table(foreign, tmp_path / "b.parquet")
    records = load_records([tmp_path])
    assert records[["task", "item_id"]].astype(str).values.tolist() == [["t", "x"], ["t", "y"], ["u", "z"]]
    assert isinstance(records["checkpoint"].dtype, pd.CategoricalDtype)
