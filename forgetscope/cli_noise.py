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
from typing import TYPE_CHECKING, Annotated, Optional, Sequence

import typer

from .cli import (
    AllowPickleOpt, BackendOpt, BatchOpt, BosOpt, DeviceOpt, DtypeOpt, FewshotOpt, FewshotSeedOpt, FewshotSourceOpt, GGUFOpt,
    GpuMemOpt, IncludePathOpt, LimitOpt, MaxLenOpt, MaxModelLenOpt, MetricOpt, OutputOpt, RemoteOpt, SeedOpt, TaskOpt,
    TemplateOpt, TensorParallelOpt, ThreadsOpt, DelimOpt, _console, _errors, _fail, _load_tasks, _settings, app,
)

if TYPE_CHECKING:  # pandas and the evaluator load only when the command runs
    import pandas as pd

    from .evaluate import Checkpoint, EvalSettings, ProgressFn

#: settings `--vary` may change, and how their values are read
VARIABLE_SETTINGS = {
    "backend": str, "dtype": str, "device": str, "batch_size": int, "max_length": int,
    "max_model_len": int, "tensor_parallel_size": int, "threads": int,
}


def parse_vary(spec: str) -> tuple[str, list]:
    """"batch_size=1,16" → ("batch_size", [1, 16]); exactly two values of a known setting."""
    key, sep, values = spec.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or key not in VARIABLE_SETTINGS:
        raise ValueError(f"--vary takes KEY=A,B with KEY one of {', '.join(VARIABLE_SETTINGS)}; got {spec!r}")
    parts = [v.strip() for v in values.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"--vary {key}= needs exactly two values separated by a comma; got {values!r}")
    try:
        return key, [VARIABLE_SETTINGS[key](v) for v in parts]
    except ValueError:
        raise ValueError(f"--vary {key}: {values!r} are not {VARIABLE_SETTINGS[key].__name__} values") from None


def noise_floor(
    checkpoint: Checkpoint | str,
    tasks: Sequence,
    settings_a: EvalSettings,
    settings_b: EvalSettings,
    output_dir: Path | str = "forgetscope-results/noise",
    *,
    metric: str = "acc",
    progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """Evaluate one checkpoint under two settings and summarise their differences (stability.noise_summary).

    Each side gets its own results directory (`output_dir`/a and /b): settings
    that do not enter the cache key (batch size, device) would otherwise just
    read the first side's rows back.
    """
    from .analysis.stability import noise_summary
    from .evaluate import Checkpoint, evaluate

    ckpt = Checkpoint(checkpoint) if isinstance(checkpoint, str) else checkpoint
    side_a = evaluate(Checkpoint(ckpt.model, ckpt.name, ckpt.gguf_file), tasks, Path(output_dir) / "a", settings_a,
                      progress=progress)
    side_b = evaluate(Checkpoint(ckpt.model, ckpt.name, ckpt.gguf_file), tasks, Path(output_dir) / "b", settings_b,
                      progress=progress)
    return noise_summary(side_a, side_b, metric=metric)


@app.command()
def noise(
    checkpoint: Annotated[str, typer.Argument(help="Model directory, hub id or .gguf file.")],
    task: TaskOpt,
    vary: Annotated[str, typer.Option(
        help="The one setting that differs: KEY=A,B with KEY in backend, dtype, device, batch_size, max_length, "
             "max_model_len, tensor_parallel_size, threads (e.g. batch_size=1,16).")],
    output: OutputOpt = Path("forgetscope-results/noise"),
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the table as JSON here.")] = None,
    metric: MetricOpt = "acc",
    backend: BackendOpt = "hf", device: DeviceOpt = "cpu", dtype: DtypeOpt = "float32", batch_size: BatchOpt = 16,
    max_length: MaxLenOpt = None, seed: SeedOpt = 0, gguf_file: GGUFOpt = None,
    trust_remote_code: RemoteOpt = False, add_special_tokens: BosOpt = None, threads: ThreadsOpt = None,
    limit: LimitOpt = None, num_fewshot: FewshotOpt = None, fewshot_source: FewshotSourceOpt = None,
    fewshot_seed: FewshotSeedOpt = None, template: TemplateOpt = None, target_delimiter: DelimOpt = None,
    gpu_memory_utilization: GpuMemOpt = 0.9, max_model_len: MaxModelLenOpt = None,
    tensor_parallel_size: TensorParallelOpt = 1, allow_pickle: AllowPickleOpt = False,
    include_path: IncludePathOpt = [],  # noqa: B006 - typer needs a literal default
) -> None:
    """Evaluate one checkpoint twice, changing one setting: the flip rate numeric noise alone causes."""
    from .evaluate import Checkpoint
    from .report.progress import ProgressBars

    try:
        key, (value_a, value_b) = parse_vary(vary)
    except ValueError as exc:
        _fail(str(exc))
    try:
        tasks = _load_tasks(task, limit, num_fewshot, fewshot_source, fewshot_seed, template, target_delimiter,
                            include_path)
        base = _settings(backend, device, dtype, batch_size, max_length, 1, seed, 0.0, 1.0, None, gguf_file,
                         trust_remote_code, add_special_tokens, threads, gpu_memory_utilization, max_model_len,
                         tensor_parallel_size, allow_pickle)
        settings_a = dataclasses.replace(base, **{key: value_a})
        settings_b = dataclasses.replace(base, **{key: value_b})
        with ProgressBars() as progress:
            table = noise_floor(Checkpoint(checkpoint), tasks, settings_a, settings_b, output, metric=metric,
                                progress=progress)
    except _errors() as exc:
        _fail(str(exc))
    _print(table, f"{checkpoint}: {key} = {value_a} vs {value_b}   metric = {metric}")
    if json_path:
        from .store import atomic_write_text

        rows = json.loads(table.to_json(orient="records"))
        atomic_write_text(json_path, json.dumps({"vary": {key: [value_a, value_b]}, "metric": metric,
                                                 "tasks": rows}, indent=2))
        _console().print(f"wrote {json_path}")


def _print(table: pd.DataFrame, title: str) -> None:
    import pandas as pd
    from rich.table import Table

    out = Table(title=title, title_justify="left", header_style="bold")
    for header in ("task", "N", "0→1", "1→0", "flip rate", "max |Δll|", "suggested --flip-tolerance"):
        out.add_column(header, justify="left" if header == "task" else "right")
    for row in table.itertuples(index=False):
        dll = "–" if pd.isna(row.max_abs_dll) else f"{row.max_abs_dll:.2e}"
        tol = "–" if pd.isna(row.suggested_flip_tolerance) else f"{row.suggested_flip_tolerance:.2e}"
        out.add_row(str(row.task), str(row.n), str(row.n_01), str(row.n_10), f"{row.flip_rate:.4f}", dll, tol)
    _console().print(out)
