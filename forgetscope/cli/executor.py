"""Who scores a command's units: the executor of --executor with its progress display (docs/cluster.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .common import console
from .options import ExecutorChoice

if TYPE_CHECKING:
    from ..engine.executor import Executor


@contextmanager
def running(choice: ExecutorChoice, out=None) -> Iterator[Executor]:
    """The executor of `choice` with its progress display: a bar per task locally, one bar over all units
    on Ray, and after a Ray run the table of where the units ran."""
    from ..engine.executor import make_executor

    if choice.kind == "local" and choice.address is None and choice.workers is None:
        from ..report.progress import ProgressBars

        with ProgressBars(out) as bars:
            yield make_executor("local", progress=bars)
        return
    from ..report.progress import OverallProgress, units_table

    executor = make_executor(choice.kind, address=choice.address, workers=choice.workers)
    with OverallProgress(out) as bar:
        executor.progress = bar
        yield executor
    if executor.reports:
        (out or console()).print(units_table(executor.reports))
