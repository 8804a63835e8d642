"""Bad input through the CLI: one line `error: ...` naming the file (and byte offset or field), exit code 2.

Each case here used to end in a traceback (exit 1), in silence, or in a message cut short.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from forgetscope.cli import app

runner = CliRunner()
ITEMS = ('{"id": "q1", "question": "2 + 3?", "choices": ["4", "5", "6"], "answer": 1}\n'
         '{"id": "q2", "question": "Capital of France?", "choices": ["Rome", "Paris"], "answer": "Paris"}\n')


def fails(args: list, *expected: str) -> str:
    """Run the CLI; it must exit 2 with one `error:` line holding every expected part."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for part in expected:
        assert part in lines[0], (part, lines[0])
    return lines[0]


@pytest.fixture()
def items(tmp_path: Path) -> Path:
    path = tmp_path / "quiz.jsonl"
    path.write_text(ITEMS)
    return path


# ---------------------------------------------------------------- bytes that are not UTF-8

@pytest.mark.parametrize(("name", "data", "offset", "line"), [
    ("quiz.jsonl", ITEMS.encode().replace(b"Capital", b"Capit\xe0l"), 107, 2),
    ("quiz.csv", b'id,question,choices,answer\nq1,caf\xe9?,"[""a"", ""b""]",0\n', 33, 2),
    ("quiz.json", b'[{"question": "\xff", "choices": ["a", "b"], "answer": 0}]', 15, 1),
    ("spec.yaml", b"name: quiz\npath: quiz.jsonl\ndescription: \"Quiz \xa9 2024\"\n", 47, 3),
])
def test_task_file_not_utf8_names_file_byte_offset_and_line(tmp_path, items, name, data, offset, line):
    path = tmp_path / name
    path.write_bytes(data)
    assert data[offset] >= 0x80 and data[:offset].count(b"\n") == line - 1  # the expected position, by hand
    fails(["eval", "no-model-needed", "--task", path, "--output", tmp_path / "res"],
          name, f"not UTF-8 text: byte 0x{data[offset]:02x} at byte offset {offset} (line {line})",
          "save the file as UTF-8")


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_training_config_not_utf8(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    path.write_bytes(b"name: caf\xe9\n" if suffix == ".yaml" else b'name = "caf\xe9"\n')
    fails(["train", path, "--output", tmp_path / "run"], f"run{suffix}", "byte 0xe9 at byte offset",
          "(line 1)")


def test_training_source_file_not_utf8(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"first document\n\nsecond \x93quoted\x94 one\n")
    config = {"name": "t", "seq_len": 16, "model": {"hidden": 16, "layers": 1, "heads": 2, "context": 32},
              "sources": {"notes": {"type": "text", "path": "notes.txt"}},
              "stages": [{"name": "pre", "kind": "pretrain", "mixture": {"notes": 1}, "steps": 1}]}
    (tmp_path / "run.yaml").write_text(json.dumps(config))
    fails(["train", tmp_path / "run.yaml", "--output", tmp_path / "run", "--device", "cpu"],
          "sources.notes:", "notes.txt: not UTF-8 text: byte 0x93 at byte offset 23 (line 3)")


def test_lmeval_samples_not_utf8(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    sample = {"doc_id": 0, "arguments": [["Q: caf\u00e9?", " a"], ["Q: caf\u00e9?", " b"]],
              "filtered_resps": [["-1.0", "False"], ["-2.0", "False"]], "target": "0", "acc": 1.0}
    data = (json.dumps(sample, ensure_ascii=False) + "\n").encode("utf-8").replace("é".encode(), b"\xe9")
    (logs / "samples_quiz_2026-01-01T00-00-00.jsonl").write_bytes(data)
    fails(["import", "lm-eval", logs, "--output", tmp_path / "res"],
          "samples_quiz_2026-01-01T00-00-00.jsonl: not UTF-8 text", f"at byte offset {data.index(0xe9)} (line 1)")


def test_not_utf8_through_the_installed_entry_point(tmp_path):
    """The console script itself: exit status 2 and one stderr line, no traceback."""
    path = tmp_path / "quiz.jsonl"
    path.write_bytes(b'{"question": "\xff", "choices": ["a", "b"], "answer": 0}\n')
    done = subprocess.run([sys.executable, "-c", "from forgetscope.cli import main; main()", "eval", "m",
                           "--task", str(path), "--output", str(tmp_path / "res")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: {path}: not UTF-8 text: byte 0xff at byte offset 14 (line 1); save the file as UTF-8"]


# ---------------------------------------------------------------- values that were read silently

def test_boolean_answer_is_refused(tmp_path):
    path = tmp_path / "quiz.jsonl"
    path.write_text('{"question": "Is the sky blue?", "choices": ["no", "yes"], "answer": true}\n')
    fails(["eval", "m", "--task", path, "--output", tmp_path / "res"],
          "quiz.jsonl line 1", "answer is true (a boolean)", "0-based index")


def test_null_choice_is_refused(tmp_path):
    path = tmp_path / "quiz.jsonl"
    path.write_text('{"question": "q", "choices": ["a", null, "c"], "answer": 0}\n')
    fails(["eval", "m", "--task", path, "--output", tmp_path / "res"], "quiz.jsonl line 1", "choice 1 is null")


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("--batch-size", "0", "--batch-size must be a whole number of at least 1"),
    ("--batch-size", "-4", "got -4"),
    ("--max-length", "1", "--max-length 1 is too short"),
    ("--max-length", "0", "give at least 2 tokens"),
])
def test_batch_size_and_max_length_out_of_range_are_refused(tmp_path, items, option, value, expected):
    fails(["eval", "no-model-needed", "--task", items, "--output", tmp_path / "res", option, value], expected)


def test_noise_refuses_a_batch_size_of_zero(tmp_path, items):
    fails(["noise", "m", "--task", items, "--output", tmp_path / "res", "--vary", "batch_size=0,16"],
          "--batch-size must be a whole number of at least 1")


# ---------------------------------------------------------------- models and tokenizers

def test_model_directory_without_tokenizer_says_so_completely(tmp_path, items, tiny_llama_dir):
    model = tmp_path / "no_tokenizer"
    model.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_llama_dir / name, model / name)
    line = fails(["eval", model, "--task", items, "--output", tmp_path / "res"],
                 f"{model} has no tokenizer (none of tokenizer.json", "tokenizer.save_pretrained(DIR)")
    assert not line.rstrip().endswith(":")


def test_truncated_safetensors_names_the_file(tmp_path, items, tiny_llama_dir):
    model = tmp_path / "cut"
    shutil.copytree(tiny_llama_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    fails(["eval", model, "--task", items, "--output", tmp_path / "res"],
          f"{weights} is not a complete safetensors file", "copy or download it again")


def test_training_tokenizer_path_that_does_not_exist(tmp_path):
    config = {"name": "t", "seq_len": 16, "model": {"hidden": 16, "layers": 1, "heads": 2, "context": 32},
              "tokenizer": {"path": "no/such/tokenizer"}, "sources": {"general": {"type": "synthetic", "docs": 20}},
              "stages": [{"name": "pre", "kind": "pretrain", "mixture": {"general": 1}, "steps": 1}]}
    (tmp_path / "run.yaml").write_text(json.dumps(config))
    fails(["train", tmp_path / "run.yaml", "--output", tmp_path / "run", "--device", "cpu"],
          f"tokenizer.path: {tmp_path / 'no/such/tokenizer'}: no such directory", "remove tokenizer.path")


def test_training_tokenizer_path_without_tokenizer_files(tmp_path):
    (tmp_path / "empty_tokenizer").mkdir()
    config = {"name": "t", "seq_len": 16, "model": {"hidden": 16, "layers": 1, "heads": 2, "context": 32},
              "tokenizer": {"path": "empty_tokenizer"}, "sources": {"general": {"type": "synthetic", "docs": 20}},
              "stages": [{"name": "pre", "kind": "pretrain", "mixture": {"general": 1}, "steps": 1}]}
    (tmp_path / "run.yaml").write_text(json.dumps(config))
    fails(["train", tmp_path / "run.yaml", "--output", tmp_path / "run", "--device", "cpu"],
          "tokenizer.path:", "has no tokenizer", "remove tokenizer.path to train one")


def test_training_model_init_that_does_not_exist(tmp_path):
    config = {"name": "t", "seq_len": 16, "model": {"hidden": 16, "layers": 1, "heads": 2, "context": 32,
                                                     "init": str(tmp_path / "no_such_checkpoint")},
              "sources": {"general": {"type": "synthetic", "docs": 20}},
              "stages": [{"name": "pre", "kind": "pretrain", "mixture": {"general": 1}, "steps": 1}]}
    (tmp_path / "run.yaml").write_text(json.dumps(config))
    fails(["train", tmp_path / "run.yaml", "--output", tmp_path / "run", "--device", "cpu"],
          "model.init:", "no_such_checkpoint", "does not exist")


def test_sweep_with_an_evaluation_batch_size_of_zero_stops_before_training(tmp_path):
    run = {"name": "t", "seq_len": 16, "model": {"hidden": 16, "layers": 1, "heads": 2, "context": 32},
           "sources": {"general": {"type": "synthetic", "docs": 20}},
           "stages": [{"name": "pre", "kind": "pretrain", "mixture": {"general": 1}, "steps": 1}]}
    (tmp_path / "sweep.yaml").write_text(json.dumps({"base": run, "grid": {"seed": [0]}, "eval": {"batch_size": 0}}))
    fails(["sweep", tmp_path / "sweep.yaml", "--output", tmp_path / "sweep", "--device", "cpu"],
          "eval.batch_size: must be positive, got 0")
    assert not (tmp_path / "sweep").exists()


# ---------------------------------------------------------------- lighteval columns of another type

def _lighteval_copy(tmp_path: Path, change) -> Path:
    source = next((Path(__file__).parents[1] / "importers" / "data" / "lighteval" / "model_a")
                  .glob("details_quiz@0_*.parquet"))
    rows = pq.read_table(source).to_pylist()
    for row in rows:
        change(row)
    path = tmp_path / "details_quiz|0_2026-01-01T00-00-00.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_lighteval_metric_column_of_text(tmp_path):
    path = _lighteval_copy(tmp_path, lambda row: row.update(metric=json.dumps(row["metric"])))
    fails(["import", "lighteval", path, "--output", tmp_path / "res"],
          str(path), "column metric holds string values", "struct")


def test_lighteval_metric_values_of_text_are_not_read_as_true(tmp_path):
    """acc "0" is a non-empty string: read with bool() it was "correct"."""
    path = _lighteval_copy(tmp_path, lambda row: row.update(
        metric={name: str(value) for name, value in row["metric"].items()}))
    fails(["import", "lighteval", path, "--output", tmp_path / "res"], "row 0: metric acc is '", "expected a number")


# ---------------------------------------------------------------- compare with nothing flipped

def test_compare_identical_sides_lists_no_items_and_writes_the_json(tmp_path, items, tiny_llama_dir):
    res = tmp_path / "res"
    assert runner.invoke(app, ["eval", str(tiny_llama_dir), "--task", str(items), "--output", str(res)]).exit_code == 0
    figures = tmp_path / "x.json"
    result = runner.invoke(app, ["compare", str(res), str(res), "--show-items", "1to0", "--json", str(figures)])
    assert result.exit_code == 0, result.output
    assert "1to0 items: none (no item flipped 1→0)" in result.output
    quiz = json.loads(figures.read_text())["tasks"]["quiz"]
    assert quiz["n"] == 2 and quiz["n_10"] == 0 and quiz["n_01"] == 0 and quiz["forgetting"] == 0
