"""The overall progress of a cluster run, and the table of where its units ran."""

from __future__ import annotations

import io

from rich.console import Console

from forgetscope.engine.executor import UnitReport
from forgetscope.report.progress import OverallProgress, units_table


def _report(worker: str, checkpoint: str, items: int, loaded: bool, node: str = "10.0.0.1") -> UnitReport:
    return UnitReport(checkpoint, "quiz", 0, items, items, node, worker, seconds=1.5, loaded_model=loaded)


def test_one_bar_counts_units_and_items():
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    reports = [_report("pid 1", "a", 10, True), _report("pid 2", "b", 10, True), _report("pid 1", "a", 5, False)]
    with OverallProgress(console) as progress:
        progress.start(3, 25)
        for report in reports:
            progress.advance(report)
        task = progress.progress.tasks[0]
        assert (task.completed, task.total, task.fields["units"]) == (25, 25, "3/3")
    assert progress.reports == reports


def test_units_table_has_one_row_per_worker():
    console = Console(file=io.StringIO(), width=120)
    reports = [_report("pid 1", "a", 10, True), _report("pid 2", "b", 10, True), _report("pid 1", "a", 5, False),
               _report("pid 7", "b", 4, True, node="10.0.0.2")]
    console.print(units_table(reports))
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in console.file.getvalue().splitlines()
            if "pid" in line]
    assert rows == [["10.0.0.1", "pid 1", "2", "15", "3.0", "a"], ["10.0.0.1", "pid 2", "1", "10", "1.5", "b"],
                    ["10.0.0.2", "pid 7", "1", "4", "1.5", "b"]]
