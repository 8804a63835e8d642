"""What every executor shares: the jobs it is given, the report of each unit it ran, its errors.

A module of its own so that the executors (executor.py, ray_executor.py) both
import it and neither imports the other at load time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from ..tasks.base import Task
from .evaluate import Checkpoint


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
