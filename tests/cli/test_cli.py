"""`forgetscope` end to end through the CLI on tiny local models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.records.store import load_records, save_records
from tests.helpers import no_model_loads

JSON_KEYS = ["n", "acc_before", "acc_after", "n_00", "n_01", "n_10", "n_11", "forgetting", "backward_transfer",
             "forgetting_chance", "forgetting_true", "backward_transfer_true", "forgetting_max",
             "backward_transfer_max", "mcnemar_p"]

runner = CliRunner()


@pytest.fixture()
def items_file(tmp_path):
    path = tmp_path / "quiz.jsonl"
    rows = []
    for i in range(30):
        choices = [f"word{i}", f"thing{i + 1}", "the river", "a stone"][: 2 + i % 3]
        rows.append({"id": f"q{i}", "question": f"Which one is number {i}?", "choices": choices,
                     "answer": i % len(choices), "category": "odd" if i % 2 else "even"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _compare(*args):
    result = runner.invoke(app, ["compare", *map(str, args)])
    return result


def test_compare_end_to_end(tmp_path, items_file, tiny_llama_dir, tiny_llama_dir_b):
    out = tmp_path / "out.json"
    result = _compare(tiny_llama_dir, tiny_llama_dir_b, "--task", items_file, "--output", tmp_path / "res",
                      "--json", out, "--show-items", "1to0", "--categories")
    assert result.exit_code == 0, result.output
    assert "quiz" in result.output and "overall" in result.output
    figures = json.loads(out.read_text())
    entry = figures["tasks"]["quiz"]
    assert list(entry)[: len(JSON_KEYS)] == JSON_KEYS
    # the numbers are the records' numbers
    records = load_records([tmp_path / "res"])
    a = records[records.checkpoint == str(tiny_llama_dir)].set_index("item_id")["correct"]
    b = records[records.checkpoint == str(tiny_llama_dir_b)].set_index("item_id")["correct"].reindex(a.index)
    assert entry["n"] == 30
    assert entry["n_10"] == int((a & ~b).sum()) and entry["n_01"] == int((~a & b).sum())
    assert entry["acc_before"] == pytest.approx(a.mean()) and entry["acc_after"] == pytest.approx(b.mean())
    assert entry["forgetting"] == pytest.approx((a & ~b).mean())
    assert set(figures["categories"]["quiz"]) == {"odd", "even"}
    forgotten = a[a & ~b].index.tolist()
    assert f"1to0 items: {len(forgotten)}" in result.output
    for item_id in forgotten[:3]:
        assert item_id in result.output


def test_second_compare_is_served_from_the_cache(tmp_path, items_file, tiny_llama_dir, tiny_llama_dir_b, monkeypatch):
    args = [tiny_llama_dir, tiny_llama_dir_b, "--task", items_file, "--output", tmp_path / "res"]
    assert _compare(*args).exit_code == 0
    no_model_loads(monkeypatch)
    again = _compare(*args)
    assert again.exit_code == 0, again.output


def test_item_mismatch_is_an_error_unless_identical_only(tmp_path, items_file, tiny_llama_dir, tiny_llama_dir_b):
    res = tmp_path / "res"
    assert runner.invoke(app, ["eval", str(tiny_llama_dir), "--task", str(items_file), "--output", str(res)]).exit_code == 0
    before = next(res.rglob("records.parquet"))
    # B is scored with another prompt template for its first 5 items: their hashes differ
    edited = items_file.with_name("quiz_edit") / "quiz.jsonl"
    edited.parent.mkdir()
    lines = items_file.read_text().splitlines()
    for i in range(5):
        row = json.loads(lines[i])
        row["question"] += " (edited)"
        lines[i] = json.dumps(row)
    edited.write_text("\n".join(lines) + "\n")
    result = _compare(before, tiny_llama_dir_b, "--task", edited, "--output", res)
    assert result.exit_code == 2
    assert "q0" in result.output and "--identical-only" in result.output
    result = _compare(before, tiny_llama_dir_b, "--task", edited, "--output", res, "--identical-only",
                      "--json", tmp_path / "o.json")
    assert result.exit_code == 0, result.output
    assert "dropped 5" in result.output
    assert json.loads((tmp_path / "o.json").read_text())["tasks"]["quiz"]["n"] == 25


def test_eval_writes_records_and_reports_accuracy(tmp_path, items_file, tiny_gpt2_dir):
    result = runner.invoke(app, ["eval", str(tiny_gpt2_dir), "--task", str(items_file), "--output", str(tmp_path),
                                 "--name", "gpt2-tiny", "--limit", "10"])
    assert result.exit_code == 0, result.output
    records = load_records([tmp_path])
    assert len(records) == 10 and set(records.checkpoint) == {"gpt2-tiny"}
    assert f"acc={records.correct.mean():.4f}" in result.output


@pytest.mark.parametrize("args,fragment", [
    (["eval", "MODEL", "--task", "missing.jsonl"], "missing.jsonl"),
    (["eval", "/no/such/model", "--task", "ITEMS"], "/no/such/model"),
    (["compare", "MODEL", "MODEL", "--task", "ITEMS", "--show-items", "sideways"], "1to0 or 0to1"),
])
def test_bad_input_is_one_clear_line(tmp_path, items_file, tiny_llama_dir, args, fragment):
    args = [str(tiny_llama_dir) if a == "MODEL" else str(items_file) if a == "ITEMS" else a for a in args]
    result = runner.invoke(app, args + ["--output", str(tmp_path)])
    assert result.exit_code == 2
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_tasks_lists_builtins():
    result = runner.invoke(app, ["tasks"])
    assert result.exit_code == 0
    for name in ("arc_easy", "mmlu", "gsm8k", "winogrande"):
        assert name in result.output


def test_help_does_not_import_torch():
    code = "import sys; from forgetscope.cli import app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fewshot_options_reach_the_prompt(tmp_path, items_file, tiny_llama_dir):
    shots = tmp_path / "shots.jsonl"
    shots.write_text(json.dumps({"id": "s0", "question": "Is this a shot?", "choices": ["yes", "no"], "answer": 0}) + "\n")
    result = runner.invoke(app, ["eval", str(tiny_llama_dir), "--task", str(items_file), "--output", str(tmp_path),
                                 "--limit", "2", "--num-fewshot", "1", "--fewshot-source", str(shots)])
    assert result.exit_code == 0, result.output
    prompts = load_records([tmp_path])["prompt"].tolist()
    assert all(p.startswith("Question: Is this a shot?\nAnswer: yes\n\nQuestion: Which one") for p in prompts)


def test_a_missing_records_path_is_named_as_missing(tmp_path):
    """A path that does not exist is not mistaken for a hub model id."""
    from forgetscope.engine.compare import CompareError, records_for
    from forgetscope.engine.evaluate import EvalSettings

    with pytest.raises(CompareError, match=r"results/records/abc: no such file or directory"):
        records_for(str(tmp_path / "results" / "records" / "abc"), [], tmp_path, EvalSettings())
    with pytest.raises(CompareError, match="org/model is a model: name the tasks"):
        records_for("org/model", [], tmp_path, EvalSettings())


def test_show_items_from_stored_records_reads_only_the_listed_rows(tmp_path, items_file, tiny_llama_dir,
                                                                   tiny_llama_dir_b):
    """Stored sides are read with only the analysis columns for the figures; the listed items' prompts and answers come from the
    files, and the listing equals the one made from freshly evaluated (full) records."""
    from forgetscope.records.store import load_item_rows

    res = tmp_path / "res"
    fresh = _compare(tiny_llama_dir, tiny_llama_dir_b, "--task", items_file, "--output", res,
                     "--show-items", "1to0", "--max-items", "3")
    assert fresh.exit_code == 0, fresh.output
    records = load_records([res])
    dirs = {}
    for name, frame in records.groupby("checkpoint", observed=True):
        dirs[name] = tmp_path / f"stored-{len(dirs)}" / "records.parquet"
        save_records(frame, dirs[name])
    stored = _compare(dirs[str(tiny_llama_dir)], dirs[str(tiny_llama_dir_b)], "--show-items", "1to0",
                      "--max-items", "3")
    assert stored.exit_code == 0, stored.output
    listing = fresh.output[fresh.output.index("1to0 items"):]
    assert listing == stored.output[stored.output.index("1to0 items"):]
    assert "Which one is number" in listing
    wanted = records[["task", "item_id"]].drop_duplicates().head(2)
    rows = load_item_rows([dirs[str(tiny_llama_dir)]], wanted)
    assert sorted(rows["item_id"]) == sorted(wanted["item_id"]) and "prompt" in rows.columns


def test_the_console_entry_point_exits_fast_with_everything_written(tmp_path, items_file, tiny_llama_dir):
    """A process that scored (torch loaded) skips the interpreter's teardown: its records, its
    printed summary (stdout to a file) and its exit code are all there."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "forgetscope.cli", "eval", str(tiny_llama_dir), "--task",
                           str(items_file), "--output", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "quiz: n=30" in done.stdout
    assert len(load_records([out])) == 30
    done = subprocess.run([sys.executable, "-m", "forgetscope.cli", "eval", str(tiny_llama_dir), "--task",
                           str(tmp_path / "missing.jsonl"), "--output", str(out)], capture_output=True, text=True)
    assert done.returncode != 0 and "missing.jsonl" in done.stderr


@pytest.mark.parametrize("code, status, printed", [(None, 0, ""), (0, 0, ""), (2, 2, ""), ("bad input", 1, "bad input")])
def test_exit_skips_teardown_only_when_safe(monkeypatch, capsys, code, status, printed):
    import threading

    from forgetscope.cli import common

    calls = []
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch", object()))
    monkeypatch.setattr(common.os, "_exit", lambda c: calls.append(("os._exit", c)))
    monkeypatch.setattr(common.atexit, "_run_exitfuncs", lambda: calls.append(("atexit",)))
    monkeypatch.delenv("FORGETSCOPE_FAST_EXIT", raising=False)
    common.exit_process(code)
    assert calls == [("atexit",), ("os._exit", status)]
    assert printed in capsys.readouterr().err

    calls.clear()
    monkeypatch.setenv("FORGETSCOPE_FAST_EXIT", "0")  # turned off: the ordinary exit
    with pytest.raises(SystemExit) as exc:
        common.exit_process(code)
    assert exc.value.code == status and not calls

    monkeypatch.delenv("FORGETSCOPE_FAST_EXIT")
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:  # another thread alive: Python must wait for it, so the ordinary exit
        with pytest.raises(SystemExit):
            common.exit_process(code)
    finally:
        release.set()
        worker.join()
    assert not calls
