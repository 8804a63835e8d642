"""A progress bar per task, fed by evaluate()'s progress callback (task, done, total)."""

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
