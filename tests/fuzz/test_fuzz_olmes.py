"""OLMES predictions and metrics files under any input: records or a LogFormatError (one line)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from forgetscope.importers import read_olmes

from ..importers.conftest import DATA
from .strategies import FUZZ, any_bytes, json_values, to_json, write
from .test_fuzz_importers import imported, one_field_changed, replaced

OLMES = DATA / "olmes" / "model_a"
PREDICTIONS = "task-000-quiz_even-predictions.jsonl"
METRICS = "task-000-quiz_even-metrics.json"
MC_LINE = json.loads((OLMES / PREDICTIONS).read_text(encoding="utf-8").splitlines()[0])
GEN_LINE = json.loads((OLMES / "task-002-arith_gen-predictions.jsonl").read_text(encoding="utf-8").splitlines()[0])
METRICS_JSON = json.loads((OLMES / METRICS).read_text(encoding="utf-8"))


@FUZZ
@given(data=any_bytes((to_json(MC_LINE) + "\n").encode()))
def test_olmes_prediction_bytes(data):
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), PREDICTIONS, data)
        imported(read_olmes, Path(folder))


@FUZZ
@given(lines=st.lists(st.one_of(one_field_changed(MC_LINE), one_field_changed(GEN_LINE), json_values),
                      min_size=1, max_size=3))
@example(lines=[replaced(MC_LINE, ("model_output", 1, "num_chars"), None)])
@example(lines=[replaced(MC_LINE, ("metrics", "acc_raw"), "1")])
@example(lines=[replaced(GEN_LINE, ("metrics", "exact_match"), [1])])
@example(lines=[replaced(MC_LINE, ("label",), True)])
def test_olmes_predictions_of_any_shape(lines):
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), PREDICTIONS, "".join(to_json(line) + "\n" for line in lines))
        imported(read_olmes, Path(folder))


@FUZZ
@given(metrics=st.one_of(one_field_changed(METRICS_JSON), json_values), data=st.none() | any_bytes(b"{}"))
@example(metrics={**METRICS_JSON, "num_instances": 1.5}, data=None)
@example(metrics={**METRICS_JSON, "task_name": ["x"]}, data=None)
def test_olmes_metrics_file_of_any_shape(metrics, data):
    with tempfile.TemporaryDirectory() as folder:
        write(Path(folder), PREDICTIONS, to_json(MC_LINE) + "\n")
        write(Path(folder), METRICS, data if data is not None else to_json(metrics))
        imported(read_olmes, Path(folder))
