"""Progress: a bar per task (evaluate()'s callback: task, done, total), or one bar over a cluster run's units."""

from __future__ import annotations


class ProgressBars:
    """Context manager and callable: `with ProgressBars() as p: evaluate(..., progress=p)`."""

    def __init__(self, console=None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=console)
        self.bars: dict[str, int] = {}

    def __enter__(self) -> "ProgressBars":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, task: str, done: int, total: int) -> None:
        if task not in self.bars:
            self.bars[task] = self.progress.add_task(task, total=total)
        self.progress.update(self.bars[task], completed=done, total=total)


class OverallProgress:
    """One bar over every unit of a cluster run: units done/total, items/s and time left; it also
    keeps the unit reports for `units_table`. `with OverallProgress() as p: RayExecutor(progress=p)`."""

    def __init__(self, console=None, label: str = "scoring") -> None:
        from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
        from rich.text import Text

        class ItemsPerSecond(ProgressColumn):
            def render(self, task) -> Text:
                speed = task.finished_speed or task.speed
                return Text(f"{speed:.1f} items/s" if speed else "… items/s")

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[units]} units"), TextColumn("{task.completed}/{task.total} items"),
                                 ItemsPerSecond(), TimeRemainingColumn(), console=console)
        self.label, self.bar, self.units, self.done = label, None, 0, 0
        self.reports: list = []

    def __enter__(self) -> "OverallProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, units: int, items: int) -> None:
        self.units, self.done = units, 0
        self.bar = self.progress.add_task(self.label, total=items, units=f"0/{units}")

    def advance(self, report) -> None:
        self.reports.append(report)
        self.done += 1
        self.progress.update(self.bar, advance=report.items, units=f"{self.done}/{self.units}")


def units_table(reports, title: str = "where the units ran"):
    """A rich Table with one row per worker: node, worker, units, items, busy seconds, checkpoints loaded."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold")
    for column, justify in (("node", "left"), ("worker", "left"), ("units", "right"), ("items", "right"),
                            ("busy s", "right"), ("loaded", "left")):
        table.add_column(column, justify=justify)
    workers: dict[tuple[str, str], list] = {}
    for report in reports:
        workers.setdefault((report.node, report.worker), []).append(report)
    for (node, worker), mine in sorted(workers.items()):
        loaded = [r.checkpoint for r in mine if r.loaded_model]
        table.add_row(node, worker, str(len(mine)), str(sum(r.items for r in mine)),
                      f"{sum(r.seconds for r in mine):.1f}", ", ".join(loaded) or "-")
    return table
