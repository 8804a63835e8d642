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
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli import (
    AllowPickleOpt, BackendOpt, BatchOpt, BosOpt, DelimOpt, DeviceOpt, DtypeOpt, FewshotOpt, FewshotSeedOpt, FewshotSourceOpt,
    GGUFOpt, IncludePathOpt, LimitOpt, MaxLenOpt, MaxNewOpt, MetricOpt, OutputOpt, RemoteOpt, RepeatsOpt, SeedOpt, TaskOpt,
    TempOpt, TemplateOpt, ThreadsOpt, TopPOpt, _console, _errors, _fail, _load_tasks, _settings, app,
)

ResultsArg = Annotated[list[Path], typer.Argument(help="Results directories or records files (from eval/compare/demo).")]
OrderOpt = Annotated[Optional[str], typer.Option(
    help="Checkpoint order: NAME1,NAME2,... (full or short names). Default: the manifest's order with --manifest, "
         "else the order of the RESULTS arguments, and within one argument the order compare/sequence recorded "
         "there (none recorded: an error, never a guess).")]
ManifestOpt = Annotated[Optional[Path], typer.Option(help="A training run's manifest.json (or its directory): its order.")]
IdenticalOpt = Annotated[bool, typer.Option(help="Keep only items identical at every checkpoint.")]
BootOpt = Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs.")]


def _sequence_errors():
    from .analysis.sequence import SequenceError

    return _errors() + (SequenceError, ValueError)


@app.command()
def sequence(
    checkpoints: Annotated[list[str], typer.Argument(
        help="Checkpoints in training order: model dirs, hub ids, .gguf files, records files/dirs, or a run's "
             "manifest.json (or its directory), which stands for all its checkpoints.")],
    task: TaskOpt = [],  # noqa: B006 - typer needs a literal default
    output: OutputOpt = Path("forgetscope-results"),
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the tables as JSON here.")] = None,
    items_path: Annotated[Optional[Path], typer.Option(
        "--items", help="Write every item's trajectory here (.csv or .parquet).")] = None,
    show: Annotated[int, typer.Option(help="List this many items with the most forgetting events.")] = 10,
    metric: MetricOpt = "acc", identical_only: IdenticalOpt = False, n_bootstrap: BootOpt = 1000,
    backend: BackendOpt = "hf", device: DeviceOpt = "cpu", dtype: DtypeOpt = "float32", batch_size: BatchOpt = 16,
    max_length: MaxLenOpt = None, repeats: RepeatsOpt = 1, seed: SeedOpt = 0, temperature: TempOpt = 0.0,
    top_p: TopPOpt = 1.0, max_new_tokens: MaxNewOpt = None, gguf_file: GGUFOpt = None,
    trust_remote_code: RemoteOpt = False, add_special_tokens: BosOpt = None, threads: ThreadsOpt = None,
    limit: LimitOpt = None, num_fewshot: FewshotOpt = None, fewshot_source: FewshotSourceOpt = None,
    fewshot_seed: FewshotSeedOpt = None, template: TemplateOpt = None, target_delimiter: DelimOpt = None,
    order: OrderOpt = None, manifest: ManifestOpt = None, allow_pickle: AllowPickleOpt = False,
    include_path: IncludePathOpt = [],  # noqa: B006 - typer needs a literal default
) -> None:
    """Follow every item through a sequence of checkpoints: trajectories, forgetting events, first learned.

    With --manifest or --order, or without --task when every CHECKPOINT is stored results (e.g. a
    sweep's `results/`), they are ordered as `report` orders them; nothing is evaluated.
    """
    from .analysis.sequence import SequenceError, is_manifest
    from .compare import is_records_path

    stored = not task and all(is_records_path(a) and not is_manifest(a) for a in checkpoints)
    try:
        if manifest is not None or order or stored:  # stored results: ordered as `report` orders them
            if task:
                raise SequenceError("--manifest/--order read stored results; evaluate with --task without them")
            seq, _ = load_sequence([Path(a) for a in checkpoints], order, manifest, lean=True, metric=metric,
                                   identical_only=identical_only, n_bootstrap=n_bootstrap, seed=seed)
        else:
            seq = _evaluate_sequence(checkpoints, task, output, metric, identical_only, n_bootstrap, seed,
                                     _settings(backend, device, dtype, batch_size, max_length, repeats, seed,
                                               temperature, top_p, max_new_tokens, gguf_file, trust_remote_code,
                                               add_special_tokens, threads, allow_pickle=allow_pickle),
                                     (limit, num_fewshot, fewshot_source, fewshot_seed, template, target_delimiter,
                                      include_path))
    except _sequence_errors() as exc:
        _fail(str(exc))
    _print_sequence(seq, show)
    if json_path:
        from .store import atomic_write_text

        atomic_write_text(json_path, json.dumps(sequence_json(seq), indent=2))
        typer.echo(f"wrote {json_path}")
    if items_path:
        _write_items(seq, items_path)
        typer.echo(f"wrote {items_path}")


def _evaluate_sequence(checkpoints, task, output, metric, identical_only, n_bootstrap, seed, settings, task_options):
    """Evaluate (through the cache) every checkpoint, a manifest standing for its checkpoints."""
    from .analysis.sequence import RunManifest, checkpoint_sequence, is_manifest
    from .compare import is_records_path, record_evaluated_order, records_for
    from .report.progress import ProgressBars
    from .schema import ANALYSIS_COLUMNS

    sides: list[tuple[str, str | None]] = []
    for arg in checkpoints:
        if is_manifest(arg):
            sides += [(str(c.path), c.name) for c in RunManifest.read(arg).checkpoints]
        else:
            sides.append((arg, None))
    tasks = _load_tasks(task, *task_options)
    with ProgressBars() as progress:
        # stored records: only what the figures need (a model side is evaluated and returned whole)
        frames = [records_for(arg, tasks, output, settings, name=name, progress=progress, columns=ANALYSIS_COLUMNS)
                  for arg, name in sides]
    if not all(is_records_path(arg) for arg, _ in sides):  # models were evaluated into output: keep their order
        record_evaluated_order(output, frames)
    return checkpoint_sequence(frames, metric=metric, identical_only=identical_only, n_bootstrap=n_bootstrap,
                               seed=seed)


@app.command()
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
    from .report import heatmaps

    if kind not in ("tasks", "pairwise", "transitions", "raster"):
        _fail(f"--kind {kind!r}: choose tasks, pairwise, transitions or raster")
    if pairs not in ("consecutive", "first"):
        _fail("--pairs takes consecutive or first")
    if out.suffix.lower() not in (".png", ".svg"):
        _fail(f"{out}: the image must end in .png or .svg")
    try:
        seq, _ = load_sequence(results, order, manifest, lean=True, metric=metric, identical_only=identical_only,
                               n_bootstrap=0)
        if kind in ("pairwise", "raster") and task is None:
            _fail(f"--kind {kind} needs --task (one of {', '.join(seq.tasks)})")
        by = ["task", "category"] if categories else ["task"]
        if categories and not (seq.items["category"] != "").any():
            _fail("--categories: no item has a category; leave the option out")
        short = heatmaps.short_names(seq.checkpoints)
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
        _fail(str(exc))
    typer.echo(f"wrote {out} ({drawn.matrix.shape[0]} × {drawn.matrix.shape[1]})")


@app.command()
def report(
    results: ResultsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file.")] = Path("report.html"),
    order: OrderOpt = None, manifest: ManifestOpt = None, metric: MetricOpt = "acc",
    identical_only: IdenticalOpt = False, n_bootstrap: BootOpt = 1000,
    top: Annotated[int, typer.Option(help="Forgotten and learned items listed per task.")] = 5,
    title: Annotated[str, typer.Option(help="Report title.")] = "forgetscope report",
) -> None:
    """Write one self-contained HTML report (tables, heatmaps, items, settings): opens offline."""
    from .report.html import render_report
    from .store import atomic_write_text, load_item_rows

    renamed: dict[str, str] = {}

    def item_rows(items):
        """The listed items' full rows, under the names the report uses."""
        rows = load_item_rows(results, items)
        rows["checkpoint"] = rows["checkpoint"].astype(str).map(lambda n: renamed.get(n, n))
        return rows

    try:
        seq, records = load_sequence(results, order, manifest, lean=True, extra_columns=REPORT_COLUMNS,
                                     renamed=renamed, metric=metric, identical_only=identical_only,
                                     n_bootstrap=n_bootstrap)
        atomic_write_text(out, render_report(seq, records, title=title, top=top, item_rows=item_rows))
    except _sequence_errors() as exc:
        _fail(str(exc))
    typer.echo(f"wrote {out} ({len(seq.checkpoints)} checkpoints, {len(seq.tasks)} tasks)")


# ------------------------------------------------------------------------- helpers
#: What the report reads of every row: the figures' columns and the per-checkpoint settings (all
#: dictionary-encoded); listed items are read in full separately (store.load_item_rows).
REPORT_COLUMNS = ["model_fingerprint", "backend", "task_fingerprint", "settings_hash", "settings"]


def load_sequence(results: list[Path], order: str | None = None, manifest: Path | None = None, *,
                  lean: bool = False, extra_columns: list[str] | None = None, renamed: dict | None = None,
                  **options):
    """(CheckpointSequence, records) of stored results, in the order described in the module docstring.

    lean: read only what the figures need (the analysis columns, the model fingerprint and
    `extra_columns`), not prompts, answers and per-choice lists: a fraction of the memory for large
    records. `renamed` (a dict) receives stored checkpoint name -> the name used (manifest names).
    """
    import pandas as pd

    from .analysis.sequence import RunManifest, SequenceError, checkpoint_sequence
    from .report.heatmaps import short_names
    from .schema import ANALYSIS_COLUMNS, KEY_COLUMNS
    from .store import load_records

    extra = [c for c in ["model_fingerprint"] + (extra_columns or []) if c not in ANALYSIS_COLUMNS]
    columns = ANALYSIS_COLUMNS + list(dict.fromkeys(extra)) if lean else None
    frames, names, overlap, per_path = [], [], False, []
    for path in results:
        frame = load_records([path], columns=columns)
        own = sorted({str(n) for n in pd.unique(frame["checkpoint"])}, key=_natural)  # categorical: no 10M strings
        overlap |= any(n in names for n in own)
        frames.append(frame)
        names += [n for n in own if n not in names]
        per_path.append((path, own))
    if manifest is None and not order:
        names = _given_order(per_path)
    records = _concat_keeping_categories(frames) if len(frames) > 1 else frames[0]
    records["checkpoint"] = _as_text_categories(records["checkpoint"])
    if overlap:  # the same checkpoint in two arguments: its rows once
        records = records.drop_duplicates(KEY_COLUMNS, ignore_index=True)
    if manifest is not None:
        run = RunManifest.read(manifest)
        found = {}
        for name in names:
            for entry in run.checkpoints:
                if name == entry.name or _same_path(name, entry.path):
                    found[entry.name] = name
        unmatched = [e for e in run.checkpoints if e.name not in found]
        if unmatched:  # e.g. a sweep's records, named by stage: match them by the weights' fingerprint
            by_fingerprint = _names_by_fingerprint(records, names)
            for entry in unmatched:
                name = by_fingerprint.get(_fingerprint(entry.path))
                if name is not None and name not in found.values():
                    found[entry.name] = name
        missing = [e.name for e in run.checkpoints if e.name not in found]
        if missing:
            typer.echo(f"note: no records for manifest checkpoint(s) {', '.join(missing)}", err=True)
        rename = {v: k for k, v in found.items()}
        new_names = [rename.get(c, c) for c in records["checkpoint"].cat.categories]
        if len(set(new_names)) == len(new_names):
            records["checkpoint"] = records["checkpoint"].cat.rename_categories(new_names)
        else:  # a manifest name is also another checkpoint's stored name
            records["checkpoint"] = records["checkpoint"].astype(str).map(lambda n: rename.get(n, n))
        if renamed is not None:
            renamed.update(rename)
        names = [e.name for e in run.checkpoints if e.name in found]
    if order:
        wanted = [n.strip() for n in order.split(",") if n.strip()]
        aliases = dict(zip(short_names(names), names)) | {n: n for n in names}
        unknown = [n for n in wanted if n not in aliases]
        if unknown:
            raise SequenceError(f"--order names unknown checkpoint(s) {', '.join(unknown)}; the results hold "
                                f"{', '.join(names)}")
        names = [aliases[n] for n in wanted]
    return checkpoint_sequence(records, names, **options), records


def _given_order(per_path: list) -> list[str]:
    """Checkpoint names in the order given: the arguments' order and, inside one argument holding
    several checkpoints, the order recorded there by compare/sequence (checkpoint_order); never guessed."""
    from .analysis.sequence import SequenceError
    from .checkpoint_order import OrderError, known_order, recorded_orders, results_root

    names: list[str] = []
    ordered = []
    for path, own in per_path:
        if len(own) > 1:
            orders = recorded_orders(results_root(path))  # an unreadable order file: its own one-line error
            try:
                own = known_order(own, orders)
            except OrderError as exc:
                raise SequenceError(
                    f"{path} holds checkpoints {', '.join(own)} and their order is not known ({exc}); give it "
                    "with --order NAME1,NAME2,... (or --manifest RUN for a training run's order)") from None
        names += [n for n in own if n not in names]
        ordered.append((path, own))
    for path, own in ordered:
        if [n for n in names if n in own] != own:
            raise SequenceError(f"the arguments order checkpoints {', '.join(own)} ({path}) differently; give the "
                                "order with --order NAME1,NAME2,...")
    return names


def _as_text_categories(column):
    """The column as a categorical of str names (categories renamed, rows untouched)."""
    import pandas as pd

    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column.astype(str).astype("category")
    return column.cat.rename_categories([str(c) for c in column.cat.categories])


def _concat_keeping_categories(frames):
    """pd.concat that keeps categorical columns categorical (pandas falls back to objects when the
    categories differ: 10M Python strings for a checkpoint column)."""
    import pandas as pd

    for column in frames[0].columns:
        if all(isinstance(f[column].dtype, pd.CategoricalDtype) for f in frames if column in f.columns):
            union = pd.Index([]).append([f[column].cat.categories for f in frames if column in f.columns]).unique()
            for f in frames:
                if column in f.columns:
                    f[column] = f[column].cat.set_categories(union)
    return pd.concat(frames, ignore_index=True)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _names_by_fingerprint(records, names: list[str]) -> dict[str, str]:
    """model fingerprint -> the first checkpoint name (in `names` order) whose records carry it."""
    pairs = records[["checkpoint", "model_fingerprint"]].drop_duplicates()
    first: dict[str, str] = {}
    rank = {name: i for i, name in enumerate(names)}
    for name, fingerprint in sorted(pairs.itertuples(index=False), key=lambda p: rank.get(p[0], len(rank))):
        first.setdefault(str(fingerprint), str(name))
    return first


def _fingerprint(path: Path) -> str | None:
    """The checkpoint directory's model fingerprint (as stored in records), or None if unreadable."""
    from .fingerprint import FingerprintError, model_fingerprint

    try:
        return model_fingerprint(str(path)) if path.is_dir() else None
    except (FingerprintError, OSError):
        return None


def _same_path(name: str, path: Path) -> bool:
    try:
        return Path(name).resolve() == path
    except (OSError, ValueError):
        return False


def sequence_json(seq) -> dict:
    """The sequence's tables as JSON-safe lists of rows (NaN as null)."""
    def rows(frame):
        return json.loads(frame.to_json(orient="records"))

    return {"checkpoints": seq.checkpoints, "metric": seq.metric, "tasks": rows(seq.task_summary()),
            "consecutive": rows(seq.consecutive()), "from_first": rows(seq.from_first()), "notes": seq.notes}


def _write_items(seq, path: Path) -> None:
    import io

    from .store import atomic_write_bytes

    items = seq.items.assign(task=seq.items["task"].astype(str))
    if path.suffix.lower() == ".parquet":
        buffer = io.BytesIO()
        items.to_parquet(buffer, index=False)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        atomic_write_bytes(path, items.to_csv(index=False).encode("utf-8"))


def _print_sequence(seq, show: int) -> None:
    from rich.table import Table

    from .report.heatmaps import short_names
    from .report.tables import comparison_table

    console = _console()
    short = dict(zip(seq.checkpoints, short_names(seq.checkpoints)))
    for note in seq.notes:
        console.print(f"[yellow]{note}[/yellow]")
    if len(seq.dropped):
        console.print(f"[yellow]compared identical items only; dropped {int(seq.dropped['n_dropped'].sum())} "
                      "item rows that differ from the first checkpoint[/yellow]")
    order = "  →  ".join(f"{i}: {short[n]}" for i, n in enumerate(seq.checkpoints))
    console.print(f"checkpoints: {order}   metric = {seq.metric}")

    def labelled(frame):
        return frame.assign(before=frame["before"].map(short), after=frame["after"].map(short))

    console.print(comparison_table(labelled(seq.consecutive()), "consecutive checkpoints", ["task", "before", "after"]))
    if len(seq.checkpoints) > 2:
        console.print(comparison_table(labelled(seq.from_first()), "relative to the first checkpoint",
                                       ["task", "before", "after"]))
    summary = seq.task_summary()
    table = Table(title="items along the sequence (rows = items × repeats)", title_justify="left",
                  header_style="bold")
    for column in summary.columns:
        table.add_column(column.replace("_", " "), justify="left" if column == "task" else "right")
    for row in summary.itertuples(index=False):
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)
    if show > 0:
        ranked = seq.items[seq.items["forgetting_events"] > 0].sort_values("forgetting_events", ascending=False,
                                                                          kind="stable").head(show)
        listed = Table(title="most often forgotten items (trajectory: one digit per checkpoint)",
                       title_justify="left", header_style="bold")
        for column in ("task", "item_id", "repeat", "trajectory", "forgetting events", "first learned"):
            listed.add_column(column)
        for row in ranked.itertuples(index=False):
            first = short.get(row.first_learned, "never") if row.first_learned else "never"
            listed.add_row(str(row.task), str(row.item_id), str(row.repeat), row.trajectory,
                           str(row.forgetting_events), first)
        console.print(listed)
