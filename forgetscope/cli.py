"""`forgetscope` command line: thin commands over the library.

Options shared by several commands are declared once below as Annotated
types. Heavy libraries (torch, transformers) load only inside the commands
that score a model, so `forgetscope --help` stays fast.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from .env import switched_on

app = typer.Typer(
    help="Which benchmark items did a model forget or newly learn between two checkpoints?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# ---------------------------------------------------------------- shared options
TaskOpt = Annotated[list[str], typer.Option(
    "--task", "-t",
    help="Task: a built-in name (see `forgetscope tasks`), NAME=LOCAL_PATH for a built-in over local "
         "files, a .jsonl/.csv/.parquet file, a BIG-bench task.json, a .yaml task spec, or lmeval:NAME (a task of "
         "lm-evaluation-harness). Repeatable.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Results directory (also the cache).")]
BackendOpt = Annotated[str, typer.Option(help="Scoring backend: hf (transformers) or vllm (CUDA GPU).")]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")]
DtypeOpt = Annotated[str, typer.Option(help="float32, bfloat16, float16 or auto.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Sequences per forward pass (does not change scores).")]
MaxLenOpt = Annotated[Optional[int], typer.Option(help="Longest sequence in tokens (default: the model's).")]
RepeatsOpt = Annotated[int, typer.Option(help="Repeats per item (seeds seed..seed+R-1); for sampled generation.")]
SeedOpt = Annotated[int, typer.Option(help="Base seed for sampling and few-shot draws.")]
TempOpt = Annotated[float, typer.Option(help="Sampling temperature for generative tasks (0 = greedy).")]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling threshold.")]
MaxNewOpt = Annotated[Optional[int], typer.Option(help="Override each generative task's max new tokens.")]
GGUFOpt = Annotated[Optional[str], typer.Option(help="GGUF file name inside the model directory.")]
RemoteOpt = Annotated[bool, typer.Option(help="Allow custom model code from the hub (off by default).")]
AllowPickleOpt = Annotated[bool, typer.Option(
    help="Load a model whose weights exist only as pickle (pytorch_model.bin), with torch.load(weights_only=True). "
         "Off by default: loading a pickle can run code.")]
LimitOpt = Annotated[Optional[int], typer.Option(help="Score only the first N items of each task.")]
FewshotOpt = Annotated[Optional[int], typer.Option("--num-fewshot", help="Few-shot examples per item.")]
FewshotSourceOpt = Annotated[Optional[str], typer.Option(
    help="Where few-shot examples come from: a split name (train, validation) or a file of items.")]
FewshotSeedOpt = Annotated[Optional[int], typer.Option(help="Seed of the few-shot draws (default: the task's).")]
TemplateOpt = Annotated[Optional[str], typer.Option(help="Context template (format string or Jinja).")]
DelimOpt = Annotated[Optional[str], typer.Option(help="Text between context and choice (default ' ').")]
IncludePathOpt = Annotated[list[str], typer.Option(
    "--include-path", help="Folder of lm-evaluation-harness task YAMLs for --task lmeval:NAME, as lm-eval's "
                           "--include_path (its YAML may run Python beside it: only folders you trust). Repeatable.")]
MetricOpt = Annotated[str, typer.Option(help="Correctness used for transitions: acc, acc_norm, acc_per_token.")]
BosOpt = Annotated[Optional[bool], typer.Option(
    "--add-special-tokens/--no-add-special-tokens",
    help="Force adding special tokens (BOS) when encoding; default follows the tokenizer.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(help="CPU threads for torch (default: all cores).")]
GpuMemOpt = Annotated[float, typer.Option(help="vLLM: fraction of GPU memory for weights and KV cache.")]
MaxModelLenOpt = Annotated[Optional[int], typer.Option(
    help="vLLM: the engine's context length (default: the model's); longer sequences are cut from the left.")]
TensorParallelOpt = Annotated[int, typer.Option(help="vLLM: GPUs to shard the model over.")]
FlipTolOpt = Annotated[float, typer.Option(
    help="Flips whose decision margin (best minus runner-up score) is below this many nats on either side "
         "are also counted as unstable; 0 turns it off. Measure it with `forgetscope noise`.")]


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _console():
    """Rich console on stdout; when piped (logs, CI) tables get 200 columns instead of rich's 80.

    At 80 columns the wide tables (compare, the frontier) are cut into unreadable `0.…` cells;
    `COLUMNS` still wins when set.
    """
    from rich.console import Console

    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=False, width=width)


def _load_tasks(specs: list[str], limit, num_fewshot, fewshot_source, fewshot_seed, template, delimiter,
                include_path: list[str] | None = None) -> list:
    from .tasks import TaskOptions, load_task
    from .tasks.base import TaskError
    from .tasks.lmeval import is_lmeval_task

    if include_path and not any(is_lmeval_task(spec) for spec in specs):
        raise TaskError("--include-path applies to lmeval: tasks only (--task lmeval:NAME)")
    options = TaskOptions(template=template, target_delimiter=delimiter, num_fewshot=num_fewshot,
                          fewshot_source=fewshot_source, fewshot_seed=fewshot_seed, limit=limit,
                          include_path=tuple(include_path or ()))
    tasks = [load_task(spec, options=options) for spec in specs]
    names = [t.name for t in tasks]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:  # an error, not _fail: the gate still writes its CI outputs
        raise TaskError(f"two tasks are named {', '.join(sorted(duplicates))}; rename one (spec `name:`)")
    return tasks


def _settings(backend, device, dtype, batch_size, max_length, repeats, seed, temperature, top_p,
              max_new_tokens, gguf_file, trust_remote_code, add_special_tokens, threads,
              gpu_memory_utilization=0.9, max_model_len=None, tensor_parallel_size=1, allow_pickle=False):
    from .evaluate import EvalSettings

    return EvalSettings(backend=backend, device=device, dtype=dtype, batch_size=batch_size, max_length=max_length,
                        repeats=repeats, seed=seed, temperature=temperature, top_p=top_p,
                        max_new_tokens=max_new_tokens, gguf_file=gguf_file, trust_remote_code=trust_remote_code,
                        add_special_tokens=add_special_tokens, threads=threads,
                        gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                        tensor_parallel_size=tensor_parallel_size, allow_pickle=allow_pickle)


def _errors():
    """Exceptions that mean bad input, reported as one line with exit code 2."""
    from .analysis import PairingError
    from .backends.base import BackendError
    from .compare import CompareError
    from .fingerprint import FingerprintError
    from .schema import SchemaError
    from .store import StoreError
    from .tasks.base import TaskError

    return (TaskError, BackendError, FingerprintError, StoreError, SchemaError, CompareError, PairingError,
            FileNotFoundError)


# ---------------------------------------------------------------------- commands
@app.command("eval")
def eval_command(
    checkpoint: Annotated[str, typer.Argument(help="Model directory, hub id or .gguf file.")],
    task: TaskOpt,
    output: OutputOpt = Path("forgetscope-results"),
    name: Annotated[Optional[str], typer.Option(help="Checkpoint name in the records (default: the path).")] = None,
    backend: BackendOpt = "hf", device: DeviceOpt = "cpu", dtype: DtypeOpt = "float32", batch_size: BatchOpt = 16,
    max_length: MaxLenOpt = None, repeats: RepeatsOpt = 1, seed: SeedOpt = 0, temperature: TempOpt = 0.0,
    top_p: TopPOpt = 1.0, max_new_tokens: MaxNewOpt = None, gguf_file: GGUFOpt = None,
    trust_remote_code: RemoteOpt = False, add_special_tokens: BosOpt = None, threads: ThreadsOpt = None,
    limit: LimitOpt = None, num_fewshot: FewshotOpt = None, fewshot_source: FewshotSourceOpt = None,
    fewshot_seed: FewshotSeedOpt = None, template: TemplateOpt = None, target_delimiter: DelimOpt = None,
    gpu_memory_utilization: GpuMemOpt = 0.9, max_model_len: MaxModelLenOpt = None,
    tensor_parallel_size: TensorParallelOpt = 1, allow_pickle: AllowPickleOpt = False,
    include_path: IncludePathOpt = [],  # noqa: B006 - typer needs a literal default
) -> None:
    """Score every item of the tasks and write one records row per item (cached, resumable)."""
    from .evaluate import Checkpoint, evaluate
    from .report.progress import ProgressBars

    try:
        tasks = _load_tasks(task, limit, num_fewshot, fewshot_source, fewshot_seed, template, target_delimiter,
                            include_path)
        settings = _settings(backend, device, dtype, batch_size, max_length, repeats, seed, temperature, top_p,
                             max_new_tokens, gguf_file, trust_remote_code, add_special_tokens, threads,
                             gpu_memory_utilization, max_model_len, tensor_parallel_size, allow_pickle)
        with ProgressBars() as progress:
            records = evaluate(Checkpoint(checkpoint, name=name or checkpoint), tasks, output, settings,
                               progress=progress)
    except _errors() as exc:
        _fail(str(exc))
    console = _console()
    summary = records.groupby("task").agg(n=("item_id", "nunique"), acc=("correct", "mean"),
                                          acc_norm=("correct_norm", "mean"))
    for task_name, row in summary.iterrows():
        console.print(f"{task_name}: n={row.n}  acc={row.acc:.4f}  acc_norm={row.acc_norm:.4f}")
    console.print(f"records: {output}/records ({len(records)} rows)")


@app.command()
def compare(
    checkpoint_a: Annotated[str, typer.Argument(help="Before: model dir, hub id, .gguf, or a records file/dir.")],
    checkpoint_b: Annotated[str, typer.Argument(help="After: model dir, hub id, .gguf, or a records file/dir.")],
    task: TaskOpt = [],  # noqa: B006 - typer needs a literal default
    output: OutputOpt = Path("forgetscope-results"),
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the figures as JSON here.")] = None,
    show_items: Annotated[Optional[str], typer.Option(help="List items with this transition: 1to0 or 0to1.")] = None,
    max_items: Annotated[int, typer.Option(help="Most items listed by --show-items.")] = 20,
    metric: MetricOpt = "acc",
    identical_only: Annotated[bool, typer.Option(
        help="Compare only items identical on both sides (same id and hash); print how many were dropped.")] = False,
    categories: Annotated[bool, typer.Option(help="Also print the table per category.")] = False,
    n_bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% CIs of F and BT.")] = 1000,
    backend: BackendOpt = "hf", device: DeviceOpt = "cpu", dtype: DtypeOpt = "float32", batch_size: BatchOpt = 16,
    max_length: MaxLenOpt = None, repeats: RepeatsOpt = 1, seed: SeedOpt = 0, temperature: TempOpt = 0.0,
    top_p: TopPOpt = 1.0, max_new_tokens: MaxNewOpt = None, gguf_file: GGUFOpt = None,
    trust_remote_code: RemoteOpt = False, add_special_tokens: BosOpt = None, threads: ThreadsOpt = None,
    limit: LimitOpt = None, num_fewshot: FewshotOpt = None, fewshot_source: FewshotSourceOpt = None,
    fewshot_seed: FewshotSeedOpt = None, template: TemplateOpt = None, target_delimiter: DelimOpt = None,
    gpu_memory_utilization: GpuMemOpt = 0.9, max_model_len: MaxModelLenOpt = None,
    tensor_parallel_size: TensorParallelOpt = 1, allow_pickle: AllowPickleOpt = False,
    flip_tolerance: FlipTolOpt = 1e-3,  # analysis.stability.DEFAULT_FLIP_TOLERANCE (not imported: --help stays fast)
    include_path: IncludePathOpt = [],  # noqa: B006 - typer needs a literal default
) -> None:
    """Compare two checkpoints item by item: forgetting (1→0), backward transfer (0→1), chance-adjusted."""
    from .compare import compare_checkpoints, describe_items
    from .schema import ANALYSIS_COLUMNS
    from .report.progress import ProgressBars
    from .report.tables import comparison_table, items_table

    if show_items not in (None, "1to0", "0to1"):
        _fail("--show-items takes 1to0 or 0to1")
    try:
        tasks = _load_tasks(task, limit, num_fewshot, fewshot_source, fewshot_seed, template, target_delimiter,
                            include_path)
        settings = _settings(backend, device, dtype, batch_size, max_length, repeats, seed, temperature, top_p,
                             max_new_tokens, gguf_file, trust_remote_code, add_special_tokens, threads,
                             gpu_memory_utilization, max_model_len, tensor_parallel_size, allow_pickle)
        with ProgressBars() as progress:
            comparison, before, after = compare_checkpoints(
                checkpoint_a, checkpoint_b, tasks, output, settings, metric=metric,
                identical_only=identical_only, n_bootstrap=n_bootstrap, seed=seed, progress=progress,
                # stored records: the figures need only the analysis columns (and, for unstable
                # flips, each row's decision margin); the listed items are read in full below
                columns=ANALYSIS_COLUMNS, margins=True,
                flip_tolerance=flip_tolerance if flip_tolerance > 0 else None)
    except _errors() as exc:
        _fail(str(exc))
    console = _console()
    for row in comparison.dropped.to_dict("records"):
        console.print(f"[yellow]{row['task']}: compared identical items only; dropped {row['n_dropped']} "
                      f"({row['n_changed']} changed, {row['n_only_before']} only in A, "
                      f"{row['n_only_after']} only in B)[/yellow]")
    for note in comparison.notes:
        console.print(f"[yellow]{note}[/yellow]")
    console.print(comparison_table(comparison.tasks, f"A = {checkpoint_a}   B = {checkpoint_b}   metric = {metric}",
                                   ["task"]))
    if categories and len(comparison.categories):
        console.print(comparison_table(comparison.categories, "per category", ["task", "category"]))
    console.print(comparison_table(comparison.overall.assign(scope="overall"), "overall (from items)", ["scope"]))
    if flip_tolerance > 0 and comparison.flip_tolerance is None:
        console.print("[yellow]unstable flips not counted: the records lack loglikelihoods[/yellow]")
    if comparison.flip_tolerance is not None:
        console.print(f"unstable: of the 1→0 and 0→1 flips, those whose decision margin is below "
                      f"{comparison.flip_tolerance:g} nats before or after (numeric noise can flip them); "
                      "F and BT still count every flip")
    if json_path:  # before the item list: the figures are written even if listing fails
        from .store import atomic_write_text

        atomic_write_text(json_path, json.dumps(comparison.to_json_dict(), indent=2))
        console.print(f"wrote {json_path}")
    if show_items:
        from .analysis import transition_items
        from .compare import is_records_path
        from .store import StoreError, load_item_rows

        items = transition_items(comparison.paired, show_items)
        if items.empty:
            console.print(f"{show_items} items: none (no item flipped {show_items.replace('to', '→')})")
            return
        listed = items.head(max_items)
        try:  # a stored side was read lean: its listed items' prompts and answers come from the files
            before, after = (load_item_rows([arg], listed) if is_records_path(arg) and "prompt" not in side.columns
                             else side for arg, side in ((checkpoint_a, before), (checkpoint_b, after)))
        except StoreError as exc:
            _fail(str(exc))
        shown = describe_items(listed, before, after, metric)
        console.print(items_table(shown, f"{show_items} items: {len(items)} (showing {len(shown)})"))


@app.command("tasks")
def tasks_command() -> None:
    """List the built-in tasks and how to point them at local data."""
    from rich.table import Table

    from .tasks import list_builtin_tasks

    table = Table(title="built-in tasks", title_justify="left", header_style="bold")
    for column in ("name", "kind", "source (hub)", "description"):
        table.add_column(column, overflow="fold")
    for info in list_builtin_tasks():
        hub = info.hf_id + (f" ({info.hf_config})" if info.hf_config else "") + f", split {info.split}"
        table.add_row(info.name, info.kind, hub, info.description)
    console = _console()
    console.print(table)
    console.print(
        "Offline or with your own copy: --task NAME=/path/to/data (a dataset saved with save_to_disk, a folder "
        "of data files, or one .jsonl/.json/.csv/.parquet file with the hub dataset's columns).\n"
        "Your own items: --task items.jsonl, a BIG-bench task.json, or a .yaml task spec (see README)."
    )


@app.command()
def demo(
    output: OutputOpt = Path("demo-results"),
    quick: Annotated[bool, typer.Option(help="Smaller and faster (for tests).")] = False,
    seed: SeedOpt = 0,
) -> None:
    """Train a tiny model on built-in synthetic data, fine-tune it, and compare the two (CPU, no download)."""
    from .demo import run_demo

    run_demo(output, quick=quick, seed=seed, console=_console())


# Commands of other features live in their own modules (forgetscope/cli_*.py),
# which define them with `@app.command` on this app; importing them registers them.
_COMMAND_MODULES = [
    "cli_noise",
    "cli_train",
    "cli_report",
    "cli_import",
    "cli_gate",
]
for _module in _COMMAND_MODULES:
    __import__(f"forgetscope.{_module}")


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
    _exit(code)


def _exit(code: object) -> NoReturn:
    """Leave the process; once torch is loaded, without the interpreter's teardown.

    Tearing down an interpreter that imported torch takes ~0.6 s on a 2-core machine
    (`python -c "import torch"`: 1.6 s, 1.0 s with os._exit), a tenth of scoring 500
    items with a small model. By now every command has closed its files; atexit handlers
    still run and stdout/stderr are flushed. With other threads alive, or
    FORGETSCOPE_FAST_EXIT=0, the ordinary exit.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    if ("torch" not in sys.modules or threading.active_count() > 1
            or not switched_on("FORGETSCOPE_FAST_EXIT")):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
