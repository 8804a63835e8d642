"""`forgetscope train CONFIG` and `forgetscope sweep CONFIG`: the training runner's commands.

Thin wrappers over `forgetscope.train.runner.train_run` and
`forgetscope.train.sweep.run_sweep`; config errors print one line naming the
field and exit with code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import console, exit_code, fail
from .options import EXECUTOR, DeviceOpt, ScoringOptions, ThreadsOpt, with_groups

ConfigArg = Annotated[Path, typer.Argument(help="Config file (.yaml, .yml or .toml).")]
LogEveryOpt = Annotated[int, typer.Option(help="Print loss and tokens/s every N steps.")]


def _setup(threads: Optional[int]) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _plain(out):
    """Log lines are plain text: "[pretrain] step 10" must not be read as rich markup."""
    return lambda message: out.print(message, markup=False, highlight=False)


def _train_errors() -> tuple[type[BaseException], ...]:
    from ..backends.base import BackendError  # e.g. a diverged stage checkpoint that scores NaN
    from ..engine.executor import ExecutorError, WorkerLostError
    from ..train.fields import ConfigError
    from ..train.runner import RunError

    return (ConfigError, RunError, BackendError, FileNotFoundError, ExecutorError, WorkerLostError)


def train_command(
    config: ConfigArg,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Run directory (default: runs/NAME).")] = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Retrain stages whose settings changed since they were trained.")] = False,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after N optimizer steps (run again to resume).")] = None,
    log_every: LogEveryOpt = 50,
) -> None:
    """Train every stage of a run config: checkpoints + manifest.json; resumes a killed run (also under torchrun)."""
    from ..train.config import load_run_config
    from ..train.runner import train_run

    _setup(threads)
    out = console()
    try:
        run_config = load_run_config(config)
        result = train_run(run_config, output or Path("runs") / run_config.name, device=device, overwrite=overwrite,
                           max_steps=max_steps, log=_plain(out), log_every=log_every)
    except _train_errors() as exc:
        fail(str(exc))
    import os

    if os.environ.get("RANK", "0") == "0":
        state = "finished" if result.finished else "stopped (run the same command to resume)"
        out.print(f"{state}: {result.manifest}")


@with_groups(EXECUTOR)
def sweep_command(
    config: ConfigArg,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Sweep directory (default: sweeps/NAME).")] = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = None,
    plot: Annotated[bool, typer.Option(help="Also draw frontier.png.")] = True,
    log_every: LogEveryOpt = 50,
    *,
    options: ScoringOptions,
) -> None:
    """Expand a grid into runs, train them (sharing identical stages), evaluate every stage, print the frontier."""
    from ..engine.executor import check_executor
    from ..report.progress import OverallProgress, ProgressBars, units_table
    from ..train.frontier import frontier_rich_table
    from ..train.sweep import load_sweep_config, run_sweep

    out = console()
    choice = options.executor()
    try:
        check_executor(choice.kind, choice.address, choice.workers)
        sweep = load_sweep_config(config)
        if choice.kind == "ray":
            from ..train.sweep_ray import run_sweep_on_ray

            with OverallProgress(out) as progress:
                result = run_sweep_on_ray(sweep, output or Path("sweeps") / sweep.name, address=choice.address,
                                          workers=choice.workers, device=device, threads=threads, log=_plain(out),
                                          log_every=log_every, progress=progress, plot=plot)
        else:
            _setup(threads)
            with ProgressBars(out) as progress:
                result = run_sweep(sweep, output or Path("sweeps") / sweep.name, device=device, log=_plain(out),
                                   log_every=log_every, progress=progress, plot=plot)
    except _train_errors() as exc:
        fail(str(exc), exit_code(exc))
    if result.units:
        out.print(units_table(result.units))
    out.print(frontier_rich_table(result.frontier))
    out.print(f"frontier: {result.output / 'frontier.csv'}")
