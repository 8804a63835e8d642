"""The Ray executor: the units of many checkpoints × tasks on the workers of a Ray cluster.

The driver (this process) plans every (checkpoint, task) with `plan_task`
(reading what the results directory already holds), cuts the items left into
units of `chunk_size` items (a vLLM unit is a whole task: vLLM batches by
itself), and hands the units to a pool of worker actors. Each worker asks
Ray for what one model needs: `tensor_parallel_size` GPUs for vLLM, one GPU
for transformers on CUDA, `threads` CPUs (default 1) on CPU. A worker keeps
the last checkpoint it loaded, and the driver gives an idle worker a unit of
that checkpoint while there is one (else one of the checkpoint the fewest
workers hold), so a checkpoint is loaded once per worker that scores it.

A worker writes each unit's rows as its own part of the run directory, named
by the unit (`TaskPlan.unit_tag`); the driver merges a (checkpoint, task)'s
parts with `finish_task` once all its units are done, exactly as a local run.

Faults:
- a worker that dies (killed, out of memory, node lost) is restarted and its
  unit retried, up to `retries` times; a retry whose part was already written
  by the killed worker stores nothing again;
- an exception inside a unit (a bad task, non-finite scores) is not retried:
  the run stops, other workers are stopped, and the driver raises that same
  exception (finished units stay stored);
- a killed driver takes its workers with it; the next run plans again from
  what is stored, so it does only the units that are missing.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .evaluate import EvalSettings, TaskPlan, chunk_step, finish_task, load_backend, plan_task, prepare_checkpoint, \
    score_chunk
from .units import EvalJob, ExecutorError, UnitProgress, UnitReport, WorkerLostError

#: Test hook (fault injection): a directory where every unit notes its start and end (`<tag>.<pid>.start`,
#: `.end`, JSON), and waits at its start while a file `hold` exists there, unless `hold` holds a number of
#: units that may still pass. Read by the workers.
TRACE_ENV = "FORGETSCOPE_TEST_UNIT_TRACE"
#: how often a unit whose worker died is tried again (Ray restarts the worker each time)
DEFAULT_RETRIES = 3


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to the Ray cluster at `address` (`auto`: the one `ray start` runs here), or start a local one
    (None). Returns whether this call started Ray (then the caller shuts it down); already connected: False."""
    try:
        import ray
    except ImportError:
        raise ExecutorError("--executor ray needs Ray: pip install 'forgetscope[ray]' (or pip install ray)") from None
    if ray.is_initialized():
        return False
    import logging

    options: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=False)
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "locally"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutorError(f"could not connect to a Ray cluster {where} ({first}); start one with "
                            "`ray start --head` and pass --ray-address auto (or its ADDRESS)") from None
    return True


def unit_resources(settings: EvalSettings, threads: int, cluster_gpus: float = 0) -> dict[str, float]:
    """What one worker asks Ray for: GPUs for one model (vLLM: tensor_parallel_size), else CPU threads."""
    if settings.backend == "vllm":
        return {"num_cpus": 1, "num_gpus": max(1, settings.tensor_parallel_size)}
    on_gpu = cluster_device(settings, cluster_gpus).device.startswith("cuda")
    return {"num_cpus": threads, "num_gpus": 1} if on_gpu else {"num_cpus": threads, "num_gpus": 0}


def cluster_device(settings: EvalSettings, cluster_gpus: float) -> EvalSettings:
    """`device="auto"` made concrete for the cluster, as a local run makes it for its machine: CUDA when the
    cluster has GPUs (each worker then asks Ray for one), else CPU. Records store the device scores came from."""
    if settings.device != "auto":
        return settings
    return replace(settings, device="cuda" if cluster_gpus > 0 else "cpu")


def capacity(nodes: list[dict], resources: dict[str, float]) -> int:
    """How many workers with `resources` fit on the alive nodes at once."""
    total = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        have = node.get("Resources", {})
        fits = [have.get("CPU", 0) // resources["num_cpus"]] if resources["num_cpus"] else []
        if resources["num_gpus"]:
            fits.append(have.get("GPU", 0) // resources["num_gpus"])
        total += int(min(fits)) if fits else 0
    return total


@dataclass
class _Unit:
    group: str
    """The run directory's location: plans of one run directory share their units."""
    plan_ref: Any
    indices: list[int]
    done: set
    tag: str
    chunk: int
    checkpoint: str
    task: str
    key: str
    """Which model the unit needs (model fingerprint and GGUF file)."""


@dataclass
class _Done:
    report: UnitReport


@dataclass
class _Failed:
    exception: BaseException | None
    """The exception (None when it cannot travel: it does not pickle)."""
    text: str
    report: UnitReport


class _Worker:
    """A Ray actor: scores units, keeping the last checkpoint it loaded."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.key: str | None = None
        self.backend = None

    def run(self, plan: TaskPlan, indices: list[int], done: set, tag: str, chunk: int, key: str):
        import ray

        started = time.perf_counter()
        report = UnitReport(plan.checkpoint.name, plan.task.name, chunk, len(indices), 0,
                            node=ray.util.get_node_ip_address(), worker=f"pid {os.getpid()}", seconds=0.0)
        trace = os.environ.get(TRACE_ENV)
        try:
            if trace:
                _trace(trace, tag, "start", plan, indices)
            if plan.run.has_part(tag):  # a retry: the killed worker had stored it
                report.stored_before = True
            else:
                if self.key != key:
                    self._release()
                    self.backend = load_backend(plan.checkpoint, plan.settings, threads=self.threads)
                    self.key, report.loaded_model = key, True
                items = [plan.task.items[i] for i in indices]
                report.rows = score_chunk(replace(plan, done_keys=done), items, self.backend, tag)
            if trace:
                _trace(trace, tag, "end", plan, indices)
        except Exception as exc:  # not retried: the same input fails the same way
            report.seconds = time.perf_counter() - started
            text = f"{type(exc).__name__}: {exc}"
            try:
                pickle.dumps(exc)  # Ray sends it the same way
                travels: BaseException | None = exc
            except Exception:  # noqa: BLE001 - an exception that does not pickle is sent as text
                travels = None
            return _Failed(travels, text, report)
        report.seconds = time.perf_counter() - started
        return _Done(report)

    def _release(self) -> None:
        if self.backend is not None:
            close = getattr(self.backend, "close", None)
            if callable(close):
                close()
            self.backend, self.key = None, None
            gc.collect()


def _trace(directory: str, tag: str, what: str, plan: TaskPlan, indices: list[int]) -> None:
    """The test hook (TRACE_ENV): note the unit, and wait at its start while `hold` exists."""
    folder = Path(directory)
    note = {"checkpoint": plan.checkpoint.name, "task": plan.task.name, "pid": os.getpid(),
            "items": [plan.task.items[i].item_id for i in indices], "time": time.time()}
    (folder / f"{tag}.{os.getpid()}.{what}").write_text(json.dumps(note))
    hold, deadline = folder / "hold", time.time() + 300
    while what == "start" and hold.exists() and time.time() < deadline:
        from filelock import FileLock

        with FileLock(str(folder / "hold.lock")):  # `hold` holds how many units may still pass (empty: none)
            try:
                passes = int(hold.read_text().strip() or 0)
            except FileNotFoundError:
                break
            if passes > 0:
                hold.write_text(str(passes - 1))
                break
        time.sleep(0.05)


@dataclass
class RayExecutor:
    """Evaluate on a Ray cluster (module docstring). `workers`: how many (default: as many as fit)."""

    address: str | None = None
    workers: int | None = None
    progress: UnitProgress | None = None
    retries: int = DEFAULT_RETRIES
    #: CPU threads per worker on CPU (default: settings.threads or 1)
    threads: int | None = None
    reports: list[UnitReport] = field(default_factory=list)
    """Every unit this executor ran: where, how long (a summary: report.progress.units_table)."""

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ExecutorError(f"--ray-workers must be at least 1, got {self.workers}")

    def evaluate(self, jobs: Sequence[EvalJob], output_dir: Path | str,
                 settings: EvalSettings) -> list[pd.DataFrame]:
        threads = self.threads or settings.threads or 1
        local_cpus = self.workers * threads if self.address is None and self.workers else None
        started = connect(self.address, local_cpus)
        try:
            return _Run(self, jobs, output_dir, settings, threads).execute()
        finally:
            if started:
                import ray

                ray.shutdown()


class _Run:
    """One `RayExecutor.evaluate` call: plan, dispatch, finish."""

    def __init__(self, executor: RayExecutor, jobs: Sequence[EvalJob], output_dir, settings: EvalSettings,
                 threads: int) -> None:
        self.executor, self.jobs, self.output_dir, self.settings = executor, list(jobs), output_dir, settings
        self.threads = threads
        self.plans: list[list[TaskPlan]] = []
        self.groups: dict[str, list[TaskPlan]] = {}
        self.left: Counter = Counter()
        self.frames: dict[int, pd.DataFrame] = {}  # id(plan) -> its rows

    def execute(self) -> list[pd.DataFrame]:
        import ray

        nodes = ray.nodes()
        gpus = sum(n.get("Resources", {}).get("GPU", 0) for n in nodes if n.get("Alive", True))
        self.settings = cluster_device(self.settings, gpus)
        units = self._plan(ray)
        if units:
            self._dispatch(ray, units, nodes, gpus)
        for group in self._whole_unfinished():
            self._finish(group)
        out = []
        for plans in self.plans:
            frames = [self.frames[id(p)] for p in plans]
            out.append(pd.concat(frames, ignore_index=True) if frames else _empty_frame())
        return out

    # ------------------------------------------------------------------ plan
    def _plan(self, ray) -> list[_Unit]:
        step = chunk_step(self.settings)
        units: list[_Unit] = []
        for job in self.jobs:
            ckpt, model_fp = prepare_checkpoint(job.checkpoint, self.settings)
            key = json.dumps([model_fp, ckpt.gguf_file])
            plans = []
            for task in job.tasks:
                plan = plan_task(ckpt, model_fp, task, self.output_dir, self.settings)
                plans.append(plan)
                group = str(plan.run.path)
                first = group not in self.groups
                self.groups.setdefault(group, []).append(plan)
                if not first or not plan.todo:  # the same run twice (same weights): scored once
                    self.left.setdefault(group, 0)
                    continue
                index = {item.item_id: i for i, item in enumerate(task.items)}
                slim = ray.put(replace(plan, done_keys=set(), todo=[], relatives=[]))
                chunks = plan.chunks(step)
                for number, (_, chunk) in enumerate(chunks):
                    ids = {item.item_id for item in chunk}
                    units.append(_Unit(group, slim, [index[item.item_id] for item in chunk],
                                       {k for k in plan.done_keys if k[0] in ids}, plan.unit_tag(chunk), number,
                                       ckpt.name, task.name, key))
                self.left[group] += len(chunks)
            self.plans.append(plans)
        return units

    # -------------------------------------------------------------- dispatch
    def _dispatch(self, ray, units: list[_Unit], nodes: list[dict], gpus: float) -> None:
        resources = unit_resources(self.settings, self.threads, gpus)
        fit = capacity(nodes, resources)
        if fit < 1:
            need = (f"{resources['num_gpus']:g} GPU(s)" if resources["num_gpus"] else "") or \
                f"{resources['num_cpus']:g} CPU(s)"
            raise ExecutorError(f"each worker needs {need} on one node (--tensor-parallel-size, --threads), and "
                                "no node of the Ray cluster has that many; add such a node or ask for less")
        # never more than fit: a worker Ray cannot place would hold its units until the others are stopped
        n_workers = min(len(units), fit, self.executor.workers or fit)
        retries = self.executor.retries
        actor = ray.remote(_Worker).options(num_cpus=resources["num_cpus"], num_gpus=resources["num_gpus"],
                                            max_restarts=retries, max_task_retries=retries)
        workers = [actor.remote(self.threads) for _ in range(n_workers)]
        progress = self.executor.progress
        if progress:
            progress.start(len(units), sum(len(u.indices) for u in units))
        pending: dict[str, deque[_Unit]] = {}
        for unit in units:
            pending.setdefault(unit.key, deque()).append(unit)
        holds: list[str | None] = [None] * n_workers  # the model each worker has (or is about to have)
        busy: Counter = Counter()
        in_flight: dict[Any, tuple[int, _Unit]] = {}

        def assign(worker: int) -> None:
            keys = [k for k, queue in pending.items() if queue]
            if not keys:
                return
            key = holds[worker] if holds[worker] in keys else min(keys, key=lambda k: busy[k])
            unit = pending[key].popleft()
            holds[worker] = key
            busy[key] += 1
            ref = workers[worker].run.remote(unit.plan_ref, unit.indices, unit.done, unit.tag, unit.chunk, key)
            in_flight[ref] = (worker, unit)

        try:
            for worker in range(n_workers):
                assign(worker)
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                worker, unit = in_flight.pop(ready[0])
                busy[unit.key] -= 1
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayError as exc:
                    raise WorkerLostError(
                        f"checkpoint {unit.checkpoint!r}, task {unit.task!r}, chunk {unit.chunk}: its worker died "
                        f"{retries + 1} times ({type(exc).__name__}); the finished units are stored, re-run the same "
                        "command to do the rest") from None
                self.executor.reports.append(result.report)
                if isinstance(result, _Failed):
                    raise _exception(result)
                if progress:
                    progress.advance(result.report)
                self.left[unit.group] -= 1
                if self.left[unit.group] == 0:
                    self._finish(unit.group)
                assign(worker)
        except BaseException:
            self._finish_complete()  # what is whole is merged before stopping
            raise
        finally:
            for handle in workers:
                ray.kill(handle, no_restart=True)

    def _finish(self, group: str) -> None:
        for plan in self.groups[group]:  # in job order: the last name given wins, as in a local run
            self.frames[id(plan)] = finish_task(plan)

    def _whole_unfinished(self) -> list[str]:
        """The groups whose units are all done but whose parts are not merged yet."""
        return [group for group, count in self.left.items()
                if count == 0 and not all(id(p) in self.frames for p in self.groups[group])]

    def _finish_complete(self) -> None:
        for group in self._whole_unfinished():
            try:
                self._finish(group)
            except Exception:  # noqa: BLE001 - the error being raised matters more; parts stay stored
                pass


def _exception(failed: _Failed) -> BaseException:
    """The exception a unit raised, as it was raised there (or, when it cannot travel, its text)."""
    if failed.exception is not None:
        return failed.exception
    return RuntimeError(f"checkpoint {failed.report.checkpoint!r}, task {failed.report.task!r}: {failed.text}")


def _empty_frame() -> pd.DataFrame:
    from ..records.schema import SCHEMA

    return SCHEMA.empty_table().to_pandas()

