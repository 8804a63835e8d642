"""Tasks: what gets scored, from built-ins, local files, HF datasets, BIG-bench or YAML specs.

`load_task` is the one entry point; every form of task argument becomes a
`TaskSpec`, so CLI overrides (`TaskOptions`) mean the same everywhere.
"""

from __future__ import annotations

from pathlib import Path

from forgetscope.tasks.base import (
    GenerationConfig,
    Item,
    Task,
    TaskError,
    generative_item,
    multiple_choice_item,
)
from forgetscope.tasks.bigbench import read_bigbench_json
from forgetscope.tasks.builtin import BUILTINS, BuiltinInfo, get_builtin
from forgetscope.tasks.lmeval import is_lmeval_task, lmeval_task
from forgetscope.tasks.local import DATA_SUFFIXES
from forgetscope.tasks.spec import FewShotSpec, TaskOptions, TaskSpec

SPEC_SUFFIXES = (".yaml", ".yml")


def spec_for(arg: str) -> TaskSpec:
    """The spec a task argument stands for.

    Forms, tried in this order: a built-in name (`arc_easy`); an existing path
    (.yaml/.yml spec, BIG-bench task.json, .jsonl/.json/.csv/.parquet file, or a
    dataset folder); `builtin=PATH` (a built-in's processing over local data in
    the hub schema; split at the first "=", the name must be a built-in).
    """
    if arg in BUILTINS:
        return TaskSpec(builtin=arg)
    path = Path(arg).expanduser()
    if path.exists():
        suffix = path.suffix.lower()
        if suffix in SPEC_SUFFIXES:
            return TaskSpec.from_yaml(path)
        if path.is_file() and read_bigbench_json(path) is not None:
            return TaskSpec(bigbench=str(path))
        if path.is_dir() or suffix in DATA_SUFFIXES:
            return TaskSpec(path=str(path))
        raise TaskError(
            f"{path}: unsupported task file; use a spec ({', '.join(SPEC_SUFFIXES)}), "
            f"a data file ({', '.join(DATA_SUFFIXES)}), a BIG-bench task.json or a dataset folder"
        )
    if "=" in arg:
        name, _, local = arg.partition("=")
        builtin = get_builtin(name)
        if not Path(local).expanduser().exists():
            raise TaskError(f"{local}: not found (from task {arg!r}); {builtin.info.local_hint}")
        return TaskSpec(builtin=name, path=str(Path(local).expanduser()))
    if path.suffix.lower() in SPEC_SUFFIXES + DATA_SUFFIXES:
        raise TaskError(f"{path}: file not found; check the path (relative paths start at {Path.cwd()})")
    raise TaskError(
        f"unknown task {arg!r}: not a built-in ({', '.join(BUILTINS)}) and no such file; "
        "give a data file, a spec .yaml, a BIG-bench task.json, or builtin=/path/to/local/data"
    )


def load_task(arg: str, *, options: TaskOptions | None = None) -> Task:
    """Build a Task from a task argument (see `spec_for`) with optional CLI overrides.

    The training runner's synthetic tasks (`synth_facts_mc`, ...) are built by its own
    generators: `forgetscope.train.tasks.load_task` takes those names as well.
    `lmeval:NAME` is a task, group or tag of lm-evaluation-harness (forgetscope.tasks.lmeval).
    """
    if is_lmeval_task(arg):
        return lmeval_task(arg, options)
    if arg.startswith("synth_") and not Path(arg).exists():
        raise TaskError(f"task {arg!r} is one of the training runner's synthetic tasks; load it with "
                        "forgetscope.train.tasks.load_task (the command line does)")
    return spec_for(arg).with_options(options).build(options.prompt if options else None)


def list_builtin_tasks() -> list[BuiltinInfo]:
    """Built-in tasks with their hub coordinates and how to run them over local files."""
    return [builtin.info for builtin in BUILTINS.values()]


__all__ = [
    "BuiltinInfo",
    "FewShotSpec",
    "GenerationConfig",
    "Item",
    "Task",
    "TaskError",
    "TaskOptions",
    "TaskSpec",
    "generative_item",
    "list_builtin_tasks",
    "load_task",
    "multiple_choice_item",
    "spec_for",
]
