"""Evaluate a sweep run's stage checkpoints and reduce them to one frontier row.

The frontier asks: how much of the post-training capability survives
fine-tuning, against how well the fine-tuning objective is learned? Per run:

- `target_acc_pre/post/ft`: accuracy on the target (post-training) tasks after
  pretraining, post-training and fine-tuning, pooled over items;
- `target_loss_post/ft`: validation loss on the target source (from the manifest);
- `F_true`: chance-adjusted forgetting of the fine-tuned checkpoint against the
  post-trained one on the target tasks, item by item (`compare_records`),
  with `n_forgotten` (1→0) and `n_learned` (0→1) items;
- `downstream_acc_post/ft`, `downstream_loss_ft`: the fine-tuning objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic.dataclasses import dataclass as config_dataclass

from forgetscope.configio import CONFIG, Bool, Int, List, Str
from forgetscope.records.store import atomic_write_text
from forgetscope.train.checkpoints import read_manifest
from forgetscope.train.config import Positive, RunConfig, StageConfig
from forgetscope.train.fields import ConfigError

from forgetscope.train.tasks import DEFAULT_ITEM_SEED, DEFAULT_N_ITEMS, run_tasks

if TYPE_CHECKING:
    import pandas as pd

FRONTIER_COLUMNS: list[tuple[str, str, str]] = [
    ("target_acc_pre", "target acc pre", ".3f"),
    ("target_acc_post", "target acc post", ".3f"),
    ("target_acc_ft", "target acc ft", ".3f"),
    ("target_loss_post", "target loss post", ".3f"),
    ("target_loss_ft", "target loss ft", ".3f"),
    ("F_true", "F_true", ".3f"),
    ("n_forgotten", "1→0", "d"),
    ("n_learned", "0→1", "d"),
    ("downstream_acc_post", "down acc post", ".3f"),
    ("downstream_acc_ft", "down acc ft", ".3f"),
    ("downstream_loss_ft", "down loss ft", ".3f"),
]
"""(column, printed header, format); the CSV has every column under its full name."""


@config_dataclass(config=CONFIG)
class EvalConfig:
    """What every stage checkpoint of a sweep is evaluated on."""

    target_tasks: List[Str] | None = None
    """Tasks of the post-training capability (default: the tasks of the post-training stage's main source)."""
    downstream_tasks: List[Str] | None = None
    """Tasks of the fine-tuning objective (default: the tasks of the fine-tuning stage's main source)."""
    extra_tasks: List[Str] = dataclass_field(default_factory=list)
    """Also evaluated and kept in the records (not in the frontier)."""
    n_items: Int = DEFAULT_N_ITEMS
    """Items per synthetic task."""
    item_seed: Int = DEFAULT_ITEM_SEED
    """Which synthetic items (the same for every run)."""
    batch_size: Positive = 16
    """Evaluation batch size (never changes a score)."""
    every_checkpoint: Bool = False
    """Evaluate intermediate checkpoints too, not only each stage's final one."""
    metric: Literal["acc", "acc_norm", "acc_per_token"] = "acc"
    """Correctness used for accuracy and F_true."""


@dataclass
class SweepRun:
    """One expanded run: its name, its grid values and its validated config."""

    name: str
    values: dict[str, Any]
    config: RunConfig


def main_source(stage: StageConfig) -> str:
    """The source a stage is about: the largest mixture weight (replay is not part of the mixture)."""
    return max(stage.mixture, key=lambda k: stage.mixture[k])


def _last(config: RunConfig, kind: str) -> StageConfig | None:
    stages = [s for s in config.stages if s.kind == kind]
    return stages[-1] if stages else None


def _accuracy(records: "pd.DataFrame", tasks: list[str], column: str) -> float | None:
    part = records[records["task"].isin(tasks)]
    return float(part[column].mean()) if len(part) else None


def run_evaluations(run: "SweepRun", output: Path, eval_config: "EvalConfig"):
    """What a run's evaluation scores: (target, downstream and all tasks, [(manifest entry, Checkpoint)])."""
    from forgetscope.engine.evaluate import Checkpoint

    config, run_dir = run.config, output / "runs" / run.name
    manifest = read_manifest(run_dir)
    post, ft = _last(config, "posttrain"), _last(config, "finetune")
    target = eval_config.target_tasks or ([main_source(post)] if post else [])
    downstream = eval_config.downstream_tasks or ([main_source(ft)] if ft else [])
    target_tasks = run_tasks(config, target, eval_config.n_items, eval_config.item_seed)
    downstream_tasks = run_tasks(config, downstream, eval_config.n_items, eval_config.item_seed)
    extra_tasks = run_tasks(config, eval_config.extra_tasks, eval_config.n_items, eval_config.item_seed)
    tasks = list({t.name: t for t in target_tasks + downstream_tasks + extra_tasks}.values())
    if not tasks:
        raise ConfigError("eval.target_tasks", "no tasks to evaluate: name target_tasks or add a posttrain stage")
    homes = {s["name"]: Path(s["home"]).name for s in manifest.get("stages", [])}
    checkpoints = []
    for entry in manifest["checkpoints"]:
        if not (entry["final"] or eval_config.every_checkpoint):
            continue
        label = f"{homes.get(entry['stage'], entry['stage'])}/step-{entry['step']}"
        checkpoints.append((entry, Checkpoint(str(run_dir / entry["path"]), name=label)))
    return (target_tasks, downstream_tasks, tasks), checkpoints


def evaluate_run(run: "SweepRun", output: Path, eval_config: "EvalConfig", *, device: str = "auto",
                 progress=None, planned: tuple | None = None) -> tuple[dict[str, Any], dict[str, "pd.DataFrame"]]:
    """Evaluate the run's stage checkpoints (cached) and compute its frontier row. `planned`: what
    `run_evaluations` returned for the run, when the caller has it (else it is read here)."""
    from forgetscope.analysis import compare_records
    from forgetscope.engine.evaluate import EvalSettings, evaluate
    from forgetscope.records.schema import metric_column

    config = run.config
    post, ft = _last(config, "posttrain"), _last(config, "finetune")
    if planned is None:
        planned = run_evaluations(run, output, eval_config)
    (target_tasks, downstream_tasks, tasks), checkpoints = planned
    eval_settings = EvalSettings(batch_size=eval_config.batch_size, device=device)
    records: dict[str, pd.DataFrame] = {}
    finals: dict[str, dict] = {}
    for entry, checkpoint in checkpoints:
        records[entry["name"]] = evaluate(checkpoint, tasks, output / "results", eval_settings, progress=progress)
        if entry["final"]:
            finals[entry["stage"]] = entry
    column = metric_column(eval_config.metric)
    target_names = [t.name for t in target_tasks]
    downstream_names = [t.name for t in downstream_tasks]

    def final_records(stage: StageConfig | None):
        return records[finals[stage.name]["name"]] if stage and stage.name in finals else None

    def val_loss(stage: StageConfig | None, source: str | None):
        if stage is None or source is None or stage.name not in finals:
            return None
        return finals[stage.name]["val_loss"].get(source)

    first = final_records(config.stages[0])
    rec_post, rec_ft = final_records(post), final_records(ft)
    target_source = main_source(post) if post else None
    downstream_source = main_source(ft) if ft else None
    row: dict[str, Any] = {"run": run.name, **{k: _plain(v) for k, v in run.values.items()}}
    row["target_acc_pre"] = _accuracy(first, target_names, column) if first is not None else None
    row["target_acc_post"] = _accuracy(rec_post, target_names, column) if rec_post is not None else None
    row["target_acc_ft"] = _accuracy(rec_ft, target_names, column) if rec_ft is not None else None
    row["target_loss_post"] = val_loss(post, target_source)
    row["target_loss_ft"] = val_loss(ft, target_source)
    row["F_true"] = row["n_forgotten"] = row["n_learned"] = None
    if rec_post is not None and rec_ft is not None and target_names:
        comparison = compare_records(rec_post[rec_post["task"].isin(target_names)],
                                     rec_ft[rec_ft["task"].isin(target_names)], metric=eval_config.metric, n_bootstrap=0)
        overall = comparison.overall.iloc[0]
        row["F_true"], row["n_forgotten"], row["n_learned"] = (
            float(overall["forgetting_true"]), int(overall["n_10"]), int(overall["n_01"]))
    row["downstream_acc_post"] = _accuracy(rec_post, downstream_names, column) if rec_post is not None else None
    row["downstream_acc_ft"] = _accuracy(rec_ft, downstream_names, column) if rec_ft is not None else None
    row["downstream_loss_ft"] = val_loss(ft, downstream_source)
    row["post_checkpoint"] = finals[post.name]["name"] if post and post.name in finals else None
    row["ft_checkpoint"] = finals[ft.name]["name"] if ft and ft.name in finals else None
    evaluation = {"post": rec_post, "finetune": rec_ft, "pretrain": first,
                  "target_tasks": target_names, "downstream_tasks": downstream_names}
    return row, evaluation


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def frontier_table(rows: list[dict]) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame(rows)


def frontier_rich_table(frame: "pd.DataFrame", title: str = "frontier: retained target capability vs downstream"):
    """The frontier as a rich Table: the grid values (or the run name), then the figures."""
    from rich.table import Table

    from forgetscope.report.tables import format_value

    figures = [c for c, _, _ in FRONTIER_COLUMNS]
    values = [c for c in frame.columns if c not in figures and c != "run" and not c.endswith("_checkpoint")]
    labels = values or ["run"]
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in labels:
        table.add_column(column.split(".")[-1])
    shown = [(c, h, s) for c, h, s in FRONTIER_COLUMNS if c in frame.columns and frame[c].notna().any()]
    for _, header, _ in shown:
        table.add_column(header, justify="right")
    for _, row in frame.iterrows():
        table.add_row(*[str(row[c]) for c in labels], *[format_value(row[c], spec) for c, _, spec in shown])
    return table


def save_frontier(frame: "pd.DataFrame", output: Path, *, plot: bool = True) -> dict[str, Path]:
    """frontier.csv (atomic) and, with `plot`, frontier.png."""
    paths = {"csv": output / "frontier.csv"}
    atomic_write_text(paths["csv"], frame.to_csv(index=False))
    if plot and len(frame) and frame["downstream_acc_ft"].notna().any():
        paths["png"] = plot_frontier(frame, output / "frontier.png")
    return paths


def plot_frontier(frame: "pd.DataFrame", path: Path) -> Path:
    """Retained target accuracy (fine-tuned) against downstream accuracy, one point per run;
    a grey arrow starts at the post-trained checkpoint, so the length of its drop is forgetting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for _, row in frame.iterrows():
        x, y = row["downstream_acc_ft"], row["target_acc_ft"]
        if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
            continue
        x0, y0 = row.get("downstream_acc_post"), row.get("target_acc_post")
        if x0 is not None and y0 is not None and not (isinstance(y0, float) and math.isnan(y0)):
            ax.annotate("", xy=(x, y), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="0.7"))
            ax.scatter([x0], [y0], facecolors="none", edgecolors="0.6", s=30)
        ax.scatter([x], [y], s=40)
        ax.annotate(str(row["run"]), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
    ax.set_xlabel("downstream accuracy")
    ax.set_ylabel("target accuracy")
    ax.set_title("frontier: filled = fine-tuned, hollow = post-trained (arrow: what fine-tuning did)", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
