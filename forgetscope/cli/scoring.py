"""`forgetscope eval`, `compare` and `tasks`: score checkpoints, compare two of them item by item.

Heavy libraries (torch, transformers) load only inside the commands that score
a model, so `forgetscope --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import console, exit_code, fail, input_errors, print_table, task_summary_lines
from .executor import running
from .options import (
    EXECUTOR, SCORING_GROUPS, FlipTolOpt, MetricOpt, ResultsOpt, ScoringOptions, SeedOpt, TaskOpt, with_groups,
)


@with_groups(*SCORING_GROUPS, EXECUTOR)
def eval_command(
    checkpoint: Annotated[str, typer.Argument(help="Model directory, hub id or .gguf file.")],
    task: TaskOpt,
    output: ResultsOpt = "forgetscope-results",
    name: Annotated[Optional[str], typer.Option(help="Checkpoint name in the records (default: the path).")] = None,
    revision: Annotated[Optional[str], typer.Option(
        help="Hub revision (branch, tag or commit) of CHECKPOINT; the same as CHECKPOINT@REVISION.")] = None,
    seed: SeedOpt = 0,
    *,
    options: ScoringOptions,
) -> None:
    """Score every item of the tasks and write one records row per item (cached, resumable)."""
    from ..engine.evaluate import Checkpoint
    from ..engine.executor import EvalJob

    try:
        label = name or (f"{checkpoint}@{revision}" if revision else checkpoint)
        ckpt = Checkpoint(checkpoint, name=label, revision=revision)
        tasks = options.load_tasks(task, [ckpt])  # a chat template comes from the revision scored
        settings = options.settings(seed=seed)
        with running(options.executor()) as executor:
            records, = executor.evaluate([EvalJob(ckpt, tasks)], output, settings)
    except input_errors() as exc:
        fail(str(exc), exit_code(exc))
    out = console()
    for line in task_summary_lines(records):
        out.print(line)
    out.print(f"records: {output.rstrip('/')}/records ({len(records)} rows)")


@with_groups(*SCORING_GROUPS, EXECUTOR)
def compare(
    checkpoint_a: Annotated[str, typer.Argument(
        help="Before: model dir, hub id, .gguf, or a records file/dir; NAME=PATH labels it NAME in the output.")],
    checkpoint_b: Annotated[str, typer.Argument(
        help="After: model dir, hub id, .gguf, or a records file/dir; NAME=PATH labels it NAME in the output.")],
    task: TaskOpt = [],  # noqa: B006 - typer needs a literal default
    output: ResultsOpt = "forgetscope-results",
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the figures as JSON here.")] = None,
    csv_path: Annotated[Optional[Path], typer.Option(
        "--csv", help="Write every figure as CSV here (one row per task, category and overall).")] = None,
    wide: Annotated[bool, typer.Option(
        help="Show every figure (F, F chance, F max, BT with 95% CIs, unstable flips), not only the essential.")]
    = False,
    show_items: Annotated[Optional[str], typer.Option(help="List items with this transition: 1to0 or 0to1.")] = None,
    max_items: Annotated[int, typer.Option(help="Most items listed by --show-items.")] = 20,
    metric: MetricOpt = "acc",
    identical_only: Annotated[bool, typer.Option(
        help="Compare only items identical on both sides (same id and hash); print how many were dropped.")] = False,
    categories: Annotated[bool, typer.Option(help="Also print the table per category.")] = False,
    n_bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs of F and BT.")] = 1000,
    seed: SeedOpt = 0,
    flip_tolerance: FlipTolOpt = 1e-3,  # analysis.stability.DEFAULT_FLIP_TOLERANCE (not imported: --help stays fast)
    *,
    options: ScoringOptions,
) -> None:
    """Compare two checkpoints item by item: forgetting (1→0), backward transfer (0→1), chance-adjusted."""
    from ..analysis.answers import describe_items
    from ..analysis.distances import score_columns
    from ..engine.compare import compare_checkpoints
    from ..records.schema import ANALYSIS_COLUMNS
    from ..report.tables import comparison_table, items_table, wide_hint
    from .labels import checkpoint_labels

    if show_items not in (None, "1to0", "0to1"):
        fail("--show-items takes 1to0 or 0to1")
    (label_a, label_b), (checkpoint_a, checkpoint_b) = checkpoint_labels([checkpoint_a, checkpoint_b])
    try:
        tasks = options.load_tasks(task, [checkpoint_a, checkpoint_b])
        settings = options.settings(seed=seed)
        with running(options.executor()) as executor:
            comparison, before, after = compare_checkpoints(
                checkpoint_a, checkpoint_b, tasks, output, settings, metric=metric,
                identical_only=identical_only, n_bootstrap=n_bootstrap, seed=seed, executor=executor,
                # stored records: the figures need only the analysis columns, each row's decision margin
                # (unstable flips) and the per-choice scores (distances, risk); listed items are read in full below
                columns=list(dict.fromkeys(ANALYSIS_COLUMNS + score_columns(metric))), with_margins=True,
                flip_tolerance=flip_tolerance if flip_tolerance > 0 else None)
    except input_errors() as exc:
        fail(str(exc), exit_code(exc))
    out = console()
    for row in comparison.dropped.to_dict("records"):
        out.print(f"[yellow]{row['task']}: compared identical items only; dropped {row['n_dropped']} "
                      f"({row['n_changed']} changed, {row['n_only_before']} only in A, "
                      f"{row['n_only_after']} only in B)[/yellow]")
    for note in comparison.notes:
        out.print(f"[yellow]{note}[/yellow]")
    if len(comparison.overall):  # one plain sentence first (report.story)
        from ..report.story import comparison_sentence

        out.print(comparison_sentence(comparison.overall.iloc[0], "B"), markup=False, highlight=False)
    print_table(out, comparison_table(comparison.tasks, f"A = {label_a}   B = {label_b}   metric = {metric}",
                                      ["task"], wide=wide), wide)
    if categories and len(comparison.categories):
        print_table(out, comparison_table(comparison.categories, "per category", ["task", "category"], wide=wide),
                    wide)
    print_table(out, comparison_table(comparison.overall.assign(scope="overall"), "overall (from items)", ["scope"],
                                      wide=wide), wide)
    if flip_tolerance > 0 and comparison.flip_tolerance is None:
        out.print("[yellow]unstable flips not counted: the records lack loglikelihoods[/yellow]")
    if comparison.flip_tolerance is not None and wide:
        out.print(f"unstable: of the 1→0 and 0→1 flips, those whose decision margin is below "
                      f"{comparison.flip_tolerance:g} nats before or after (numeric noise can flip them); "
                      "F and BT still count every flip")
    if not wide:
        out.print(f"[dim]{wide_hint(comparison.flip_tolerance is not None)}[/dim]")
    if json_path:  # before the item list: the figures are written even if listing fails
        from ..records.store import atomic_write_text

        atomic_write_text(json_path, json.dumps(comparison.to_json_dict(), indent=2))
        out.print(f"wrote {json_path}")
    if csv_path:
        from ..records.store import atomic_write_bytes

        atomic_write_bytes(csv_path, figures_csv(comparison).encode("utf-8"))
        out.print(f"wrote {csv_path}")
    if show_items:
        from ..analysis import transition_items
        from ..engine.compare import is_records_path
        from ..records.store import StoreError, load_item_rows

        items = transition_items(comparison.paired, show_items)
        if items.empty:
            out.print(f"{show_items} items: none (no item flipped {show_items.replace('to', '→')})")
            return
        listed = items.head(max_items)
        try:  # a stored side was read minimal: its listed items' prompts and answers come from the files
            before, after = (load_item_rows([arg], listed) if is_records_path(arg) and "prompt" not in side.columns
                             else side for arg, side in ((checkpoint_a, before), (checkpoint_b, after)))
        except StoreError as exc:
            fail(str(exc))
        shown = describe_items(listed, before, after, metric)
        out.print(items_table(shown, f"{show_items} items: {len(items)} (showing {len(shown)})"))


def figures_csv(comparison) -> str:
    """Every figure of a comparison as CSV: one row per task, per (task, category), and overall."""
    import pandas as pd

    frames = [comparison.tasks.assign(scope="task", category=""),
              comparison.categories.assign(scope="category"),
              comparison.overall.assign(scope="overall", task="", category="")]
    table = pd.concat([f for f in frames if len(f)], ignore_index=True)
    first = ["scope", "task", "category"]
    return table[first + [c for c in table.columns if c not in first]].to_csv(index=False)


def tasks_command() -> None:
    """List the built-in tasks and how to point them at local data."""
    from rich.table import Table

    from ..tasks import list_builtin_tasks

    table = Table(title="built-in tasks", title_justify="left", header_style="bold")
    for column in ("name", "kind", "source (hub)", "description"):
        table.add_column(column, overflow="fold")
    for info in list_builtin_tasks():
        hub = info.hf_id + (f" ({info.hf_config})" if info.hf_config else "") + f", split {info.split}"
        table.add_row(info.name, info.kind, hub, info.description)
    out = console()
    out.print(table)
    out.print(
        "Offline or with your own copy: --task NAME=/path/to/data (a dataset saved with save_to_disk, a folder "
        "of data files, or one .jsonl/.json/.csv/.parquet file with the hub dataset's columns).\n"
        "Your own items: --task items.jsonl, a BIG-bench task.json, or a .yaml task spec (see docs/tasks.md)."
    )
