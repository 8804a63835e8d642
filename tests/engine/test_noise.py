"""`forgetscope noise` on the tiny CPU model: batch size changes nothing; the --vary parser."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.cli.noise import parse_vary
from forgetscope.engine.noise import noise_floor
from forgetscope.engine.evaluate import EvalSettings

from ..helpers import mc_task


def test_parse_vary():
    assert parse_vary("batch_size=1,16") == ("batch_size", [1, 16])
    assert parse_vary("dtype=float32, bfloat16") == ("dtype", ["float32", "bfloat16"])
    assert parse_vary("backend=hf,vllm") == ("backend", ["hf", "vllm"])
    assert parse_vary("batch_size=auto,16") == ("batch_size", ["auto", 16])  # as --batch-size takes it
    for bad in ("batch_size=1", "temperature=0,1", "batch_size=a,b", "dtype"):  # batch_size=0: test_cli_bad_input
        with pytest.raises(ValueError):
            parse_vary(bad)


def test_batch_size_is_no_source_of_noise(tmp_path, tiny_llama_dir):
    table = noise_floor(str(tiny_llama_dir), [mc_task(40)], EvalSettings(batch_size=1), EvalSettings(batch_size=8),
                        tmp_path).set_index("task")
    assert table.loc["mc", "n"] == 40
    assert table.loc["mc", "n_01"] == table.loc["mc", "n_10"] == 0
    assert table.loc["mc", "max_abs_dll"] < 1e-4
    # each side scored into its own directory (batch size is not part of the cache key)
    assert (tmp_path / "a" / "records").exists() and (tmp_path / "b" / "records").exists()


def test_noise_command_writes_json(tmp_path, tiny_llama_dir):
    out = tmp_path / "noise.json"
    result = CliRunner().invoke(app, ["noise", str(tiny_llama_dir), "--task", _task_file(tmp_path),
                                      "--vary", "dtype=float32,bfloat16", "--output", str(tmp_path / "r"),
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "suggested" in result.output and "--flip-tolerance" in result.output  # a header on two lines
    data = json.loads(out.read_text())
    assert data["vary"] == {"dtype": ["float32", "bfloat16"]}
    rows = {row["task"]: row for row in data["tasks"]}
    assert rows["(all)"]["n"] == 30
    print(f"\ntiny llama, fp32 vs bf16 (CPU): flip rate {rows['(all)']['flip_rate']:.4f}, "
          f"max |dll| {rows['(all)']['max_abs_dll']:.3e}")
    assert rows["(all)"]["max_abs_dll"] > 0  # bf16 rounds: the two evaluations must differ
    bad = CliRunner().invoke(app, ["noise", str(tiny_llama_dir), "--task", "x.jsonl", "--vary", "seed=1,2"])
    assert bad.exit_code == 2 and "--vary takes KEY=A,B" in bad.output


def _task_file(tmp_path) -> str:
    path = tmp_path / "items.jsonl"
    lines = []
    for item in mc_task(30).items:
        lines.append(json.dumps({"id": item.item_id, "question": item.context, "choices": list(item.choices),
                                 "answer": item.gold[0]}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)
