"""Compare two checkpoints item by item: evaluate what is missing, then analyse.

A side of a comparison is either a model (directory, hub id or .gguf file),
which is evaluated through the cache, or a stored records file/directory,
which is read as it is (so a baseline need not be re-run).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from ..analysis.stability import DEFAULT_FLIP_TOLERANCE
from ..backends.hub import is_hub_id
from ..records.store import load_records
from ..tasks.base import Task
from .evaluate import Checkpoint, EvalSettings, ProgressFn, evaluate

if TYPE_CHECKING:
    from .executor import Executor


class CompareError(ValueError):
    """The two sides cannot be compared (message says why and what to do)."""


def is_records_path(arg: str) -> bool:
    """True for a .parquet file or a directory of records (not a model directory)."""
    path = Path(arg)
    if path.is_file():
        return path.suffix == ".parquet"
    if path.is_dir():
        is_model = (path / "config.json").exists() or any(path.glob("*.gguf"))
        return not is_model and any(path.rglob("*.parquet"))
    return False


def records_for(
    arg: str,
    tasks: Sequence[Task],
    output_dir: Path | str,
    settings: EvalSettings,
    *,
    name: str | None = None,
    progress: ProgressFn | None = None,
    columns: list[str] | None = None,
    margins: str | None = None,
) -> pd.DataFrame:
    """Records of one side: read from a records path, or evaluated (cached) for a model.

    `columns` limits what a records path loads (e.g. schema.ANALYSIS_COLUMNS when
    only the figures are needed: a fraction of the memory for large records);
    `margins` (a metric) adds each row's decision margin instead of its list
    columns (store.load_records); an evaluated model always returns every column.
    """
    if is_records_path(arg):
        records = load_records([arg], columns=columns, margins=margins)
        if tasks:
            wanted = {t.name for t in tasks}
            missing = wanted - set(records["task"].unique())
            if missing:
                raise CompareError(
                    f"{arg}: no records for task(s) {', '.join(sorted(missing))}; "
                    f"it has {', '.join(sorted(records['task'].unique()))}"
                )
            records = records[records["task"].isin(wanted)]
        checkpoints = records["checkpoint"].unique()
        if len(checkpoints) > 1:
            raise CompareError(
                f"{arg}: holds records of {len(checkpoints)} checkpoints ({', '.join(map(str, checkpoints[:4]))}); "
                "point at one checkpoint's records directory or file"
            )
        if name:
            records = records.assign(checkpoint=name)
        return records.reset_index(drop=True)
    _check_model_side(arg, tasks)
    return evaluate(Checkpoint(arg, name=name or arg), tasks, output_dir, settings, progress=progress)


def _check_model_side(arg: str, tasks: Sequence[Task]) -> None:
    if not tasks:
        if not Path(arg).exists() and not is_hub_id(arg):  # a path that is not there
            raise CompareError(f"{arg}: no such file or directory; give a records file/dir, or a model with --task")
        raise CompareError(f"{arg} is a model: name the tasks to evaluate it on with --task")


def records_for_sides(
    sides: Sequence[tuple[str, str | None]],
    tasks: Sequence[Task],
    output_dir: Path | str,
    settings: EvalSettings,
    *,
    executor: "Executor | None" = None,
    progress: ProgressFn | None = None,
    columns: list[str] | None = None,
    margins: str | None = None,
) -> list[pd.DataFrame]:
    """`records_for` of every (argument, name) side, in order. With a cluster executor the model sides
    are evaluated together (their units in parallel); stored sides are read here as `records_for` reads
    them. Without one (or with a LocalExecutor), side after side."""
    from .executor import EvalJob, LocalExecutor

    if executor is None or isinstance(executor, LocalExecutor):
        progress = progress or (executor.progress if executor is not None else None)
        return [records_for(arg, tasks, output_dir, settings, name=name, progress=progress, columns=columns,
                            margins=margins) for arg, name in sides]
    frames: dict[int, pd.DataFrame] = {}
    jobs, places = [], []
    for place, (arg, name) in enumerate(sides):
        if is_records_path(arg):
            frames[place] = records_for(arg, tasks, output_dir, settings, name=name, columns=columns, margins=margins)
        else:
            _check_model_side(arg, tasks)
            jobs.append(EvalJob(Checkpoint(arg, name=name or arg), tasks))
            places.append(place)
    for place, frame in zip(places, executor.evaluate(jobs, output_dir, settings) if jobs else []):
        frames[place] = frame
    return [frames[place] for place in range(len(sides))]


def record_evaluated_order(output_dir: Path | str, sides: Sequence[pd.DataFrame]) -> None:
    """Record in output_dir the order the sides were given in (by their checkpoint names), so that
    `report`/`heatmap` read it instead of guessing (checkpoint_order)."""
    from ..records.checkpoint_order import record_order

    record_order(output_dir, [str(side["checkpoint"].iloc[0]) for side in sides if len(side)])


def compare_checkpoints(
    before: str,
    after: str,
    tasks: Sequence[Task],
    output_dir: Path | str = "forgetscope-results",
    settings: EvalSettings | None = None,
    *,
    metric: str = "acc",
    identical_only: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: ProgressFn | None = None,
    columns: list[str] | None = None,
    flip_tolerance: float | None = DEFAULT_FLIP_TOLERANCE,
    with_margins: bool = False,
    executor: "Executor | None" = None,
):
    """Evaluate (or read) both sides and return (Comparison, records_before, records_after).

    `columns`: what to load from a stored records side (see records_for); `with_margins`: also
    load its decision margins under `metric` (for unstable flips) without the list columns.
    `flip_tolerance`: count flips with a decision margin below it apart (analysis.stability).
    `executor`: who evaluates model sides (engine.executor; default: this process, side after side)."""
    from ..analysis import compare_records

    settings = settings or EvalSettings()
    margin_metric = metric if with_margins and flip_tolerance else None
    rec_before, rec_after = records_for_sides([(before, None), (after, None)], tasks, output_dir, settings,
                                              executor=executor, progress=progress, columns=columns,
                                              margins=margin_metric)
    if not (is_records_path(before) and is_records_path(after)):  # a model was evaluated into output_dir
        record_evaluated_order(output_dir, [rec_before, rec_after])
    comparison = compare_records(rec_before, rec_after, metric=metric, identical_only=identical_only,
                                 n_bootstrap=n_bootstrap, seed=seed, flip_tolerance=flip_tolerance)
    return comparison, rec_before, rec_after
