"""Output that fits a terminal of 100 columns: no figure cut to `0.…`, labels instead of long paths, help
that reads when piped."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from tests.helpers import write_quiz

runner = CliRunner()
NARROW = {"COLUMNS": "100"}
ESSENTIAL = ("task", "N", "acc A → B", "1→0", "0→1", "F true", "BT true", " p ")


@pytest.fixture(scope="module")
def sides(tmp_path_factory, tiny_llama_dir, tiny_llama_dir_b):
    """Two checkpoints under long paths, and a task with a long name and categories."""
    root = tmp_path_factory.mktemp("width")
    deep = root / "experiments" / "2024-06-01-a-rather-long-experiment-directory-name" / "checkpoints"
    a, b = deep / "pretrained", deep / "finetuned-on-arithmetic"
    shutil.copytree(tiny_llama_dir, a)
    shutil.copytree(tiny_llama_dir_b, b)
    items = root / "arithmetic_and_riddles_long_task_name.jsonl"
    write_quiz(items, 24, categories=True)
    return a, b, items, root / "results"


def _run(*args, env=NARROW):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.output


def _fits(output: str) -> None:
    assert "…" not in output, output
    assert max(len(line) for line in output.splitlines()) <= 100, output


def test_compare_at_100_columns(sides):
    a, b, items, out = sides
    output = _run("compare", f"base={a}", b, "--task", items, "-o", out, "--categories")
    _fits(output)
    for header in ESSENTIAL:
        assert header in output
    assert "A = base   B = finetuned-on-arithmetic" in output  # a label and a short path, not two long paths
    assert "┃ F chance" not in output and "--wide: also F, F chance" in output


def test_compare_wide_shows_every_figure_whole(sides, tmp_path):
    a, b, items, out = sides
    output = _run("compare", a, b, "--task", items, "-o", out, "--wide", "--csv", tmp_path / "f.csv")
    assert "…" not in output
    for header in ("acc A", "acc B", "F chance", "F max", "BT", "McNemar p", "1→0 unstable"):
        assert header in output
    lines = (tmp_path / "f.csv").read_text().splitlines()
    assert lines[0].startswith("scope,task,category,n,acc_before,acc_after")
    assert [line.split(",")[0] for line in lines[1:]] == ["task", "category", "category", "overall"]


def test_sequence_noise_risk_eval_gate_at_100_columns(sides):
    a, b, items, out = sides
    sequence = _run("sequence", f"base={a}", f"tuned={b}", "--task", items, "-o", out)
    _fits(sequence)
    assert "0: base  →  1: tuned" in sequence and "forgetting" in sequence
    _fits(_run("noise", a, "--task", items, "--vary", "batch_size=1,4", "-o", out / "noise"))
    _fits(_run("risk", a, "--task", items, "-o", out))
    evaluated = _run("eval", a, "--task", items, "-o", out)
    _fits(evaluated)
    assert "n=24 " in evaluated  # a count, not 24.0
    gate = _run("gate", "--baseline", f"base={a}", "--candidate", f"tuned={b}", "--task", items, "-o", out)
    assert "`base` → `tuned`" in gate and "…" not in gate


@pytest.mark.parametrize("command", ["eval", "compare", "sequence", "noise", "gate", "risk"])
def test_help_piped_is_not_cut_and_has_a_vllm_panel(command, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("TERMINAL_WIDTH", raising=False)
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "…" not in result.output and "--apply-chat-template" in result.output
    assert "vLLM engine (--backend vllm)" in result.output
    assert max(len(line) for line in result.output.splitlines()) == 100
