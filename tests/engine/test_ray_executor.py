"""The Ray executor on a real local Ray cluster (two 1-CPU workers): the same rows as a local run,
a killed worker, a killed driver, a deterministic failure.

The cluster (conftest.py) is a `ray start --head` in its own session. Units note their start and
end in a trace directory and wait at their start while `hold` exists there
(ray_executor.TRACE_ENV), which is how a test kills a worker mid-unit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from forgetscope.backends.base import NonFiniteScoreError  # noqa: E402
from forgetscope.engine.evaluate import Checkpoint, EvalSettings, evaluate  # noqa: E402
from forgetscope.engine.executor import EvalJob  # noqa: E402
from forgetscope.engine.ray_executor import TRACE_ENV, RayExecutor  # noqa: E402
from forgetscope.records.store import load_records  # noqa: E402

from ..helpers import mc_task  # noqa: E402
from .conftest import REPO, env_for  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]

KEY = ["checkpoint", "task", "item_id", "repeat"]
SETTINGS = EvalSettings(batch_size=4, chunk_size=4)


def _tasks():
    return [mc_task(12, "alpha"), mc_task(8, "beta", k=3)]  # 3 + 2 units per checkpoint


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_llama_dir, tiny_llama_dir_b):
    """Records of both checkpoints, evaluated locally (the rows every Ray run must reproduce)."""
    out = tmp_path_factory.mktemp("local")
    for name, model in (("a", tiny_llama_dir), ("b", tiny_llama_dir_b)):
        evaluate(Checkpoint(str(model), name=name), _tasks(), out, SETTINGS)
    return _sorted(load_records([out]))


def _jobs(model_a, model_b):
    return [EvalJob(Checkpoint(str(model_a), name="a"), _tasks()), EvalJob(Checkpoint(str(model_b), name="b"), _tasks())]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(**{c: frame[c].astype(str) for c in ("checkpoint", "task", "item_id")})
    return frame.sort_values(KEY).reset_index(drop=True)


def _assert_same_rows(records: pd.DataFrame, reference: pd.DataFrame) -> None:
    records = _sorted(records)
    assert not records.duplicated(KEY).any()
    assert records[KEY].equals(reference[KEY])
    for column in ("prediction", "correct", "correct_norm", "correct_per_token", "item_hash", "model_fingerprint",
                   "settings_hash", "n_choices"):
        assert records[column].astype(str).tolist() == reference[column].astype(str).tolist(), column
    # the same decisions; log-likelihoods equal up to float summation order (1 thread vs 2)
    for mine, theirs in zip(records["loglikelihoods"], reference["loglikelihoods"]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def _notes(trace: Path, what: str) -> list[dict]:
    return [{**json.loads(p.read_text()), "tag": p.name.split(".")[0]} for p in sorted(trace.glob(f"*.{what}"))]


class Recorder:
    def __init__(self):
        self.started, self.reports = None, []

    def start(self, units, items):
        self.started = (units, items)

    def advance(self, report):
        self.reports.append(report)


def test_ray_run_writes_the_rows_of_a_local_run(cluster, trace, reference, tmp_path, tiny_llama_dir,
                                                tiny_llama_dir_b):
    progress = Recorder()
    executor = RayExecutor(address=cluster[0], workers=2, progress=progress)
    frames = executor.evaluate(_jobs(tiny_llama_dir, tiny_llama_dir_b), tmp_path, SETTINGS)
    stored = load_records([tmp_path])
    _assert_same_rows(stored, reference)
    _assert_same_rows(pd.concat(frames, ignore_index=True), reference)
    assert not list(tmp_path.rglob("part-*.parquet"))  # every (checkpoint, task) was merged
    assert progress.started == (10, 40) and len(progress.reports) == 10
    assert sum(r.items for r in progress.reports) == 40
    workers = {(r.node, r.worker) for r in executor.reports}
    assert len(workers) == 2  # both workers scored
    loads = [(r.worker, r.checkpoint) for r in executor.reports if r.loaded_model]
    assert len(loads) == len(set(loads))  # no worker loaded a checkpoint twice

    # a second run finds everything stored: no unit, no worker
    again = RayExecutor(address=cluster[0], workers=2)
    frames = again.evaluate(_jobs(tiny_llama_dir, tiny_llama_dir_b), tmp_path, SETTINGS)
    assert again.reports == []
    _assert_same_rows(pd.concat(frames, ignore_index=True), reference)


def test_device_auto_on_ray_stores_the_device_a_local_auto_run_stores(cluster, trace, tmp_path, tiny_llama_dir):
    auto = replace(SETTINGS, device="auto")
    tasks = [mc_task(4, "alpha")]
    evaluate(Checkpoint(str(tiny_llama_dir), name="a"), tasks, tmp_path / "local", auto)
    RayExecutor(address=cluster[0], workers=1).evaluate([EvalJob(Checkpoint(str(tiny_llama_dir), name="a"), tasks)],
                                                        tmp_path / "ray", auto)
    for where in ("local", "ray"):
        rows = load_records([tmp_path / where])
        assert {json.loads(s)["device"] for s in rows["settings"]} == {"cpu"}, where  # the cluster has no GPU
        metas = [json.loads(p.read_text()) for p in (tmp_path / where).rglob("meta.json")]
        assert metas and {m["settings"]["device"] for m in metas} == {"cpu"}, where


def test_a_killed_worker_is_retried_and_nothing_is_lost_or_doubled(connected, trace, reference, tmp_path,
                                                                   tiny_llama_dir, tiny_llama_dir_b):
    cluster = connected
    (trace / "hold").touch()
    executor = RayExecutor(address=cluster[0], workers=2)
    output = "file://" + str(tmp_path / "results")  # the lock-free store of a URL, across processes
    outcome = {}

    def drive():
        try:
            outcome["frames"] = executor.evaluate(_jobs(tiny_llama_dir, tiny_llama_dir_b), output, SETTINGS)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test below
            outcome["error"] = exc

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.time() + 180
    while not _notes(trace, "start"):
        assert time.time() < deadline, "no unit started"
        time.sleep(0.1)
    victim = _notes(trace, "start")[0]
    os.kill(victim["pid"], signal.SIGKILL)  # mid-unit: it waits at its start, nothing written yet
    time.sleep(1)
    (trace / "hold").unlink()
    driver.join(300)
    assert not driver.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    runs = [n for n in _notes(trace, "start") if n["tag"] == victim["tag"]]
    assert len(runs) == 2 and runs[0]["pid"] != runs[1]["pid"]  # retried in a restarted worker
    assert len(_notes(trace, "end")) == 10  # every unit finished once
    _assert_same_rows(load_records([tmp_path / "results"]), reference)
    _assert_same_rows(pd.concat(outcome["frames"], ignore_index=True), reference)


DRIVER = textwrap.dedent("""
    import sys
    from forgetscope.engine.evaluate import Checkpoint, EvalSettings
    from forgetscope.engine.executor import EvalJob
    from forgetscope.engine.ray_executor import RayExecutor
    from tests.helpers import mc_task

    address, output, model_a, model_b = sys.argv[1:5]
    tasks = [mc_task(12, "alpha"), mc_task(8, "beta", k=3)]
    jobs = [EvalJob(Checkpoint(model_a, name="a"), tasks), EvalJob(Checkpoint(model_b, name="b"), tasks)]
    RayExecutor(address=address, workers=2).evaluate(jobs, output, EvalSettings(batch_size=4, chunk_size=4))
    print("finished")
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_rerun_after_the_driver_was_killed_does_only_the_missing_units(cluster, trace, reference, tmp_path,
                                                                         tiny_llama_dir, tiny_llama_dir_b):
    address = cluster[0]
    args = [sys.executable, "-c", DRIVER, address, str(tmp_path / "out"), str(tiny_llama_dir), str(tiny_llama_dir_b)]
    (trace / "hold").write_text("4")  # four units may pass, the others wait at their start
    driver = subprocess.Popen(args, env=env_for(trace), cwd=REPO, start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while len(_notes(trace, "end")) < 4:
        assert driver.poll() is None, driver.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "four units did not finish"
        time.sleep(0.05)
    time.sleep(1)  # the driver merges what is whole
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait(30)
    for note in _notes(trace, "start"):  # Ray stops the dead driver's workers
        deadline = time.time() + 120
        while _alive(note["pid"]):
            assert time.time() < deadline, f"worker {note['pid']} outlived its driver"
            time.sleep(0.2)
    stored = load_records([tmp_path / "out"])  # what the killed run left: parts, some tasks merged
    done = set(zip(stored["checkpoint"].astype(str), stored["task"].astype(str), stored["item_id"].astype(str)))
    finished = {(n["checkpoint"], n["task"], i) for n in _notes(trace, "end") for i in n["items"]}
    assert finished == done and len(_notes(trace, "end")) == 4
    for path in trace.iterdir():
        path.unlink()

    rerun = subprocess.run(args, env=env_for(trace), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    scored = [(n["checkpoint"], n["task"], i) for n in _notes(trace, "start") for i in n["items"]]
    everything = set(zip(reference["checkpoint"], reference["task"], reference["item_id"]))
    assert len(scored) == len(set(scored))  # no unit twice
    assert set(scored) == everything - done  # exactly what was missing
    _assert_same_rows(load_records([tmp_path / "out"]), reference)


def test_a_deterministic_failure_stops_the_run_without_retries(cluster, trace, tmp_path, nan_llama_dir):
    executor = RayExecutor(address=cluster[0], workers=2)
    started = time.time()
    with pytest.raises(NonFiniteScoreError, match="non-finite"):
        executor.evaluate([EvalJob(Checkpoint(str(nan_llama_dir), name="broken"), _tasks())], tmp_path, SETTINGS)
    tags = [n["tag"] for n in _notes(trace, "start")]
    assert tags and len(tags) == len(set(tags))  # no unit was tried twice
    assert time.time() - started < 120
    assert not list(tmp_path.rglob("part-*.parquet"))  # nothing stored for a broken model
