"""Finished rows are never lost: run keys by task content, concurrent writers, leftovers of killed runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from forgetscope.engine.evaluate import evaluate
from forgetscope.records.schema import to_table
from forgetscope.records.store import RunDir, StoreError, load_records
from forgetscope.tasks import load_task
from forgetscope.records.tempfiles import temp_sibling

from ..helpers import mc_task, no_model_loads

ROOT = Path(__file__).parents[2]


def _write_quiz(path: Path, offset: int) -> Path:
    """Six items with ids 0..5 (the row numbers): two files collide on ids, not on content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"question": f"Which word is number {i + offset}?", "choices": ["river", "stone", "cloud"],
             "answer": (i + offset) % 3} for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_two_task_files_with_one_stem_keep_their_own_rows(tmp_path, tiny_llama_dir, monkeypatch):
    a = load_task(str(_write_quiz(tmp_path / "a" / "quiz.jsonl", 0)))
    b = load_task(str(_write_quiz(tmp_path / "b" / "quiz.jsonl", 100)))
    assert a.name == b.name == "quiz" and a.fingerprint() != b.fingerprint()
    out = tmp_path / "res"
    first = evaluate(str(tiny_llama_dir), [a], out)
    evaluate(str(tiny_llama_dir), [b], out)
    assert len(list(out.rglob("records.parquet"))) == 2
    no_model_loads(monkeypatch)  # a's rows are still there: nothing to score
    again = evaluate(str(tiny_llama_dir), [a], out)
    assert again.sort_values("item_id")["item_hash"].tolist() == first.sort_values("item_id")["item_hash"].tolist()
    assert again.sort_values("item_id")["prompt"].tolist() == first.sort_values("item_id")["prompt"].tolist()
    # the output now holds two tasks called quiz for one checkpoint: analysis cannot tell them apart
    with pytest.raises(StoreError, match=r"task 'quiz': item '0' has two versions.*give one task another name"):
        load_records([out])


def test_a_limited_run_and_a_grown_task_reuse_rows_and_read_back_consistently(tmp_path, tiny_llama_dir, monkeypatch):
    out = tmp_path / "res"
    full = evaluate(str(tiny_llama_dir), [mc_task(12)], out)
    no_model_loads(monkeypatch)
    first8 = evaluate(str(tiny_llama_dir), [mc_task(8)], out)  # a --limit: rows from the full run
    assert first8["loglikelihoods"].map(list).tolist() == full.head(8)["loglikelihoods"].map(list).tolist()
    stored = load_records([out])  # the same rows twice, the same item: read once
    assert len(stored) == 12 and not stored.duplicated(["task", "item_id", "repeat"]).any()


def _as_old_layout(out: Path) -> Path:
    """Rename the run directory and its meta.json to the layout before task contents were in the run key."""
    (run_dir,) = [p.parent for p in out.rglob("records.parquet")]
    meta = json.loads((run_dir / "meta.json").read_text())
    family = meta.pop("family_key")
    meta["run_key"] = family
    old = run_dir.parent / f"mc-{family[:16]}"
    run_dir.rename(old)
    (old / "meta.json").write_text(json.dumps(meta))
    return old


def test_a_cache_of_the_old_layout_is_reused_then_retired(tmp_path, tiny_llama_dir, monkeypatch):
    out = tmp_path / "res"
    reference = evaluate(str(tiny_llama_dir), [mc_task(6)], out)
    old = _as_old_layout(out)
    no_model_loads(monkeypatch)
    again = evaluate(str(tiny_llama_dir), [mc_task(6)], out)
    assert again["loglikelihoods"].map(list).tolist() == reference["loglikelihoods"].map(list).tolist()
    assert not old.exists()  # every row of it lives on in the new directory
    assert len(list(out.rglob("records.parquet"))) == 1 and len(load_records([out])) == 6


def test_an_old_layout_cache_with_rows_the_new_run_lacks_is_kept(tmp_path, tiny_llama_dir, monkeypatch):
    out = tmp_path / "res"
    evaluate(str(tiny_llama_dir), [mc_task(6)], out)
    old = _as_old_layout(out)
    no_model_loads(monkeypatch)
    assert len(evaluate(str(tiny_llama_dir), [mc_task(4)], out)) == 4
    assert old.exists()  # items 4 and 5 exist only there
    assert len(load_records([out])) == 6


def _rows(ids: list[str]) -> pa.Table:
    return to_table([{"checkpoint": "c", "task": "t", "item_id": i, "repeat": 0, "correct": True,
                      "item_hash": f"h{i}"} for i in ids])


def test_a_slow_finalize_does_not_drop_a_concurrent_writers_rows(tmp_path, monkeypatch):
    """A reads the parts, is held up; B writes a part and finalises; A then writes what it read."""
    path = tmp_path / "records" / "f" / "t-0"
    writer_a, writer_b = RunDir(path), RunDir(path)
    writer_a.append(_rows(["x1", "x2"]))
    a_has_read, b_finished = threading.Event(), threading.Event()
    original = RunDir.read

    def read_then_stall(self, valid=None):
        table = original(self, valid)
        if threading.current_thread().name == "writer-a":
            a_has_read.set()
            b_finished.wait(timeout=1.0)  # B cannot finish while A holds the lock: A goes on after 1 s
        return table

    monkeypatch.setattr(RunDir, "read", read_then_stall)
    thread = threading.Thread(target=writer_a.finalize, name="writer-a")
    thread.start()
    assert a_has_read.wait(timeout=10)
    writer_b.append(_rows(["y1"]))
    writer_b.finalize()
    b_finished.set()
    thread.join(timeout=10)
    monkeypatch.setattr(RunDir, "read", original)
    assert sorted(RunDir(path).read().column("item_id").to_pylist()) == ["x1", "x2", "y1"]
    assert not RunDir(path).parts()


def test_writers_that_list_the_same_parts_never_overwrite_each_other(tmp_path, monkeypatch):
    path = tmp_path / "records" / "f" / "t-0"
    monkeypatch.setattr(RunDir, "parts", lambda self: [])  # both listed before either wrote
    first = RunDir(path).append(_rows(["x1"]))
    second = RunDir(path).append(_rows(["y1"]))
    monkeypatch.undo()
    assert first != second and first.exists() and second.exists()
    assert sorted(RunDir(path).finalize().column("item_id").to_pylist()) == ["x1", "y1"]


def _temp_of_a_dead_process(target: Path) -> Path:
    """Create the temporary a writer of `target` leaves when killed (named after its own, now dead, pid)."""
    code = ("import sys; from pathlib import Path; from forgetscope.records.tempfiles import temp_sibling; "
            "p = temp_sibling(Path(sys.argv[1])); "
            "(p.mkdir() if sys.argv[2] == 'dir' else p.write_bytes(b'half a file')); print(p)")
    kind = "dir" if target.suffix == "" else "file"
    done = subprocess.run([sys.executable, "-c", code, str(target), kind], capture_output=True, text=True,
                          check=True, env={"PYTHONPATH": str(ROOT)})
    return Path(done.stdout.strip())


def test_the_next_run_removes_temporaries_of_killed_writers_only(tmp_path, tiny_llama_dir):
    from forgetscope.backends.hf import HFBackend
    from forgetscope.engine.evaluate import EvalSettings

    out, task = tmp_path / "res", mc_task(6)
    backend = HFBackend.from_pretrained(str(tiny_llama_dir))
    original, calls = backend.loglikelihood, []

    def killed_in_the_second_chunk(requests):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return original(requests)

    backend.loglikelihood = killed_in_the_second_chunk
    with pytest.raises(KeyboardInterrupt):
        evaluate(str(tiny_llama_dir), [task], out, EvalSettings(chunk_size=3), backend=backend)
    (run_dir,) = {p.parent for p in out.rglob("part-*.parquet")}
    # what a kill in the middle of writing leaves, named after the (now dead) writer
    dead_part = _temp_of_a_dead_process(run_dir / "part-000001-0123456789ab.parquet")
    dead_meta = _temp_of_a_dead_process(run_dir / "meta.json")
    pid = dead_part.name.split(".")[-2].split("@")[0]
    dead_old = run_dir / f".part-000001.parquet.{pid}.tmp"  # as an older version named them
    dead_old.write_bytes(b"from an older version")
    live = temp_sibling(run_dir / "part-000008-0123456789ab.parquet")  # this process: alive
    live.write_bytes(b"being written")
    foreign = run_dir / ".part-000009.parquet.1@another-host.tmp"  # cannot be checked from here: kept
    foreign.write_bytes(b"someone else's")
    assert len(evaluate(str(tiny_llama_dir), [task], out)) == 6  # the next run of the same command
    left = {p.name for p in run_dir.iterdir()}
    assert dead_part.name not in left and dead_meta.name not in left and dead_old.name not in left
    assert live.name in left and foreign.name in left
    assert "records.parquet" in left and not [n for n in left if n.startswith("part-")]


def test_a_resumed_training_run_removes_temporaries_of_the_killed_one(tiny_tokenizer_dir, tmp_path):
    from forgetscope.train.config import parse_run_config
    from forgetscope.train.runner import train_run

    from ..train.test_runner import tiny_config

    config = parse_run_config(tiny_config(tiny_tokenizer_dir))
    run = tmp_path / "run"
    train_run(config, run, device="cpu", log=None, max_steps=9)
    dead_dir = _temp_of_a_dead_process(run / "checkpoints" / "pretrain-step000016")
    (dead_dir / "model.safetensors").write_bytes(b"half")
    dead_state = _temp_of_a_dead_process(run / "state" / "pretrain-step000016.safetensors")
    pid = dead_dir.name.split(".")[-2].split("@")[0]
    old_style = run / "checkpoints" / f"pretrain-step000016.tmp{pid}"  # how temporaries were named before
    shutil.copytree(dead_dir, old_style)
    live = temp_sibling(run / "state" / "pretrain-step000024.safetensors")
    live.write_bytes(b"being written by a live process")
    train_run(config, run, device="cpu", log=None, max_steps=1)
    assert not dead_dir.exists() and not dead_state.exists() and not old_style.exists()
    assert live.exists()
