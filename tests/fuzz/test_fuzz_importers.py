"""lm-eval samples and lighteval details under any input: records or a LogFormatError.

Besides raw and damaged bytes, the strongest inputs are real log rows (the
committed fixtures) with one field, at any depth, replaced by a value of
another type: what a newer tool version, a hand edit or a conversion writes.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import assume, example, given
from hypothesis import strategies as st

from forgetscope.importers import ImportedRun, LogFormatError, read_lighteval, read_lmeval

from ..importers.conftest import LIGHTEVAL, LMEVAL
from .strategies import FUZZ, any_bytes, json_values, one_line, to_json, write

SAMPLES = "samples_quiz_2026-01-01T00-00-00.000000.jsonl"
RESULTS = "results_2026-01-01T00-00-00.000000.json"


def _first_lines(pattern: str) -> list[dict]:
    files = sorted((LMEVAL / "model_a").glob(pattern))
    return [json.loads(f.read_text(encoding="utf-8").splitlines()[0]) for f in files]


MC_SAMPLE, GEN_SAMPLE = _first_lines("samples_quiz_even_*.jsonl")[0], _first_lines("samples_arith_gen_*.jsonl")[0]
RESULTS_JSON = json.loads(next((LMEVAL / "model_a").glob("results_*.json")).read_text(encoding="utf-8"))
LIGHTEVAL_ROWS = [pq.read_table(f).to_pylist()[0] for f in sorted((LIGHTEVAL / "model_a").glob("*.parquet"))]


def paths(value, prefix=()):
    """Every (nested) key path of a JSON-like value."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths(inner, prefix + (key,))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from paths(inner, prefix + (index,))


def replaced(value, path, new):
    """A deep copy of `value` with the element at `path` replaced by `new` (or deleted when new is ...)."""
    if not path:
        return new
    out = copy.deepcopy(value)
    holder = out
    for key in path[:-1]:
        holder = holder[key]
    if new is ...:
        del holder[path[-1]]
    else:
        holder[path[-1]] = new
    return out


@st.composite
def one_field_changed(draw, valid):
    """`valid` with one field, at any depth, given a value of any type or removed."""
    path = draw(st.sampled_from(list(paths(valid))))
    new = draw(st.one_of(json_values, st.just(...))) if path else draw(json_values)
    return replaced(valid, path, new)


def imported(run_reader, path: Path) -> ImportedRun | None:
    try:
        run = run_reader(path)
    except LogFormatError as exc:
        one_line(exc)
        return None
    assert len(run.records) and run.records["item_id"].notna().all()
    return run


# ------------------------------------------------------------------ lm-evaluation-harness

@FUZZ
@given(data=any_bytes((to_json(MC_SAMPLE) + "\n").encode()))
@example(data=(to_json(MC_SAMPLE) + "\n").encode().replace(b"Which", b"Wh\xe9ch"))
def test_lmeval_sample_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), SAMPLES, data)
        imported(read_lmeval, Path(folder))


@FUZZ
@given(samples=st.lists(st.one_of(one_field_changed(MC_SAMPLE), one_field_changed(GEN_SAMPLE), json_values),
                        min_size=1, max_size=3))
@example(samples=[{**MC_SAMPLE, "filtered_resps": [[None, "False"]] * 4}])
@example(samples=[{**GEN_SAMPLE, "exact_match": "yes"}])
@example(samples=[replaced(MC_SAMPLE, ("arguments", "gen_args_3"), None)])
def test_lmeval_samples_of_any_shape(samples):
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), SAMPLES, "".join(to_json(s) + "\n" for s in samples))
        imported(read_lmeval, Path(folder))


@FUZZ
@given(results=st.one_of(one_field_changed({k: RESULTS_JSON[k] for k in ("group_subtasks", "configs", "config")}),
                         json_values),
       data=st.none() | any_bytes(b"{}"))
@example(results={"group_subtasks": ["quiz"]}, data=None)
@example(results={"configs": {"quiz": "x"}}, data=None)
@example(results=None, data=b'{"config": 1, "x": "\xff"}')
def test_lmeval_results_file_of_any_shape(results, data):
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), SAMPLES, to_json(MC_SAMPLE) + "\n")
        write(Path(folder), RESULTS, data if data is not None else to_json(results))
        imported(read_lmeval, Path(folder))


# ------------------------------------------------------------------ lighteval

def _parquet(folder: Path, rows: list[dict]) -> Path:
    assume(all(isinstance(row, dict) for row in rows))  # a Parquet row is a record
    path = folder / "details_quiz|0_2026-01-01T00-00-00.parquet"
    try:
        pq.write_table(pa.Table.from_pylist(rows), path)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        assume(False)  # rows Arrow cannot store in one column type: no such file can exist
    return path


@FUZZ
@given(data=any_bytes((LIGHTEVAL / "model_a").glob("details_quiz*.parquet").__next__().read_bytes()[:400]))
def test_lighteval_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        imported(read_lighteval, write(Path(folder), "details_quiz|0_x.parquet", data))


@FUZZ
@given(rows=st.lists(st.one_of(*(one_field_changed(row) for row in LIGHTEVAL_ROWS)), min_size=1, max_size=2))
@example(rows=[{**LIGHTEVAL_ROWS[1], "metric": json.dumps(LIGHTEVAL_ROWS[1]["metric"])}])
@example(rows=[{**LIGHTEVAL_ROWS[1], "metric": {"acc": "0", "acc_norm": "1"}}])
@example(rows=[replaced(LIGHTEVAL_ROWS[1], ("model_response", "logprobs"), ["-1", "-2", "-3", "-4"])])
@example(rows=[replaced(LIGHTEVAL_ROWS[1], ("doc", "query"), b"\xff")])
def test_lighteval_rows_of_any_shape(rows):
    with tempfile.TemporaryDirectory() as folder:
        imported(read_lighteval, _parquet(Path(folder), rows))


@FUZZ
@given(results=json_values)
def test_lighteval_results_json_of_any_shape(results):
    """The results_*.json beside the details only names the model: any content still imports."""
    with tempfile.TemporaryDirectory() as folder:
        details = _parquet(Path(folder), [LIGHTEVAL_ROWS[1]])
        write(Path(folder), "results_2026-01-01T00-00-00.json", to_json(results))
        assert imported(read_lighteval, details) is not None
