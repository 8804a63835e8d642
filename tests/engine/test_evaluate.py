"""The results directory is the cache: reuse, resume after a kill, fingerprints by content."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from forgetscope.backends.hf import HFBackend
from forgetscope.engine.evaluate import EvalSettings, evaluate
from forgetscope.engine.fingerprint import model_fingerprint
from forgetscope.records.store import load_records

from ..helpers import mc_task, no_model_loads

KEY = ["task", "item_id", "repeat"]


def _strip(frame: pd.DataFrame) -> pd.DataFrame:
    cols = ["task", "item_id", "repeat", "item_hash", "correct", "correct_norm", "prediction"]
    return frame[cols].sort_values(KEY).reset_index(drop=True)


def test_cached_rows_are_reused_without_loading_the_model(tmp_path, tiny_llama_dir, monkeypatch):
    task = mc_task(12)
    first = evaluate(str(tiny_llama_dir), [task], tmp_path, EvalSettings(batch_size=4))

    no_model_loads(monkeypatch, "the model was loaded although every row is cached")
    # batch size does not change scores, so it does not invalidate the cache
    again = evaluate(str(tiny_llama_dir), [task], tmp_path, EvalSettings(batch_size=2))
    pd.testing.assert_frame_equal(_strip(first), _strip(again))


def test_only_missing_items_are_scored(tmp_path, tiny_llama_dir):
    evaluate(str(tiny_llama_dir), [mc_task(12)], tmp_path)
    backend = HFBackend.from_pretrained(str(tiny_llama_dir))
    seen = []
    original = backend.loglikelihood
    backend.loglikelihood = lambda reqs: seen.append(len(reqs)) or original(reqs)
    bigger = mc_task(16)  # the first 12 items are identical
    out = evaluate(str(tiny_llama_dir), [bigger], tmp_path, backend=backend)
    assert len(out) == 16
    assert sum(seen) == sum(i.n_choices for i in bigger.items[12:])


def test_changed_settings_or_weights_are_not_reused(tmp_path, tiny_llama_dir, tiny_llama_dir_b):
    task = mc_task(6)
    evaluate(str(tiny_llama_dir), [task], tmp_path)
    evaluate(str(tiny_llama_dir), [task], tmp_path, EvalSettings(max_length=64))
    evaluate(str(tiny_llama_dir_b), [task], tmp_path)
    run_dirs = {p.parent for p in (tmp_path / "records").rglob("records.parquet")}
    assert len(run_dirs) == 3


def test_fingerprint_follows_content_not_path(tmp_path, tiny_llama_dir, tiny_llama_dir_b):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_llama_dir, copy)
    assert model_fingerprint(str(copy)) == model_fingerprint(str(tiny_llama_dir))
    assert model_fingerprint(str(tiny_llama_dir_b)) != model_fingerprint(str(tiny_llama_dir))
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert model_fingerprint(str(copy)) != model_fingerprint(str(tiny_llama_dir))


def test_resume_after_failure_mid_run(tmp_path, tiny_llama_dir):
    task = mc_task(20)
    reference = evaluate(str(tiny_llama_dir), [task], tmp_path / "ref")
    backend = HFBackend.from_pretrained(str(tiny_llama_dir))
    calls = {"n": 0}
    original = backend.loglikelihood

    def dies_on_third_chunk(requests):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return original(requests)

    backend.loglikelihood = dies_on_third_chunk
    settings = EvalSettings(chunk_size=4)
    with pytest.raises(KeyboardInterrupt):
        evaluate(str(tiny_llama_dir), [task], tmp_path / "run", settings, backend=backend)
    parts = list((tmp_path / "run").rglob("part-*.parquet"))
    assert len(parts) == 2  # two finished chunks are on disk
    assert len(load_records([tmp_path / "run"])) == 8
    resumed = evaluate(str(tiny_llama_dir), [task], tmp_path / "run", settings)
    pd.testing.assert_frame_equal(_strip(resumed), _strip(reference))
    assert not list((tmp_path / "run").rglob("part-*.parquet"))  # compacted


SCRIPT = """
import sys, time
from forgetscope.engine.evaluate import EvalSettings, evaluate
from forgetscope.backends.hf import HFBackend
sys.path.insert(0, {root!r})
from tests.helpers import mc_task
backend = HFBackend.from_pretrained({model!r})
original = backend.loglikelihood
def slow(reqs):
    out = original(reqs)
    time.sleep(0.4)
    return out
backend.loglikelihood = slow
evaluate({model!r}, [mc_task(40)], {out!r}, EvalSettings(chunk_size=4), backend=backend)
"""


def test_resume_after_sigkill(tmp_path, tiny_llama_dir):
    out = tmp_path / "killed"
    script = SCRIPT.format(root=str(Path(__file__).parents[2]), model=str(tiny_llama_dir), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.rglob("part-*.parquet"))) < 2:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = load_records([out])
    assert 0 < len(partial) < 40
    resumed = evaluate(str(tiny_llama_dir), [mc_task(40)], out, EvalSettings(chunk_size=4))
    reference = evaluate(str(tiny_llama_dir), [mc_task(40)], tmp_path / "ref")
    assert len(resumed) == 40 and not resumed.duplicated(KEY).any()
    pd.testing.assert_frame_equal(_strip(resumed), _strip(reference))


def test_multiple_choice_repeats_are_identical_rows(tmp_path, tiny_llama_dir):
    out = evaluate(str(tiny_llama_dir), [mc_task(5)], tmp_path, EvalSettings(repeats=3))
    assert len(out) == 15
    by_repeat = [out[out.repeat == r].sort_values("item_id")["loglikelihoods"].map(list).tolist() for r in range(3)]
    assert by_repeat[0] == by_repeat[1] == by_repeat[2]


def test_records_rows_carry_what_analysis_needs(tmp_path, tiny_llama_dir):
    task = mc_task(6)
    out = evaluate(str(tiny_llama_dir), [task], tmp_path)
    row = out.set_index("item_id").loc["mc-1"]
    item = task.items[1]
    assert row.item_hash == item.item_hash and row.n_choices == item.n_choices
    assert row.gold == "1" and list(row.choices) == list(item.choices)
    assert row.correct == (row.prediction in item.gold)
    assert list(row.choice_chars) == [len(c) for c in item.choices]


def test_copied_checkpoint_reuses_rows_under_its_new_name(tmp_path, tiny_llama_dir, monkeypatch):
    task = mc_task(6)
    evaluate(str(tiny_llama_dir), [task], tmp_path / "res")
    copy = tmp_path / "copy"
    shutil.copytree(tiny_llama_dir, copy)
    no_model_loads(monkeypatch)
    again = evaluate(str(copy), [task], tmp_path / "res")
    assert set(again["checkpoint"]) == {str(copy)}
    assert set(load_records([tmp_path / "res"])["checkpoint"]) == {str(copy)}


def test_changed_item_is_rescored_and_the_old_version_kept_apart(tmp_path, tiny_llama_dir):
    from forgetscope.records.store import StoreError
    from forgetscope.tasks.base import Task, multiple_choice_item

    task = mc_task(4)
    evaluate(str(tiny_llama_dir), [task], tmp_path)
    changed = list(task.items)
    changed[0] = multiple_choice_item("mc-0", "Question: something else?\nAnswer:", ["a", "b"], 1)
    backend = HFBackend.from_pretrained(str(tiny_llama_dir))
    seen = []
    original = backend.loglikelihood
    backend.loglikelihood = lambda reqs: seen.append(len(reqs)) or original(reqs)
    out = evaluate(str(tiny_llama_dir), [Task("mc", changed)], tmp_path, backend=backend)
    assert sum(seen) == 2  # only the changed item (2 choices) is scored; the other three rows are reused
    assert len(out) == 4 and out.set_index("item_id").loc["mc-0", "item_hash"] == changed[0].item_hash
    run_dirs = sorted(p.parent for p in tmp_path.rglob("records.parquet"))
    assert len(run_dirs) == 2  # both versions are kept, each in its own run directory
    hashes = [set(load_records([d])["item_hash"].astype(str)) for d in run_dirs]
    assert {frozenset(h) for h in hashes} == {frozenset(i.item_hash for i in task.items),
                                              frozenset(i.item_hash for i in changed)}
    # reading both at once would have to pick one version of mc-0: refused, naming both directories
    with pytest.raises(StoreError, match=r"item 'mc-0' has two versions .*mc-.* and .*mc-"):
        load_records([tmp_path])
