"""`forgetscope sequence`, `heatmap` and `report`: follow items through several checkpoints, and draw it.

`sequence` evaluates (through the cache) or reads each checkpoint, like
`compare`; `heatmap` and `report` work on stored results only, so they never
load a model.

Checkpoint order for `heatmap` and `report` (RESULTS hold several checkpoints):
`--order NAME,NAME,...` (full names or the short names the figures show), or
`--manifest RUN` (the run's training order); by default the order in which
the RESULTS arguments are given, and within one argument holding several
checkpoints the order `compare`/`sequence` recorded there (checkpoint_order).
It is never guessed: without one, the command fails and says to give --order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import console, exit_code, fail, input_errors, print_table
from .executor import running
from .options import EXECUTOR, SCORING_GROUPS, MetricOpt, ResultsOpt, ScoringOptions, SeedOpt, TaskOpt, with_groups

ResultsArg = Annotated[list[Path], typer.Argument(help="Results directories or records files (from eval/compare/demo).")]
OrderOpt = Annotated[Optional[str], typer.Option(
    help="Checkpoint order: NAME1,NAME2,... (full or short names). Default: the manifest's order with --manifest, "
         "else the order of the RESULTS arguments, and within one argument the order compare/sequence recorded "
         "there (none recorded: an error, never a guess).")]
ManifestOpt = Annotated[Optional[Path], typer.Option(help="A training run's manifest.json (or its directory): its order.")]
IdenticalOpt = Annotated[bool, typer.Option(help="Keep only items identical at every checkpoint.")]
BootOpt = Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs.")]


#: What the report reads of every row: the figures' columns and the per-checkpoint settings (all
#: dictionary-encoded); listed items are read in full separately (store.load_item_rows).
REPORT_COLUMNS = ["model_fingerprint", "backend", "task_fingerprint", "settings_hash", "settings"]


def _note(message: str) -> None:
    typer.echo(f"note: {message}", err=True)


def _sequence_errors():
    from ..analysis.sequence import SequenceError

    return input_errors() + (SequenceError, ValueError)


@with_groups(*SCORING_GROUPS, EXECUTOR)
def sequence(
    checkpoints: Annotated[list[str], typer.Argument(
        help="Checkpoints in training order: model dirs, hub ids, .gguf files, records files/dirs, or a run's "
             "manifest.json (or its directory), which stands for all its checkpoints. NAME=PATH labels one "
             "NAME in the output.")],
    task: TaskOpt = [],  # noqa: B006 - typer needs a literal default
    output: ResultsOpt = "forgetscope-results",
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the tables as JSON here.")] = None,
    items_path: Annotated[Optional[Path], typer.Option(
        "--items", help="Write every item's trajectory here (.csv or .parquet).")] = None,
    show: Annotated[int, typer.Option(help="List this many items with the most forgetting events.")] = 10,
    metric: MetricOpt = "acc", identical_only: IdenticalOpt = False, n_bootstrap: BootOpt = 1000,
    seed: SeedOpt = 0, order: OrderOpt = None, manifest: ManifestOpt = None,
    revisions: Annotated[Optional[str], typer.Option(
        help="R1,R2,...: follow one hub CHECKPOINT through these revisions in this order (e.g. a Pythia's "
             "step1000,step2000); each is labelled by its revision.")] = None,
    wide: Annotated[bool, typer.Option(
        help="Show every figure of the pair tables (F, F chance, F max, BT with 95% CIs), not only the essential.")]
    = False,
    *,
    options: ScoringOptions,
) -> None:
    """Follow every item through a sequence of checkpoints: trajectories, forgetting events, first learned.

    With --manifest or --order, or without --task when every CHECKPOINT is stored results (e.g. a
    sweep's `results/`), they are ordered as `report` orders them; nothing is evaluated.
    """
    from ..analysis.sequence import SequenceError, is_manifest
    from ..engine.compare import is_records_path
    from ..engine.results import load_sequence

    names = None
    if revisions is not None:  # one model, several of its revisions
        names = [r.strip() for r in revisions.split(",") if r.strip()]
        if len(checkpoints) != 1 or len(names) < 2 or len(set(names)) < len(names):
            fail("--revisions takes one CHECKPOINT (a hub id) and two or more different revision names: "
                 "sequence ORG/NAME --revisions R1,R2")
        checkpoints = [f"{checkpoints[0]}@{r}" for r in names]
    stored = not task and all(is_records_path(a) and not is_manifest(a) for a in checkpoints)
    labels: dict[str, str] = {}
    try:
        if manifest is not None or order or stored:  # stored results: ordered as `report` orders them
            if task:
                raise SequenceError("--manifest/--order read stored results; evaluate with --task without them")
            seq, _ = load_sequence([Path(a) for a in checkpoints], order, manifest, minimal=True, note=_note,
                                   metric=metric, identical_only=identical_only, n_bootstrap=n_bootstrap, seed=seed)
        else:
            seq, labels = _evaluate_sequence(checkpoints, task, output, metric, identical_only, n_bootstrap, seed,
                                             options, names)
    except _sequence_errors() as exc:
        fail(str(exc), exit_code(exc))
    _print_sequence(seq, show, labels, wide)
    if json_path:
        from ..records.store import atomic_write_text

        atomic_write_text(json_path, json.dumps(sequence_json(seq), indent=2))
        typer.echo(f"wrote {json_path}")
    if items_path:
        _write_items(seq, items_path)
        typer.echo(f"wrote {items_path}")


def _evaluate_sequence(checkpoints, task, output, metric, identical_only, n_bootstrap, seed,
                       options: ScoringOptions, names: list[str] | None = None):
    """Evaluate (through the cache) every checkpoint, a manifest standing for its checkpoints (on Ray,
    the units of all checkpoints at once); also the NAME=PATH labels (checkpoint name in the records -> label)."""
    from ..analysis.sequence import RunManifest, checkpoint_sequence, is_manifest
    from ..engine.compare import is_records_path, record_evaluated_order, records_for_sides
    from ..records.schema import ANALYSIS_COLUMNS
    from .labels import split_label

    settings = options.settings(seed=seed)  # first: its note (--batch-size auto on CPU) before anything else
    sides: list[tuple[str, str | None, str | None]] = []  # (checkpoint, name in the records, label)
    for i, arg in enumerate(checkpoints):
        label, path = split_label(arg)
        if is_manifest(path):
            sides += [(str(c.path), c.name, None) for c in RunManifest.read(path).checkpoints]
        else:
            sides.append((path, names[i] if names else None, label or (names[i] if names else None)))
    tasks = options.load_tasks(task, [arg for arg, _, _ in sides])
    with running(options.executor()) as executor:
        # stored records: only what the figures need (a model side is evaluated and returned whole)
        frames = records_for_sides([(arg, name) for arg, name, _ in sides], tasks, output, settings,
                                   executor=executor, columns=ANALYSIS_COLUMNS)
    if not all(is_records_path(arg) for arg, _, _ in sides):  # models were evaluated into output: keep their order
        record_evaluated_order(output, frames)
    labels = {str(frame["checkpoint"].iloc[0]): label for frame, (_, _, label) in zip(frames, sides)
              if label and len(frame)}
    return checkpoint_sequence(frames, metric=metric, identical_only=identical_only, n_bootstrap=n_bootstrap,
                               seed=seed), labels


def heatmap(
    results: ResultsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Image file: .png or .svg.")] = Path("heatmap.png"),
    kind: Annotated[str, typer.Option(
        help="tasks (tasks × checkpoints), pairwise (checkpoint × checkpoint, one task), transitions (2×2 per "
             "task, first vs last) or raster (items × checkpoints, one task).")] = "tasks",
    value: Annotated[str, typer.Option(
        help="Figure for tasks/pairwise: forgetting_true, backward_transfer_true, forgetting, backward_transfer, "
             "acc_change, net_transfer_true, acc_after.")] = "forgetting_true",
    pairs: Annotated[str, typer.Option(help="tasks: each checkpoint vs the previous (consecutive) or the first.")]
    = "consecutive",
    categories: Annotated[bool, typer.Option(help="tasks/transitions: one row per (task, category).")] = False,
    task: Annotated[Optional[str], typer.Option("--task", "-t", help="The task (pairwise, raster).")] = None,
    order: OrderOpt = None, manifest: ManifestOpt = None, metric: MetricOpt = "acc",
    identical_only: IdenticalOpt = False,
) -> None:
    """Draw one heatmap from stored results (PNG or SVG; the same input gives the same file)."""
    from ..engine.results import load_sequence
    from ..records.checkpoint_order import short_names
    from ..report import heatmaps

    if kind not in ("tasks", "pairwise", "transitions", "raster"):
        fail(f"--kind {kind!r}: choose tasks, pairwise, transitions or raster")
    if pairs not in ("consecutive", "first"):
        fail("--pairs takes consecutive or first")
    if out.suffix.lower() not in (".png", ".svg"):
        fail(f"{out}: the image must end in .png or .svg")
    try:
        seq, _ = load_sequence(results, order, manifest, minimal=True, note=_note, metric=metric,
                               identical_only=identical_only, n_bootstrap=0)
        if kind in ("pairwise", "raster") and task is None:
            fail(f"--kind {kind} needs --task (one of {', '.join(seq.tasks)})")
        by = ["task", "category"] if categories else ["task"]
        if categories and not (seq.items["category"] != "").any():
            fail("--categories: no item has a category; leave the option out")
        short = short_names(seq.checkpoints)
        if kind == "tasks":
            table = seq.consecutive(by) if pairs == "consecutive" else seq.from_first(by)
            scope = "each checkpoint vs the previous" if pairs == "consecutive" else f"vs {short[0]}"
            drawn = heatmaps.task_heatmap(table, value, rows=by,
                                          title=f"{heatmaps.FIGURES[value].label}, {scope}" if value in
                                          heatmaps.FIGURES else None)
        elif kind == "transitions":
            drawn = heatmaps.transition_heatmap(
                seq.pair_summary(0, -1, by), rows=by,
                title=f"{short[0]} → {short[-1]}: items per transition (colour = share, counts in cells)")
        elif kind == "pairwise":
            drawn = heatmaps.pairwise_heatmap(seq.pairwise(task, value), value,
                                              title=f"{task}: {heatmaps.FIGURES[value].label}")
        else:
            drawn = heatmaps.raster_heatmap(seq.raster(task), title=f"{task}: correctness per item")
        heatmaps.save_figure(drawn.figure, out)
    except _sequence_errors() as exc:
        fail(str(exc))
    typer.echo(f"wrote {out} ({drawn.matrix.shape[0]} × {drawn.matrix.shape[1]})")


def report(
    results: ResultsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file.")] = Path("report.html"),
    order: OrderOpt = None, manifest: ManifestOpt = None, metric: MetricOpt = "acc",
    identical_only: IdenticalOpt = False, n_bootstrap: BootOpt = 1000,
    top: Annotated[int, typer.Option(help="Forgotten and learned items listed per task.")] = 5,
    title: Annotated[str, typer.Option(help="Report title.")] = "forgetscope report",
) -> None:
    """Write one self-contained HTML report (tables, heatmaps, items, settings): opens offline."""
    from ..engine.results import load_sequence
    from ..records.store import atomic_write_text, load_item_rows
    from ..report.html import render_report

    renamed: dict[str, str] = {}

    def item_rows(items):
        """The listed items' full rows, under the names the report uses."""
        rows = load_item_rows(results, items)
        rows["checkpoint"] = rows["checkpoint"].astype(str).map(lambda n: renamed.get(n, n))
        return rows

    try:
        from ..analysis.distances import score_columns  # per-choice scores: the KL and risk figures

        seq, records = load_sequence(results, order, manifest, minimal=True, note=_note,
                                     extra_columns=REPORT_COLUMNS + score_columns(metric), renamed=renamed,
                                     metric=metric,
                                     identical_only=identical_only, n_bootstrap=n_bootstrap)
        atomic_write_text(out, render_report(seq, records, title=title, top=top, item_rows=item_rows))
    except _sequence_errors() as exc:
        fail(str(exc))
    typer.echo(f"wrote {out} ({len(seq.checkpoints)} checkpoints, {len(seq.tasks)} tasks)")


def sequence_json(seq) -> dict:
    """The sequence's tables as JSON-safe lists of rows (NaN as null)."""
    def rows(frame):
        return json.loads(frame.to_json(orient="records"))

    return {"checkpoints": seq.checkpoints, "metric": seq.metric, "tasks": rows(seq.task_summary()),
            "consecutive": rows(seq.consecutive()), "from_first": rows(seq.from_first()), "notes": seq.notes}


#: headers of the sequence summary on two lines, so it reads at 100 columns
SUMMARY_HEADERS = {"n": "N", "acc_first": "acc\nfirst", "acc_last": "acc\nlast", "never_learned": "never\nlearned",
                   "unforgettable": "unforget-\ntable", "forgotten_at_least_once": "forgotten\n≥ once",
                   "forgetting_events": "forgetting\nevents", "learning_events": "learning\nevents"}


def _summary_cell(value) -> str:
    """A cell of the sequence summary: counts as counts (averaged ones with their decimals), rates to 3 places."""
    import numbers

    from ..report.tables import format_value

    if isinstance(value, numbers.Integral):
        return str(value)
    if isinstance(value, numbers.Real):
        return format_value(value, ".3f")
    return str(value)


def _write_items(seq, path: Path) -> None:
    import io

    from ..records.store import atomic_write_bytes

    items = seq.items.assign(task=seq.items["task"].astype(str))
    if path.suffix.lower() == ".parquet":
        buffer = io.BytesIO()
        items.to_parquet(buffer, index=False)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        atomic_write_bytes(path, items.to_csv(index=False).encode("utf-8"))


def _print_sequence(seq, show: int, labels: dict[str, str] | None = None, wide: bool = False) -> None:
    from rich.table import Table

    from ..records.checkpoint_order import short_names
    from ..report.tables import comparison_table, wide_hint

    out = console()
    short = {**dict(zip(seq.checkpoints, short_names(seq.checkpoints))), **(labels or {})}
    for note in seq.notes:
        out.print(f"[yellow]{note}[/yellow]")
    if len(seq.dropped):
        out.print(f"[yellow]compared identical items only; dropped {int(seq.dropped['n_dropped'].sum())} "
                      "item rows that differ from the first checkpoint[/yellow]")
    order = "  →  ".join(f"{i}: {short[n]}" for i, n in enumerate(seq.checkpoints))
    out.print(f"checkpoints: {order}   metric = {seq.metric}")

    def labelled(frame):
        return frame.assign(before=frame["before"].map(short), after=frame["after"].map(short))

    print_table(out, comparison_table(labelled(seq.consecutive()), "consecutive checkpoints",
                                      ["task", "before", "after"], wide=wide), wide)
    if len(seq.checkpoints) > 2:
        print_table(out, comparison_table(labelled(seq.from_first()), "relative to the first checkpoint",
                                          ["task", "before", "after"], wide=wide), wide)
    if not wide:
        out.print(f"[dim]{wide_hint(files='--json')}[/dim]")
    summary = seq.task_summary()
    table = Table(title="items along the sequence (rows = items × repeats)", title_justify="left",
                  header_style="bold")
    for column in summary.columns:
        table.add_column(SUMMARY_HEADERS.get(column, column.replace("_", " ")),
                         justify="left" if column == "task" else "right", overflow="fold", no_wrap=column != "task")
    for row in summary.itertuples(index=False):
        table.add_row(*(_summary_cell(v) for v in row))
    out.print(table)
    if show > 0:
        ranked = seq.items[seq.items["forgetting_events"] > 0].sort_values("forgetting_events", ascending=False,
                                                                          kind="stable").head(show)
        listed = Table(title="most often forgotten items (trajectory: one digit per checkpoint)",
                       title_justify="left", header_style="bold")
        for column in ("task", "item_id", "repeat", "trajectory", "forgetting events", "first learned"):
            listed.add_column(column, overflow="fold")
        for row in ranked.itertuples(index=False):
            first = short.get(row.first_learned, "never") if row.first_learned else "never"
            listed.add_row(str(row.task), str(row.item_id), str(row.repeat), row.trajectory,
                           str(row.forgetting_events), first)
        out.print(listed)
