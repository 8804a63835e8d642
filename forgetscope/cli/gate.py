"""`forgetscope gate`: exit 1 when a candidate checkpoint forgot too much, 0 when not, 2 when it cannot tell.

A thin command over forgetscope.gate. Each side is read or evaluated the way
`compare` does it (engine.compare.records_for): a stored records file or directory is
read as it is, so the baseline need not be re-run; a model is evaluated on
--task through the cache. Whenever the gate cannot decide (unreadable or
non-UTF-8 file, missing task, mismatched items, no paired items, invalid
config, NaN scores, an unexpected failure) it exits 2, after writing the
JUnit, JSON and markdown outputs that were asked for with the reason: the
gate fails closed, and exit 1 only ever means "forgot too much".
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import fail, input_errors
from .options import SCORING_GROUPS, OutputOpt, ScoringOptions, SeedOpt, TaskOpt, with_groups


@with_groups(*SCORING_GROUPS)
def gate(
    baseline: Annotated[str, typer.Option(
        help="Before: a records file/dir (no re-run) or a model; NAME=PATH shows it as NAME.")],
    candidate: Annotated[str, typer.Option(
        help="After: a model, or a records file/dir (e.g. imported logs); NAME=PATH shows it as NAME.")],
    task: TaskOpt = [],  # noqa: B006 - typer needs a literal default
    config: Annotated[Optional[Path], typer.Option(
        help="Thresholds per task/category: a .yaml or .toml file (see docs/gate.md).")] = None,
    max_forgetting: Annotated[Optional[float], typer.Option(
        help="Largest chance-adjusted forgetting F_true allowed (default 0.02, or the config's).")] = None,
    alpha: Annotated[Optional[float], typer.Option(
        help="Significance level of the test that F_true exceeds the threshold (default 0.05).")] = None,
    prove_below: Annotated[Optional[bool], typer.Option(
        "--prove-below/--no-prove-below",
        help="Equivalence mode: a task passes only when F_true < its threshold is shown at level alpha "
             "(too few items fail); default: fail only when F_true > threshold is shown.")] = None,
    holm: Annotated[Optional[bool], typer.Option(
        "--holm/--no-holm", help="Holm-adjust p-values across the gated tasks and categories (default off).")] = None,
    metric: Annotated[Optional[str], typer.Option(help="acc, acc_norm, acc_per_token or exact_match.")] = None,
    identical_only: Annotated[bool, typer.Option(
        help="Gate only items identical on both sides (same id and hash), as compare does; the outputs say "
             "how many were dropped.")] = False,
    markdown: Annotated[Optional[Path], typer.Option(help="Write the markdown summary here.")] = None,
    junit: Annotated[Optional[Path], typer.Option(help="Write JUnit XML here (one test case per group).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the decisions as JSON here.")] = None,
    output: OutputOpt = Path("forgetscope-results"),
    seed: SeedOpt = 0,
    *,
    options: ScoringOptions,
) -> None:
    """Release gate: fail (exit 1) when some task's chance-adjusted forgetting exceeds its threshold, significantly
    (or, with --prove-below, unless it is shown to be below it).

    With two records sides, --task takes task names; with a model side, task specs (as `eval`)."""
    from ..engine.compare import is_records_path, records_for
    from ..gate import GateConfigError, GateError, decide, load_config, to_json, to_junit_xml, to_markdown
    from ..report.progress import ProgressBars
    from ..records.schema import ANALYSIS_COLUMNS

    from .labels import split_label

    outputs = {"markdown": markdown, "junit": junit, "json": json_path}
    (baseline_label, baseline), (candidate_label, candidate) = split_label(baseline), split_label(candidate)
    message = None
    try:
        gate_config = load_config(config, max_forgetting=max_forgetting, alpha=alpha, prove_below=prove_below,
                                  holm=holm, metric=metric)
        if is_records_path(baseline) and is_records_path(candidate):
            tasks = [_named(name) for name in task]
        else:
            tasks = options.load_tasks(task, [baseline, candidate])
        settings = options.settings(seed=seed)
        with ProgressBars() as progress:
            # a stored side loads only what the figures need (a fraction of the memory at scale)
            before = records_for(baseline, tasks, output, settings, progress=progress, columns=ANALYSIS_COLUMNS)
            after = records_for(candidate, tasks, output, settings, progress=progress, columns=ANALYSIS_COLUMNS)
        from ..analysis import compare_records

        comparison = compare_records(before, after, metric=gate_config.metric, identical_only=identical_only,
                                     n_bootstrap=0)
        result = decide(comparison, gate_config, tasks=[t.name for t in tasks] or None,
                        baseline=baseline_label or baseline, candidate=candidate_label or candidate)
    except typer.Exit as exc:  # refused with its own message already printed
        if exc.exit_code:
            _write_error("the gate's inputs were refused (see the error printed before this)", outputs)
        raise
    except (GateConfigError, GateError, *input_errors()) as exc:
        message = str(exc)
    except Exception as exc:  # noqa: BLE001 - a crash must not read as exit 1, "forgot too much"
        message = f"unexpected {type(exc).__name__} ({(str(exc).splitlines() or [''])[0]}); please report it"
    if message is not None:
        _write_error(message, outputs)
        fail(message)
    summary = to_markdown(result)
    typer.echo(summary)
    try:
        _write(outputs, summary, to_junit_xml(result), json.dumps(to_json(result), indent=2))
    except OSError as exc:
        fail(f"the gate {'passed' if result.passed else 'failed'}, but its outputs could not be written ({exc})")
    raise typer.Exit(result.exit_code)


def _named(name: str):
    """A task known only by name: records sides are filtered by it (compare.records_for needs `.name`)."""
    from ..tasks.base import Task

    return Task(name, [])


def _write(outputs: dict, summary: str, junit: str, json_text: str) -> None:
    from ..records.store import atomic_write_text

    for key, text in (("markdown", summary), ("junit", junit), ("json", json_text)):
        if outputs[key]:
            atomic_write_text(Path(outputs[key]), text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:  # GitHub Actions shows what is appended here on the run's page
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")


def _write_error(message: str, outputs: dict) -> None:
    """Outputs that show CI a broken gate (never a passing one); writing them must not hide the error."""
    from ..gate import error_junit_xml, error_markdown

    try:
        _write(outputs, error_markdown(message), error_junit_xml(message),
               json.dumps({"passed": False, "exit_code": 2, "error": message}, indent=2))
    except OSError as exc:
        typer.echo(f"warning: could not write the gate's outputs ({exc})", err=True)
