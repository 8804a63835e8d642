"""`forgetscope noise`: the flip rate between two evaluations of the SAME checkpoint.

Nothing about the model changes between the two evaluations, only one
setting (backend, dtype, batch size, device, ...). Every flip is therefore
numeric noise, and its rate is the floor under which a measured forgetting
rate means nothing. The largest |Δ log-likelihood| bounds how far a decision
margin can move, which gives a defensible `--flip-tolerance` for compare.

    forgetscope noise CKPT --task arc_easy --vary batch_size=1,16
    forgetscope noise CKPT --task arc_easy --vary dtype=float32,bfloat16
    forgetscope noise CKPT --task arc_easy --vary backend=hf,vllm --device cuda
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .common import console, fail, input_errors
from .options import MODEL, TASKS, VLLM, MetricOpt, OutputOpt, ScoringOptions, SeedOpt, TaskOpt, \
    parse_batch_size, with_groups

if TYPE_CHECKING:  # pandas loads only when the command runs
    import pandas as pd

#: settings `--vary` may change, and how their values are read
VARIABLE_SETTINGS = {
    "backend": str, "dtype": str, "device": str, "batch_size": parse_batch_size, "max_length": int,
    "max_model_len": int, "tensor_parallel_size": int, "threads": int,
}


def parse_vary(spec: str) -> tuple[str, list]:
    """"batch_size=1,16" → ("batch_size", [1, 16]); exactly two values of a known setting."""
    from ..backends.base import BackendError

    key, sep, values = spec.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in VARIABLE_SETTINGS:
        raise ValueError(f"--vary takes KEY=A,B with KEY one of {', '.join(VARIABLE_SETTINGS)}; got {spec!r}")
    parts = [v.strip() for v in values.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--vary {key}= needs exactly two values separated by a comma; got {values!r}")
    try:  # a batch size as --batch-size reads it (EvalSettings then checks the number)
        return key, [VARIABLE_SETTINGS[key](v) for v in parts]
    except (ValueError, BackendError):
        kind = {str: "text", int: "an integer", parse_batch_size: "a whole number or auto"}[VARIABLE_SETTINGS[key]]
        raise ValueError(f"--vary {key}: {values!r}: each value must be {kind}") from None


@with_groups(MODEL, VLLM, TASKS)  # no sampling: the noise floor is measured on greedy decisions, once
def noise(
    checkpoint: Annotated[str, typer.Argument(help="Model directory, hub id or .gguf file.")],
    task: TaskOpt,
    vary: Annotated[str, typer.Option(
        help="The one setting that differs: KEY=A,B with KEY in backend, dtype, device, batch_size, max_length, "
             "max_model_len, tensor_parallel_size, threads (e.g. batch_size=1,16).")],
    output: OutputOpt = Path("forgetscope-results/noise"),
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the table as JSON here.")] = None,
    metric: MetricOpt = "acc",
    seed: SeedOpt = 0,
    *,
    options: ScoringOptions,
) -> None:
    """Evaluate one checkpoint twice, changing one setting: the flip rate numeric noise alone causes."""
    from ..engine.evaluate import Checkpoint
    from ..engine.noise import noise_floor
    from ..report.progress import ProgressBars

    from .labels import checkpoint_labels

    try:
        key, (value_a, value_b) = parse_vary(vary)
    except ValueError as exc:
        fail(str(exc))
    (label,), (checkpoint,) = checkpoint_labels([checkpoint])
    try:
        tasks = options.load_tasks(task, [checkpoint])
        base = options.settings(seed=seed)  # repeats 1, greedy: EvalSettings' defaults
        settings_a = dataclasses.replace(base, **{key: value_a})
        settings_b = dataclasses.replace(base, **{key: value_b})
        with ProgressBars() as progress:
            table = noise_floor(Checkpoint(checkpoint), tasks, settings_a, settings_b, output, metric=metric,
                                progress=progress)
    except input_errors() as exc:
        fail(str(exc))
    _print(table, f"{label}: {key} = {value_a} vs {value_b}   metric = {metric}")
    if json_path:
        from ..records.store import atomic_write_text

        rows = json.loads(table.to_json(orient="records"))
        atomic_write_text(json_path, json.dumps({"vary": {key: [value_a, value_b]}, "metric": metric,
                                                 "tasks": rows}, indent=2))
        console().print(f"wrote {json_path}")


def _print(table: pd.DataFrame, title: str) -> None:
    import pandas as pd
    from rich.table import Table

    out = Table(title=title, title_justify="left", header_style="bold")
    for header in ("task", "N", "0→1", "1→0", "flip rate", "max |Δll|", "suggested\n--flip-tolerance"):
        if header == "task":
            out.add_column(header, overflow="fold")
        else:
            out.add_column(header, justify="right", no_wrap=True)
    for row in table.itertuples(index=False):
        dll = "–" if pd.isna(row.max_abs_dll) else f"{row.max_abs_dll:.2e}"
        tol = "–" if pd.isna(row.suggested_flip_tolerance) else f"{row.suggested_flip_tolerance:.2e}"
        out.add_row(str(row.task), str(row.n), str(row.n_01), str(row.n_10), f"{row.flip_rate:.4f}", dll, tol)
    console().print(out)
