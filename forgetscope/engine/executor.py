"""Executors: who scores the units of an evaluation, in this process or on a Ray cluster.

An evaluation of checkpoints × tasks is cut into units of work, one per
(checkpoint, task, chunk of items). Every executor runs the same three steps
of `engine.evaluate` for them: `plan_task` (what is stored, what is left),
`score_chunk` (score a chunk and write it as a part), `finish_task` (merge the
parts), so every executor writes the same rows a local run writes.

- `LocalExecutor`: `evaluate()` per checkpoint, in this process (the default).
- `RayExecutor` (engine.ray_executor): the units of all checkpoints at once, on
  the workers of a Ray cluster.

    executor = make_executor("ray", address="auto")
    frames = executor.evaluate([EvalJob(Checkpoint("ckpt-1"), tasks), EvalJob(Checkpoint("ckpt-2"), tasks)],
                               "results", settings)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import pandas as pd

from ..tasks.base import Task
from .evaluate import Checkpoint, EvalSettings, ProgressFn, evaluate

EXECUTORS = ("local", "ray")


class ExecutorError(ValueError):
    """The executor cannot run as asked (Ray missing, an address nobody answers at, too few resources)."""


class WorkerLostError(RuntimeError):
    """A unit's worker died more often than it may be retried (finished units are stored)."""


@dataclass
class EvalJob:
    """One checkpoint and the tasks to evaluate it on."""

    checkpoint: Checkpoint
    tasks: Sequence[Task]


@dataclass
class UnitReport:
    """What one unit of work did, and where it ran."""

    checkpoint: str
    task: str
    chunk: int
    """The chunk's index within the task's items left to score."""
    items: int
    rows: int
    """Rows written (0 when a retried unit found its part already stored)."""
    node: str
    """Node IP address (or `local`)."""
    worker: str
    """Worker: process id on its node (`pid 1234`)."""
    seconds: float
    loaded_model: bool = False
    """This unit loaded the checkpoint (the worker had another one, or none, loaded)."""
    stored_before: bool = False
    """A retry that found the unit's part already written by its killed predecessor."""


class UnitProgress(Protocol):
    """Receives the progress of an executor's units (report.progress.OverallProgress draws it)."""

    def start(self, units: int, items: int) -> None: ...

    def advance(self, report: UnitReport) -> None: ...


class Executor(Protocol):
    def evaluate(self, jobs: Sequence[EvalJob], output_dir: Path | str,
                 settings: EvalSettings) -> list[pd.DataFrame]:
        """Every job's records (cached rows reused), in the order of `jobs`."""
        ...


@dataclass
class LocalExecutor:
    """Evaluate the jobs one after another in this process (`evaluate()`, one progress bar per task)."""

    progress: ProgressFn | None = None
    reports: list[UnitReport] = field(default_factory=list)

    def evaluate(self, jobs: Sequence[EvalJob], output_dir: Path | str,
                 settings: EvalSettings) -> list[pd.DataFrame]:
        return [evaluate(job.checkpoint, job.tasks, output_dir, settings, progress=self.progress) for job in jobs]


def make_executor(kind: str = "local", *, address: str | None = None, workers: int | None = None,
                  progress: ProgressFn | None = None, unit_progress: UnitProgress | None = None) -> Executor:
    """`local` (with per-task `progress`) or `ray` (with `unit_progress`; `address`: a cluster's address,
    `auto` for the one `ray start` runs on this machine, None to start a local one)."""
    if kind == "local":
        if address is not None or workers is not None:
            raise ExecutorError("--ray-address and --ray-workers are options of --executor ray")
        return LocalExecutor(progress)
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address=address, workers=workers, progress=unit_progress)
    raise ExecutorError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
