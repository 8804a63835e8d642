"""`forgetscope import lm-eval|lighteval|inspect|olmes PATH`: other tools' per-sample logs → records.

A thin layer over forgetscope.importers: read the logs, write the records
into the results directory, and say which directory to hand to `compare`,
`report` or `gate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from .common import console, fail, input_errors, task_summary_lines
from .options import OutputOpt

import_app = typer.Typer(
    help="Import per-sample logs of lm-evaluation-harness, lighteval, Inspect AI or OLMES as records "
         "(no model is run).",
    no_args_is_help=True,
)

NameOpt = Annotated[Optional[str], typer.Option(
    help="Checkpoint name in the records (default: the model named in the logs).")]
ImportMetricOpt = Annotated[Optional[str], typer.Option(
    "--metric", help="0/1 per-sample metric that says right or wrong for generative tasks "
                     "(default: exact_match for lm-eval and OLMES; em, exact_match, ... for lighteval).")]


@import_app.command("lm-eval")
def import_lmeval(
    path: Annotated[Path, typer.Argument(help="A samples_<task>_<time>.jsonl file or the --output_path directory.")],
    output: OutputOpt = Path("forgetscope-results"),
    name: NameOpt = None,
    metric: ImportMetricOpt = None,
    filter_name: Annotated[Optional[str], typer.Option(
        "--filter", help="Which filter's responses to import when a task logs several (e.g. strict-match).")] = None,
) -> None:
    """Import lm-evaluation-harness `--log_samples` output (samples_*.jsonl)."""
    from ..importers import read_lmeval

    _import(read_lmeval, output, path, checkpoint=name, metric=metric, filter_name=filter_name)


@import_app.command("lighteval")
def import_lighteval(
    path: Annotated[Path, typer.Argument(help="A details_*.parquet file or a directory holding them.")],
    output: OutputOpt = Path("forgetscope-results"),
    name: NameOpt = None,
    metric: ImportMetricOpt = None,
) -> None:
    """Import lighteval `--save-details` output (details_*.parquet)."""
    from ..importers import read_lighteval

    _import(read_lighteval, output, path, checkpoint=name, metric=metric)


@import_app.command("inspect")
def import_inspect(
    path: Annotated[Path, typer.Argument(help="An Inspect AI log (.eval or .json) or a log directory.")],
    output: OutputOpt = Path("forgetscope-results"),
    name: NameOpt = None,
    scorer: Annotated[Optional[str], typer.Option(
        "--metric", help="The scorer whose C/I (or 0/1) scores say right or wrong, when a log has several.")] = None,
) -> None:
    """Import Inspect AI eval logs (.eval or .json); needs inspect_ai (the `inspect` extra of forgetscope)."""
    from ..importers import read_inspect

    _import(read_inspect, output, path, checkpoint=name, metric=scorer)


@import_app.command("olmes")
def import_olmes(
    path: Annotated[Path, typer.Argument(help="A task-NNN-<task>-predictions.jsonl file or the --output-dir.")],
    output: OutputOpt = Path("forgetscope-results"),
    name: NameOpt = None,
    metric: ImportMetricOpt = None,
) -> None:
    """Import OLMES (oe_eval) prediction files (task-NNN-<task>-predictions.jsonl and their metrics.json)."""
    from ..importers import read_olmes

    _import(read_olmes, output, path, checkpoint=name, metric=metric)


def _import(reader: Callable[..., Any], output: Path, path: Path, **options: Any) -> None:
    """Read the logs with `reader` (an importers.read_*) and write them as records; bad logs: one line, exit 2."""
    from ..importers import LogFormatError

    try:
        run = reader(path, **options)
    except (LogFormatError, *input_errors()) as exc:
        fail(str(exc))
    _write(run, output)


def _write(run, output: Path) -> None:
    from ..importers import write_run

    try:
        records_dir = write_run(run, output)
    except (*input_errors(), OSError) as exc:
        fail(str(exc))
    out = console()
    records = run.records
    for line in task_summary_lines(records):
        out.print(line, highlight=False)
    for note in run.notes:
        out.print(f"[yellow]{note}[/yellow]")
    out.print(f"imported {len(records)} rows of {run.checkpoint!r} ({run.backend}) into {records_dir}",
              highlight=False, soft_wrap=True)
    out.print(f"compare it: forgetscope compare {records_dir} OTHER_RECORDS_OR_MODEL", highlight=False,
              soft_wrap=True)
