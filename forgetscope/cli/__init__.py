"""`forgetscope` command line: thin commands over the library, one module per command group.

    scoring.py   eval, compare, tasks        report.py   sequence, heatmap, report
    noise.py     noise                       gate.py     gate
    train.py     train, sweep                imports.py  import lm-eval | lighteval
    demo.py      demo                        merge.py    merge
    risk.py      risk

Options shared by several commands are declared once (options.py); who
scores (--executor local|ray, a progress display each) is executor.py; the
commands are registered below, in the order `forgetscope --help` lists them.
Heavy libraries (torch, transformers) load only inside the commands that
score a model, so `forgetscope --help` stays fast.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from . import demo, gate, imports, merge, noise, report, risk, scoring, train
from .common import exit_process
from .options import lm_eval_spellings, optional_values

#: width of --help when it is not shown on a terminal (piped, in a file): rich's default, 80,
#: cuts option names off (`--apply-chat-templ…`); COLUMNS or TERMINAL_WIDTH still win
HELP_WIDTH = 100


class _App(TyperGroup):
    """The command group; lm-eval's underscore spellings become forgetscope's and options that may go
    without their value get it first (options.lm_eval_spellings, optional_values),
    and help that is not shown on a terminal gets HELP_WIDTH columns."""

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        return super().parse_args(ctx, optional_values(lm_eval_spellings(args)))

    def main(self, args=None, *rest, **options):  # type: ignore[no-untyped-def]
        import os
        import sys

        words = sys.argv[1:] if args is None else list(args)
        if (words and "--help" not in words and "-h" not in words) or sys.stdout.isatty() \
                or os.environ.get("COLUMNS") or os.environ.get("TERMINAL_WIDTH"):
            return super().main(args, *rest, **options)
        from typer import rich_utils

        width, rich_utils.MAX_WIDTH = rich_utils.MAX_WIDTH, rich_utils.MAX_WIDTH or HELP_WIDTH
        try:
            return super().main(args, *rest, **options)
        finally:
            rich_utils.MAX_WIDTH = width


app = typer.Typer(
    cls=_App,
    help="Which benchmark items did a model forget or newly learn between two checkpoints?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("eval")(scoring.eval_command)
app.command("compare")(scoring.compare)
app.command("tasks")(scoring.tasks_command)
app.command("demo")(demo.demo)
app.command("noise")(noise.noise)
app.command("train")(train.train_command)
app.command("sweep")(train.sweep_command)
app.command("sequence")(report.sequence)
app.command("heatmap")(report.heatmap)
app.command("report")(report.report)
app.add_typer(imports.import_app, name="import")
app.command("gate")(gate.gate)
app.command("risk")(risk.risk_command)
app.command("merge")(merge.merge_command)


def main() -> None:  # console-script entry point
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        typer.echo("interrupted: finished rows are saved; re-run the same command to resume", err=True)
        code: object = 130
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    exit_process(code)


__all__ = ["app", "main"]
