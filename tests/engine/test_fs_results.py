"""A results directory at a URL (fsspec: memory:// here; file:// in the Ray tests): the rows of a local
run, resume from parts, and finalisations without a lock that lose nothing."""

from __future__ import annotations

import uuid

import fsspec
import pandas as pd
import pyarrow as pa
import pytest

from forgetscope.backends.hf import HFBackend
from forgetscope.engine.evaluate import EvalSettings, evaluate, plan_task, prepare_checkpoint, score_chunk
from forgetscope.records.fsstore import FsRunDir, is_url, open_run_dir
from forgetscope.records.schema import to_table
from forgetscope.records.store import RunDir, StoreError

from ..helpers import mc_task, no_model_loads

SETTINGS = EvalSettings(batch_size=4, chunk_size=4)
COLUMNS = ["task", "item_id", "repeat", "item_hash", "prediction", "correct", "correct_norm", "loglikelihoods"]


@pytest.fixture
def url():
    root = f"memory://fs-{uuid.uuid4().hex[:8]}"
    yield root
    fsspec.filesystem("memory").rm(root.split("://", 1)[1], recursive=True)


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[COLUMNS].sort_values(["task", "item_id", "repeat"]).reset_index(drop=True)


def test_is_url_tells_urls_from_local_paths():
    assert is_url("s3://bucket/results") and is_url("file:///tmp/x") and is_url("memory://x")
    assert not is_url("results") and not is_url("/tmp/results") and not is_url("C:/results")


def test_evaluate_into_a_url_writes_the_rows_of_a_local_run(tmp_path, url, tiny_llama_dir, monkeypatch):
    tasks = [mc_task(10, "alpha"), mc_task(6, "beta", k=3)]
    local = evaluate(str(tiny_llama_dir), tasks, tmp_path, SETTINGS)
    remote = evaluate(str(tiny_llama_dir), tasks, url, SETTINGS)
    pd.testing.assert_frame_equal(_rows(local), _rows(remote))
    fs = fsspec.filesystem("memory")
    root = url.split("://", 1)[1]
    files = sorted(p.rsplit("/", 1)[-1].split("-")[0] for p in fs.find(root))
    assert files == ["meta.json", "meta.json", "records", "records"]  # parts merged: one records file per task

    no_model_loads(monkeypatch, "the model was loaded although every row is stored")
    again = evaluate(str(tiny_llama_dir), tasks, url, SETTINGS)
    pd.testing.assert_frame_equal(_rows(local), _rows(again))


def test_a_killed_run_at_a_url_is_resumed_from_its_parts(url, tiny_llama_dir):
    task = mc_task(12)
    ckpt, fp = prepare_checkpoint(str(tiny_llama_dir), SETTINGS)
    plan = plan_task(ckpt, fp, task, url, SETTINGS)
    backend = HFBackend.from_pretrained(str(tiny_llama_dir))
    (_, first), *_ = plan.chunks(4)
    score_chunk(plan, first, backend)  # then "killed": no finalisation
    assert len(plan.run.parts()) == 1 and not plan.run.records_files()
    seen = []
    original = backend.loglikelihood
    backend.loglikelihood = lambda requests: seen.append(len(requests)) or original(requests)
    out = evaluate(str(tiny_llama_dir), [task], url, SETTINGS, backend=backend)
    assert len(out) == 12 and sum(seen) == sum(i.n_choices for i in task.items[4:])
    assert not plan.run.parts() and len(plan.run.records_files()) == 1


def _table(ids: list[str]) -> pa.Table:
    rows = [{"checkpoint": "c", "model_fingerprint": "f", "task": "t", "task_fingerprint": "tf", "settings_hash": "s",
             "backend": "hf", "settings": "{}", "item_id": i, "item_hash": f"h{i}", "category": "", "n_choices": 2,
             "repeat": 0, "seed": 0, "gold": "a", "prompt": "p", "choices": ["a", "b"], "prediction": 0,
             "correct": True, "correct_norm": True, "correct_per_token": True, "loglikelihoods": [-1.0, -2.0],
             "is_greedy": [True, False], "choice_tokens": [1, 1], "choice_chars": [1, 1]} for i in ids]
    return to_table(rows)


def test_two_finalisations_at_once_lose_no_row(url, monkeypatch):
    """A lists and reads {x1, y1}; meanwhile B adds z1 and merges all three and deletes the parts; then A
    writes its records file (x1, y1) and deletes what it read. Every row survives, once per read."""
    path = f"{url}/records/f/t-0"
    first, second = FsRunDir(path), FsRunDir(path)
    first.append(_table(["x1"]))
    second.append(_table(["y1"]))
    original = FsRunDir._read_files

    def read_then_let_the_other_finish(self):
        found = original(self)
        if self is first:
            second.append(_table(["z1"]))
            assert sorted(second.finalize().column("item_id").to_pylist()) == ["x1", "y1", "z1"]
        return found

    monkeypatch.setattr(FsRunDir, "_read_files", read_then_let_the_other_finish)
    assert sorted(first.finalize().column("item_id").to_pylist()) == ["x1", "y1"]
    monkeypatch.setattr(FsRunDir, "_read_files", original)
    assert len(FsRunDir(path).records_files()) == 2 and not FsRunDir(path).parts()
    assert sorted(FsRunDir(path).read().column("item_id").to_pylist()) == ["x1", "y1", "z1"]
    assert sorted(FsRunDir(path).finalize().column("item_id").to_pylist()) == ["x1", "y1", "z1"]
    assert len(FsRunDir(path).records_files()) == 1


def test_a_tagged_part_is_found_again(url, tmp_path):
    for run in (FsRunDir(f"{url}/r"), RunDir(tmp_path / "r")):
        assert not run.has_part("0123456789ab")
        run.append(_table(["x1"]), tag="0123456789ab")
        assert run.has_part("0123456789ab") and not run.has_part("ba9876543210")
        with pytest.raises(ValueError, match="12 hex digits"):
            run.append(_table(["x2"]), tag="../escape")


def test_a_url_fsspec_cannot_open_is_one_clear_error():
    with pytest.raises(StoreError, match=r"nosuchscheme://x/records/.*: not a URL fsspec can open \(Protocol not known: nosuchscheme\)"):
        open_run_dir("nosuchscheme://x", "f" * 32, "t", "0" * 32)
