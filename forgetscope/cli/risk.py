"""`forgetscope risk CKPT --task T`: which items a fine-tune of CKPT is most likely to forget.

Scores from CKPT alone (analysis.risk): the gold margin (risk = −margin),
the entropy of the choice distribution, and with `--history` (earlier
checkpoints, oldest first) the forgetting events and learning lateness of
each item. Items right at CKPT are listed first, highest risk first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import console, fail, input_errors
from .options import MODEL, TASKS, VLLM, MetricOpt, OutputOpt, ScoringOptions, TaskOpt, with_groups


@with_groups(MODEL, VLLM, TASKS)  # greedy decisions, once: the risk scores come from the choice scores
def risk_command(
    checkpoint: Annotated[str, typer.Argument(help="The checkpoint to be fine-tuned: model dir, hub id, or records.")],
    task: TaskOpt = [],  # noqa: B006 - typer needs a literal default; stored records need none
    history: Annotated[list[str], typer.Option(
        help="An earlier checkpoint (model or records), oldest first; repeatable.")] = [],  # noqa: B006
    top: Annotated[int, typer.Option(help="Items shown.")] = 20,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write every item's scores here.")] = None,
    metric: MetricOpt = "acc",
    output: OutputOpt = Path("forgetscope-results"),
    *,
    options: ScoringOptions,
) -> None:
    """Rank the items of CKPT by how likely a fine-tune is to forget them (low gold margin first)."""
    from rich.table import Table

    from ..analysis.distances import ScoresError
    from ..analysis.risk import rank_items
    from ..engine.compare import records_for
    from ..records.store import atomic_write_bytes
    from ..report.progress import ProgressBars

    from .labels import checkpoint_labels

    (label,), (checkpoint,) = checkpoint_labels([checkpoint])
    try:
        tasks = options.load_tasks(task, [checkpoint, *history])
        settings = options.settings()
        with ProgressBars() as progress:
            records = records_for(checkpoint, tasks, output, settings, progress=progress)
            earlier = [records_for(arg, tasks, output, settings, progress=progress) for arg in history]
        ranked = rank_items(records, metric, earlier or None)
    except (*input_errors(), ScoresError, ValueError) as exc:
        fail(str(exc))
    out = console()
    right = ranked[ranked["correct"]]
    table = Table(title=f"{label}: {len(right)} of {len(ranked)} items right; most at risk first "
                        "(risk = −gold margin)", title_justify="left", header_style="bold")
    shown = [c for c in ranked.columns if c != "correct"]
    for name in shown:
        table.add_column(name, overflow="fold", justify="left" if name in ("task", "category", "item_id") else "right")
    for row in right.head(top).itertuples(index=False):
        table.add_row(*(_cell(getattr(row, c)) for c in shown))
    out.print(table)
    if csv:
        atomic_write_bytes(csv, ranked.to_csv(index=False).encode("utf-8"))
        out.print(f"wrote {csv}")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"  # no margin (generative): empty
    return str(value)
