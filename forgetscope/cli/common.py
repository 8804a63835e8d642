"""What every command shares: the console, the one-line error, the exceptions that mean bad input, the exit."""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn

import typer

from ..env import switched_on


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` on stderr and leave with `code` (2: bad input)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def console():
    """Rich console on stdout; when piped (logs, CI) tables get 200 columns instead of rich's 80.

    At 80 columns the wide tables (compare, the frontier) are cut into unreadable `0.…` cells;
    `COLUMNS` still wins when set.
    """
    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=False, width=width)


def task_summary_lines(records) -> list[str]:
    """One line per task of a records table: its items, accuracy and normalised accuracy (eval, import)."""
    summary = records.groupby("task", observed=True).agg(
        n=("item_id", "nunique"), acc=("correct", "mean"), acc_norm=("correct_norm", "mean"))
    return [f"{task}: n={int(row.n)}  acc={row.acc:.4f}  acc_norm={row.acc_norm:.4f}"
            for task, row in summary.iterrows()]


def print_table(out, table, wide: bool = False) -> None:
    """Print a rich table; a `--wide` one at its natural width, never cut to the terminal's (the terminal
    wraps its lines instead: every figure stays whole)."""
    if not wide:
        out.print(table)
        return
    width = out.width
    out.width = max(width, out.measure(table, options=out.options.update_width(10_000)).maximum)
    try:
        out.print(table, crop=False)
    finally:
        out.width = width


def input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, reported as one line with exit code 2 (a cluster that lost a
    unit's worker too often: one line, exit code 1, see `exit_code`)."""
    from ..analysis import PairingError
    from ..backends.base import BackendError
    from ..engine.compare import CompareError
    from ..engine.executor import ExecutorError, WorkerLostError
    from ..engine.fingerprint import FingerprintError
    from ..records.schema import SchemaError
    from ..records.store import StoreError
    from ..tasks.base import TaskError

    return (TaskError, BackendError, FingerprintError, StoreError, SchemaError, CompareError, PairingError,
            FileNotFoundError, ExecutorError, WorkerLostError)


def exit_code(exc: BaseException) -> int:
    """Exit code of an error from `input_errors()`: 1 when a cluster lost a worker (not the input's fault),
    else 2."""
    from ..engine.executor import WorkerLostError

    return 1 if isinstance(exc, WorkerLostError) else 2


def exit_process(code: object) -> NoReturn:
    """Leave the process; once torch is loaded, without the interpreter's teardown.

    Tearing down an interpreter that imported torch takes ~0.6 s on a 2-core machine
    (`python -c "import torch"`: 1.6 s, 1.0 s with os._exit), a tenth of scoring 500
    items with a small model. By now every command has closed its files; atexit handlers
    still run and stdout/stderr are flushed. With non-daemon threads alive, or
    FORGETSCOPE_FAST_EXIT=0, the ordinary exit.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    # Python's exit waits for non-daemon threads (daemon threads are dropped either way)
    waiting = any(t is not threading.main_thread() and not t.daemon for t in threading.enumerate())
    if "torch" not in sys.modules or waiting or not switched_on("FORGETSCOPE_FAST_EXIT"):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more to say
            pass
    os._exit(code)
