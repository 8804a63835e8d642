"""Engine test fixtures. A local HF cache with two revisions of a tiny model (`hub`, at the end), and a real Ray cluster for the Ray tests: `ray start --head --block` with two CPUs, once per session, in
its own session (stopped by its process group, never `ray stop`, which would stop every Ray here)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRACE_ENV = "FORGETSCOPE_TEST_UNIT_TRACE"  # engine.ray_executor.TRACE_ENV (not imported: ray may be missing)


def env_for(trace: Path) -> dict:
    """The environment of the cluster and of driver subprocesses."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", TRACE_ENV: str(trace),
            "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="session")
def cluster():
    """(address, trace directory) of a 2-CPU Ray head started for these tests (this process is not left
    connected: drivers connect with its address, and Ray's threads do not outlive them)."""
    ray = pytest.importorskip("ray")
    base = Path(tempfile.mkdtemp(prefix="fsray-", dir="/tmp"))  # short: Ray's socket paths are limited
    trace = base / "trace"
    trace.mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_cli = Path(sys.executable).with_name("ray")
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         f"--temp-dir={base / 'ray'}", "--object-store-memory=100000000", "--disable-usage-stats"],
        env=env_for(trace), start_new_session=True, stdout=open(base / "head.log", "w"), stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        deadline = time.time() + 180
        while True:
            try:
                ray.init(address=address, logging_level="warning", log_to_driver=False)
                ray.shutdown()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.time() > deadline or head.poll() is not None:
                    raise RuntimeError("the test Ray head did not start: " + (base / "head.log").read_text()[-2000:])
                time.sleep(1)
        yield address, trace
    finally:
        os.killpg(head.pid, signal.SIGKILL)  # the head, its raylet, GCS and workers: this session only
        head.wait(30)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def trace(cluster):
    folder = cluster[1]
    for path in folder.iterdir():
        path.unlink()
    return folder


@pytest.fixture(scope="module")
def connected(cluster):
    """This process connected to the test cluster for a module (a driver thread needs it)."""
    import ray

    ray.init(address=cluster[0], logging_level="warning", log_to_driver=False)
    yield cluster
    ray.shutdown()


# ---------------------------------------------------------------- a local HF cache with two revisions
COMMIT_A = "a" * 40  # main, step1: the seed-0 tiny llama
COMMIT_B = "b" * 40  # step2: the seed-1 tiny llama (different weights, same tokenizer)


@pytest.fixture()
def hub(tmp_path, monkeypatch, tiny_llama_dir, tiny_llama_dir_b):
    """A local HF cache with org/tiny at revisions main, step1 (commit A) and step2 (commit B); hub offline."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    repo = root / "models--org--tiny"
    for commit, source in ((COMMIT_A, tiny_llama_dir), (COMMIT_B, tiny_llama_dir_b)):
        shutil.copytree(source, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    for ref, commit in (("main", COMMIT_A), ("step1", COMMIT_A), ("step2", COMMIT_B)):
        (repo / "refs" / ref).write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo
