"""Task arguments that may name the training runner's synthetic tasks, and the tasks of a run.

`load_task` takes every task argument `forgetscope.tasks.load_task` takes, plus
`synth_NAME` (the generator's items: 100 items, item seed 0, the generators'
default settings) and `synth_NAME@RUN_CONFIG` (a `forgetscope train` YAML/TOML
file: that run's source options, i.e. the items its sweep evaluates).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from forgetscope.tasks import load_task as load_task_spec
from forgetscope.tasks import Task, TaskError, TaskOptions
from forgetscope.tasks.base import item_limit
from forgetscope.train.config import RunConfig, load_run_config
from forgetscope.train.data import synthetic_generator
from forgetscope.train.fields import ConfigError
from forgetscope.train.synthetic import synthetic_tasks

#: the synthetic items a sweep evaluates unless its eval section says otherwise
DEFAULT_N_ITEMS = 100
DEFAULT_ITEM_SEED = 0


def load_task(arg: str, *, options: TaskOptions | None = None) -> Task:
    """A Task from any task argument, synthetic ones included (see the module docstring)."""
    if arg.startswith("synth_") and not Path(arg).exists():
        return synthetic_task(arg, options)
    return load_task_spec(arg, options=options)


def synthetic_task(arg: str, options: TaskOptions | None = None) -> Task:
    """`synth_NAME` or `synth_NAME@RUN_CONFIG` as a Task (see `load_task`); --limit and --name apply."""
    name, _, config = arg.partition("@")
    options = options or TaskOptions()
    unsupported = [f"--{key.replace('_', '-')}" for key in ("template", "target_delimiter", "num_fewshot",
                                                             "fewshot_source", "fewshot_seed")
                   if getattr(options, key) is not None]
    if options.prompt is not None and not options.prompt.is_plain:
        unsupported.append("--apply-chat-template/--system-instruction")
    if unsupported:
        raise TaskError(f"task {arg!r}: {', '.join(unsupported)} do(es) not apply to synthetic tasks "
                        "(their prompts are fixed by the generator)")
    try:
        if config:
            try:
                run = load_run_config(config)
            except (ConfigError, FileNotFoundError, ValueError) as exc:
                raise TaskError(f"task {arg!r}: {exc}") from None
            tasks = run_tasks(run, [name], n_items=DEFAULT_N_ITEMS, seed=DEFAULT_ITEM_SEED)
        else:
            tasks = synthetic_tasks([name], n_items=DEFAULT_N_ITEMS, seed=DEFAULT_ITEM_SEED)
    except KeyError as exc:
        raise TaskError(f"task {arg!r}: {exc.args[0]}") from None
    if len(tasks) != 1:
        raise TaskError(f"task {arg!r}: names a source, not one task; use one of "
                        f"{', '.join(t.name for t in tasks)}")
    task = tasks[0]
    if options.limit is not None:
        task = dataclasses.replace(task, items=task.items[: item_limit(options.limit, len(task.items))])
    return dataclasses.replace(task, name=options.name) if options.name else task


def run_tasks(config: RunConfig, names: list[str], n_items: int, seed: int) -> list["Task"]:
    """Tasks by name: a synthetic task or source of this run (as configured here), else any forgetscope task spec."""
    synthetic = {key: synthetic_generator(key, src) for key, src in config.sources.items() if src.type == "synthetic"}
    by_task = {t.name: t for gen in synthetic.values() for t in gen.tasks(n_items, seed)}
    out: list[Task] = []
    for name in names:
        if name in by_task:
            out.append(by_task[name])
        elif name in synthetic:
            out += synthetic[name].tasks(n_items, seed)
        else:
            out.append(load_task(name))
    return list({t.name: t for t in out}.values())
