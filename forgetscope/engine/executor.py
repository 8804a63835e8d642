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

from .evaluate import EvalSettings, ProgressFn, evaluate
from .units import EvalJob, ExecutorError, UnitProgress, UnitReport, WorkerLostError

EXECUTORS = ("local", "ray")
__all__ = ["EXECUTORS", "EvalJob", "Executor", "ExecutorError", "LocalExecutor", "UnitProgress", "UnitReport",
           "WorkerLostError", "check_executor", "make_executor"]


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
                  progress: ProgressFn | None = None) -> Executor:
    """`local` (with per-task `progress`) or `ray` (`address`: a cluster's address, `auto` for the one
    `ray start` runs on this machine, None to start a local one; set its `.progress` to a UnitProgress)."""
    check_executor(kind, address, workers)
    if kind == "local":
        return LocalExecutor(progress)
    from .ray_executor import RayExecutor

    return RayExecutor(address=address, workers=workers)


def check_executor(kind: str, address: str | None = None, workers: int | None = None) -> None:
    """Refuse an executor that cannot be made, before anything runs (ExecutorError)."""
    if kind not in EXECUTORS:
        raise ExecutorError(f"unknown executor {kind!r}; choose one of: {', '.join(EXECUTORS)}")
    if kind == "local" and (address is not None or workers is not None):
        raise ExecutorError("--ray-address and --ray-workers are options of --executor ray")
