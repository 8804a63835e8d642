"""Sweeps: a grid over config fields → runs that share identical stages → evaluation → frontier.

A sweep file names a base run config (a path or an inline mapping), a grid of
dotted config paths (`stages.pretrain.early_exposure.fraction: [0, 0.5]`;
a stage is addressed by name or index) and what to evaluate. Every
combination becomes a run. Each stage lives in `stages/<name>-<hash>/`, named
by its plan hash, so a stage whose inputs are identical in two runs (e.g. the
pretraining of runs that differ only in fine-tuning LR) is trained once.
Every stage's final checkpoint (or every checkpoint) is evaluated with the
ordinary evaluator into `results/` (cached per item), and the frontier table
compares the runs (see `forgetscope.train.frontier`).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Callable

from pydantic.dataclasses import dataclass

from forgetscope.configio import CONFIG, List, Str, read_config
from forgetscope.configio import check as check_config
from forgetscope.records.store import atomic_write_text
from forgetscope.train.config import parse_run_config
from forgetscope.train.fields import ConfigError, check, join
from forgetscope.train.frontier import EvalConfig, SweepRun, evaluate_run, frontier_table, save_frontier


@dataclass(config=CONFIG)
class SweepConfig:
    """A base run, a grid over its fields, and the evaluation."""

    base: dict[Str, Any] | Str
    """The base run config: an inline mapping, or the path of a run config file (relative to the sweep file)."""
    grid: dict[Str, List[Any]] = dataclass_field(default_factory=dict)
    """Dotted config path → values; runs are the Cartesian product."""
    eval: EvalConfig = dataclass_field(default_factory=EvalConfig)
    """Evaluation of every stage checkpoint."""
    name: Str = "sweep"
    """Sweep name."""
    base_dir: Str = "."
    """Where relative paths of the base config resolve (set by the loader)."""


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read a sweep file (YAML or TOML); `base` may be a path to a run config file."""
    path = Path(path)
    file = read_config(path, ConfigError.of)
    data = file.data
    if isinstance(data, dict):
        if "base" not in data:
            raise file.locate(ConfigError("base", "is required: a run config mapping or the path of one"))
        data = {**data, "base_dir": str(path.resolve().parent)}
    sweep = check_config(SweepConfig, data, ConfigError.of, file=file)
    if isinstance(sweep.base, str):
        base_path = Path(sweep.base)
        base_path = base_path if base_path.is_absolute() else path.resolve().parent / base_path
        base = read_config(base_path, ConfigError.of)
        if not isinstance(base.data, dict):
            raise ConfigError("", "must hold a mapping of fields at the top level (a run config)", base.where())
        sweep.base, sweep.base_dir = base.data, str(base_path.resolve().parent)
    return sweep


def set_path(data: dict, dotted: str, value: Any) -> None:
    """Set `a.b.c` in nested mappings; inside a list, a part matches an element's `name` or an index."""
    parts = dotted.split(".")
    node: Any = data
    where = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            match = [j for j, el in enumerate(node) if isinstance(el, dict) and el.get("name") == part]
            if not match and part.isdigit() and int(part) < len(node):
                match = [int(part)]
            names = ", ".join(str(el.get("name")) for el in node if isinstance(el, dict))
            check(bool(match), join("grid", dotted), f"{where or 'list'} has no element {part!r} (names: {names})")
            if last:
                node[match[0]] = value
            node = node[match[0]]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise ConfigError(join("grid", dotted), f"{where} is not a mapping or list")
        where = join(where, part)


def _short_keys(keys: list[str]) -> dict[str, str]:
    """The shortest distinct dotted suffix of every grid key (for run names)."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            short = ".".join(parts[-n:])
            if sum(1 for k in keys if k.endswith(short)) == 1:
                out[key] = short
                break
        else:
            out[key] = key
    return out


def _run_name(values: dict[str, Any], short: dict[str, str]) -> str:
    """`fraction=0.5_lr=0.001`: readable and safe as a directory name ('/' and spaces become '_')."""
    name = "_".join(f"{short[k]}={v}" for k, v in values.items()) or "base"
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name)[:120]


def expand(sweep: SweepConfig) -> list[SweepRun]:
    """Every grid combination as a validated run config (errors name the run and the field)."""
    check(isinstance(sweep.base, dict), "base", "is a path; read the sweep with load_sweep_config, which loads it")
    keys = list(sweep.grid)
    for key in keys:
        check(isinstance(sweep.grid[key], list) and len(sweep.grid[key]) > 0, join("grid", key),
              "needs a non-empty list of values")
    short = _short_keys(keys)
    runs = []
    for combo in itertools.product(*(sweep.grid[k] for k in keys)):
        values = dict(zip(keys, combo))
        name = _run_name(values, short)
        data = copy.deepcopy(sweep.base)
        for key, value in values.items():
            set_path(data, key, value)
        data["name"] = name
        try:
            config = parse_run_config(data, base_dir=sweep.base_dir)
        except ConfigError as exc:
            raise ConfigError(exc.path, f"{exc.message} (in run {name})", exc.where) from None
        runs.append(SweepRun(name, values, config))
    names = [r.name for r in runs]
    check(len(set(names)) == len(names), "grid", "two runs got the same name; make the values distinct")
    return runs


def write_sweep_file(sweep: SweepConfig, runs: list[SweepRun], output: Path) -> None:
    """sweep.json: the grid and every run's values."""
    atomic_write_text(output / "sweep.json", json.dumps({
        "name": sweep.name, "grid": sweep.grid, "runs": [{"name": r.name, "values": r.values} for r in runs]},
        indent=1, default=str))


def tokenizer_dir_for(run: SweepRun, output: Path) -> Path:
    """Where a run's tokenizer lives: shared by every run trained on the same sources and settings."""
    from forgetscope.train.data import source_fingerprint
    from forgetscope.train.prepare import tokenizer_hash

    fps = {k: source_fingerprint(k, s, run.config.base_dir) for k, s in run.config.sources.items()}
    return output / "tokenizers" / tokenizer_hash(run.config, fps)[:12]


def stage_home_for(output: Path) -> Callable:
    return lambda plan: output / "stages" / f"{plan.name}-{plan.hash[:12]}"


@dataclass
class SweepResult:
    """Where everything went, and the frontier."""

    output: Path
    runs: list[SweepRun]
    frontier: Any
    """pandas DataFrame, one row per run (also frontier.csv)."""
    evaluations: dict[str, dict] = dataclass_field(default_factory=dict)
    """run → {"post": records, "finetune": records, ...} of the final checkpoints (for per-item views)."""
    trained: dict[str, list[str]] = dataclass_field(default_factory=dict)
    """run → stages it trained (the rest were shared or reused)."""
    units: list = dataclass_field(default_factory=list)
    """On Ray: every evaluation unit and where it ran (engine.executor.UnitReport)."""


def run_sweep(sweep: SweepConfig, output: str | Path, *, device: str = "auto", log: Callable[[str], None] | None = print,
              log_every: int = 50, progress=None, plot: bool = True) -> SweepResult:
    """Train every run (sharing identical stages), evaluate every stage checkpoint, write the frontier."""
    from forgetscope.train.runner import train_run

    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("", "a sweep runs in one process (it evaluates as it goes); use torchrun with "
                              "`forgetscope train` for a single run")
    output = Path(output)
    say = log or (lambda _m: None)
    result = start_sweep(sweep, output)
    for run in result.runs:
        tok_dir = tokenizer_dir_for(run, output)
        say(f"── run {run.name}")
        done = train_run(run.config, output / "runs" / run.name, stage_home=stage_home_for(output),
                         tokenizer_dir=tok_dir, device=device, log=log, log_every=log_every)
        result.trained[run.name] = done.trained
    return finish_sweep(result, sweep, device=device, progress=progress, plot=plot)


def start_sweep(sweep: SweepConfig, output: Path) -> SweepResult:
    """Expand the grid into runs and write sweep.json: the result training and evaluation fill in."""
    runs = expand(sweep)
    result = SweepResult(output, runs, None)
    write_sweep_file(sweep, runs, output)
    return result


def finish_sweep(result: SweepResult, sweep: SweepConfig, *, device: str, progress=None, plot: bool = True,
                 planned: dict[str, Any] | None = None) -> SweepResult:
    """Evaluate every run's stage checkpoints (rows already stored are read, not scored again), write the frontier.
    `planned`: run → what `run_evaluations` returned for it, where the caller has it."""
    rows = []
    for run in result.runs:
        row, evaluation = evaluate_run(run, result.output, sweep.eval, device=device, progress=progress,
                                       planned=(planned or {}).get(run.name))
        rows.append(row)
        result.evaluations[run.name] = evaluation
    result.frontier = frontier_table(rows)
    save_frontier(result.frontier, result.output, plot=plot)
    return result
