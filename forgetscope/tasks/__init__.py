"""Tasks: what gets scored, from built-ins, local files, HF datasets, BIG-bench or YAML specs.

`load_task` is the one entry point; every form of task argument becomes a
`TaskSpec`, so CLI overrides (`TaskOptions`) mean the same everywhere.
"""

from __future__ import annotations

import dataclasses
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

    `lmeval:NAME` is a task, group or tag of lm-evaluation-harness (forgetscope.tasks.lmeval).
    `synth_*` names are the training runner's synthetic tasks (`synth_facts_mc`, ...): 100 items,
    item seed 0, the generators' default settings, or with `NAME@RUN_CONFIG` (a `forgetscope train`
    YAML/TOML file) that run's source options, i.e. the items its sweep evaluates.
    """
    if arg.startswith("synth_") and not Path(arg).exists():
        return synthetic_task(arg, options)
    if is_lmeval_task(arg):
        return lmeval_task(arg, options)
    return spec_for(arg).with_options(options).build()


def synthetic_task(arg: str, options: TaskOptions | None = None) -> Task:
    """`synth_NAME` or `synth_NAME@RUN_CONFIG` as a Task (see `load_task`); --limit and --name apply."""
    from forgetscope.train.sweep import EvalConfig
    from forgetscope.train.synthetic import synthetic_tasks

    defaults = EvalConfig()  # the items a sweep evaluates unless its eval section says otherwise
    name, _, config = arg.partition("@")
    options = options or TaskOptions()
    unsupported = [f"--{key.replace('_', '-')}" for key in ("template", "target_delimiter", "num_fewshot",
                                                             "fewshot_source", "fewshot_seed")
                   if getattr(options, key) is not None]
    if unsupported:
        raise TaskError(f"task {arg!r}: {', '.join(unsupported)} do(es) not apply to synthetic tasks "
                        "(their prompts are fixed by the generator)")
    try:
        if config:
            from forgetscope.train.config import load_run_config
            from forgetscope.train.fields import ConfigError
            from forgetscope.train.frontier import run_tasks

            try:
                run = load_run_config(config)
            except (ConfigError, FileNotFoundError, ValueError) as exc:
                raise TaskError(f"task {arg!r}: {exc}") from None
            tasks = run_tasks(run, [name], n_items=defaults.n_items, seed=defaults.item_seed)
        else:
            tasks = synthetic_tasks([name], n_items=defaults.n_items, seed=defaults.item_seed)
    except KeyError as exc:
        raise TaskError(f"task {arg!r}: {exc.args[0]}") from None
    if len(tasks) != 1:
        raise TaskError(f"task {arg!r}: names a source, not one task; use one of "
                        f"{', '.join(t.name for t in tasks)}")
    task = tasks[0]
    if options.limit is not None:
        if options.limit < 1:
            raise TaskError(f"limit must be at least 1, got {options.limit}")
        task = dataclasses.replace(task, items=task.items[: options.limit])
    return dataclasses.replace(task, name=options.name) if options.name else task


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
