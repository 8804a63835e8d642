"""Options shared by several commands, each declared once.

Single options (`OutputOpt`, `SeedOpt`, ...) are Annotated types a command
names in its signature. The option groups of the scoring commands (how the
model is loaded, vLLM's engine, sampling, how tasks are built) are declared
once each, as the parameters of a function below, and `with_groups` splices a
group's parameters into a command's signature: the command receives one
`ScoringOptions` instead, whose `settings()` is the only place the command
line becomes `EvalSettings`, `load_tasks()` the only place it becomes tasks
and `executor()` the only place it says who scores (EXECUTOR: local or Ray).
So an option cannot exist in one scoring command and be missing in another.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional, Sequence

import typer

if TYPE_CHECKING:  # the evaluator loads only when a command runs
    from ..engine.evaluate import Checkpoint, EvalSettings
    from ..tasks.base import Task
    from ..tasks.chat import ChatTemplate, PromptStyle

# ------------------------------------------------------------------ single options
TaskOpt = Annotated[list[str], typer.Option(
    "--task", "-t",
    help="Task: a built-in name (see `forgetscope tasks`), NAME=LOCAL_PATH for a built-in over local "
         "files, a .jsonl/.csv/.parquet file, a BIG-bench task.json, a .yaml task spec, or lmeval:NAME (a task of "
         "lm-evaluation-harness). Repeatable.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o",
                                         help="Results directory (also the cache).")]
#: the results directory of a command that can score on a cluster: a str, so that a URL stays a URL
ResultsOpt = Annotated[str, typer.Option(
    "--output", "-o", help="Results directory (also the cache): a path, or a URL fsspec opens (s3://, gs://, "
                           "file://) that every worker of a cluster reaches.")]
SeedOpt = Annotated[int, typer.Option(help="Base seed for sampling and few-shot draws.")]
DEVICE_HELP = "cpu, cuda, cuda:N or auto."
THREADS_HELP = "CPU threads for torch (default: all cores)."
DeviceOpt = Annotated[str, typer.Option(help=DEVICE_HELP)]
ThreadsOpt = Annotated[Optional[int], typer.Option(help=THREADS_HELP)]
MetricOpt = Annotated[str, typer.Option(help="Correctness used for transitions: acc, acc_norm, acc_per_token.")]
FlipTolOpt = Annotated[float, typer.Option(
    help="Flips whose decision margin (best minus runner-up score) is below this many nats on either side "
         "are also counted as unstable; 0 turns it off. Measure it with `forgetscope noise`.")]

MODEL_PANEL = "Model loading"
VLLM_PANEL = "vLLM engine (--backend vllm)"
SAMPLING_PANEL = "Sampling (generative tasks)"
TASKS_PANEL = "Task building"
EXECUTOR_PANEL = "Cluster (--executor ray)"


# ------------------------------------------------------------------ option groups
def model_options(
    backend: Annotated[str, typer.Option(
        help="Scoring backend: hf (transformers) or vllm (CUDA GPU).", rich_help_panel=MODEL_PANEL)] = "hf",
    device: Annotated[str, typer.Option(help=DEVICE_HELP + " auto: a CUDA GPU when present, else the CPU.",
                                        rich_help_panel=MODEL_PANEL)] = "auto",
    dtype: Annotated[str, typer.Option(
        help="float32, bfloat16, float16 or auto.", rich_help_panel=MODEL_PANEL)] = "float32",
    batch_size: Annotated[str, typer.Option(
        "--batch-size", "-b",
        help="Sequences per forward pass (does not change scores), or auto: on a GPU the largest that fits "
             "(halving from 256 on out-of-memory, once per model), on CPU 16.", rich_help_panel=MODEL_PANEL)] = "16",
    model_args: Annotated[Optional[str], typer.Option(
        "--model-args",
        help="key=value,... passed to from_pretrained (as lm-eval's --model_args): attn_implementation, "
             "revision, subfolder, ...; they enter the cache key.", rich_help_panel=MODEL_PANEL)] = None,
    max_length: Annotated[Optional[int], typer.Option(
        help="Longest sequence in tokens (default: the model's).", rich_help_panel=MODEL_PANEL)] = None,
    gguf_file: Annotated[Optional[str], typer.Option(
        help="GGUF file name inside the model directory.", rich_help_panel=MODEL_PANEL)] = None,
    trust_remote_code: Annotated[bool, typer.Option(
        help="Allow custom model code from the hub (off by default).", rich_help_panel=MODEL_PANEL)] = False,
    add_special_tokens: Annotated[Optional[bool], typer.Option(
        "--add-special-tokens/--no-add-special-tokens",
        help="Force adding special tokens (BOS) when encoding; default follows the tokenizer.",
        rich_help_panel=MODEL_PANEL)] = None,
    threads: Annotated[Optional[int], typer.Option(help=THREADS_HELP, rich_help_panel=MODEL_PANEL)] = None,
    allow_pickle: Annotated[bool, typer.Option(
        help="Load a model whose weights exist only as pickle (pytorch_model.bin), with "
             "torch.load(weights_only=True). Off by default: loading a pickle can run code.",
        rich_help_panel=MODEL_PANEL)] = False,
) -> None:
    """How the model is loaded and run (EvalSettings fields of the same names)."""


def vllm_options(
    gpu_memory_utilization: Annotated[float, typer.Option(
        help="vLLM: fraction of GPU memory for weights and KV cache.", rich_help_panel=VLLM_PANEL)] = 0.9,
    max_model_len: Annotated[Optional[int], typer.Option(
        help="vLLM: the engine's context length (default: the model's); longer sequences are cut from the left.",
        rich_help_panel=VLLM_PANEL)] = None,
    tensor_parallel_size: Annotated[int, typer.Option(
        help="vLLM: GPUs to shard the model over.", rich_help_panel=VLLM_PANEL)] = 1,
) -> None:
    """vLLM's engine (ignored by the hf backend)."""


def sampling_options(
    repeats: Annotated[int, typer.Option(
        help="Repeats per item (seeds seed..seed+R-1); for sampled generation.", rich_help_panel=SAMPLING_PANEL)] = 1,
    temperature: Annotated[float, typer.Option(
        help="Sampling temperature for generative tasks (0 = greedy).", rich_help_panel=SAMPLING_PANEL)] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling threshold.", rich_help_panel=SAMPLING_PANEL)] = 1.0,
    max_new_tokens: Annotated[Optional[int], typer.Option(
        help="Override each generative task's max new tokens.", rich_help_panel=SAMPLING_PANEL)] = None,
) -> None:
    """Generation and repeats; `noise` leaves them out (it measures greedy decisions, once)."""


def task_options(
    limit: Annotated[Optional[float], typer.Option(
        help="Score only the first N items of each task, or a fraction below 1 of them (rounded up, as "
             "lm-eval's --limit).", rich_help_panel=TASKS_PANEL)] = None,
    num_fewshot: Annotated[Optional[int], typer.Option(
        "--num-fewshot", help="Few-shot examples per item.", rich_help_panel=TASKS_PANEL)] = None,
    fewshot_source: Annotated[Optional[str], typer.Option(
        help="Where few-shot examples come from: a split name (train, validation) or a file of items.",
        rich_help_panel=TASKS_PANEL)] = None,
    fewshot_seed: Annotated[Optional[int], typer.Option(
        help="Seed of the few-shot draws (default: the task's).", rich_help_panel=TASKS_PANEL)] = None,
    template: Annotated[Optional[str], typer.Option(
        help="Context template (format string or Jinja).", rich_help_panel=TASKS_PANEL)] = None,
    target_delimiter: Annotated[Optional[str], typer.Option(
        help="Text between context and choice (default ' ').", rich_help_panel=TASKS_PANEL)] = None,
    include_path: Annotated[list[str], typer.Option(
        "--include-path", help="Folder of lm-evaluation-harness task YAMLs for --task lmeval:NAME, as lm-eval's "
                               "--include_path (its YAML may run Python beside it: only folders you trust). "
                               "Repeatable.", rich_help_panel=TASKS_PANEL)] = [],  # noqa: B006 - typer needs a literal
    apply_chat_template: Annotated[Optional[str], typer.Option(
        "--apply-chat-template", metavar="[NAME]",
        help="Render each prompt with the model's chat template, as lm-eval's --apply_chat_template: the "
             "messages with the generation prompt, each choice scored as the assistant's answer. NAME picks one "
             "of several templates of the tokenizer (write --apply-chat-template=NAME).",
        rich_help_panel=TASKS_PANEL)] = None,
    system_instruction: Annotated[Optional[str], typer.Option(
        help="A system message before each prompt (joined with the task's description), as lm-eval's "
             "--system_instruction; without a chat template, plain text before the prompt.",
        rich_help_panel=TASKS_PANEL)] = None,
    fewshot_as_multiturn: Annotated[Optional[bool], typer.Option(
        "--fewshot-as-multiturn/--no-fewshot-as-multiturn",
        help="Few-shot examples as user/assistant turns (default with --apply-chat-template, as in lm-eval) or "
             "all in one user message.", rich_help_panel=TASKS_PANEL)] = None,
) -> None:
    """How `--task` arguments become tasks (TaskOptions fields of the same names; the chat options become
    TaskOptions.prompt, see ScoringOptions.prompt_style)."""


def executor_options(
    executor: Annotated[str, typer.Option(
        help="Who scores: local (this process) or ray (the workers of a Ray cluster; see docs/cluster.md).",
        rich_help_panel=EXECUTOR_PANEL)] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        help="With --executor ray: the cluster's address (auto: the one `ray start` runs on this machine); "
             "default: start a local Ray for this command.", rich_help_panel=EXECUTOR_PANEL)] = None,
    ray_workers: Annotated[Optional[int], typer.Option(
        help="With --executor ray: at most this many workers (default: as many as the cluster's resources fit).",
        rich_help_panel=EXECUTOR_PANEL)] = None,
) -> None:
    """Where the scoring runs (engine.executor; docs/cluster.md)."""


@dataclass(frozen=True)
class OptionGroup:
    """Options declared once, as the parameters of `declaration`."""

    name: str
    declaration: Callable[..., None]

    @functools.cached_property
    def parameters(self) -> list[inspect.Parameter]:
        return list(inspect.signature(self.declaration, eval_str=True).parameters.values())

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]


MODEL = OptionGroup("model", model_options)
VLLM = OptionGroup("vllm", vllm_options)
SAMPLING = OptionGroup("sampling", sampling_options)
TASKS = OptionGroup("tasks", task_options)
EXECUTOR = OptionGroup("executor", executor_options)
#: what a command that scores a model takes (noise: all but SAMPLING); eval, compare, sequence and
#: sweep add EXECUTOR
SCORING_GROUPS = (MODEL, VLLM, SAMPLING, TASKS)


def parse_batch_size(text: str | int) -> int | str:
    """--batch-size: a whole number, or auto (EvalSettings checks the number)."""
    if isinstance(text, int) or text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        from ..backends.base import BackendError

        raise BackendError(f"--batch-size {text!r}: give a whole number of at least 1, or auto") from None


@dataclass(frozen=True)
class ExecutorChoice:
    """The EXECUTOR group's values: who scores (engine.executor.make_executor's arguments)."""

    kind: str = "local"
    """local or ray."""
    address: Optional[str] = None
    """A Ray cluster's address (auto: the one on this machine); None: start a local Ray."""
    workers: Optional[int] = None
    """At most this many Ray workers (None: as many as the cluster fits)."""


@dataclass(frozen=True)
class ScoringOptions:
    """The values of a command's option groups (option name -> value)."""

    values: dict[str, Any]

    def settings(self, *, quiet: bool = False, **fields: Any) -> EvalSettings:
        """The one conversion of the command line into EvalSettings; `fields` are the command's own (seed).

        `quiet`: without the note on --batch-size auto (the command prints it when it takes its settings)."""
        from dataclasses import fields as dataclass_fields

        from ..engine.evaluate import EvalSettings

        from ..backends.model_args import parse_model_args

        known = {f.name for f in dataclass_fields(EvalSettings)}
        values = {k: v for k, v in self.values.items() if k in known}
        if "batch_size" in values:
            values["batch_size"] = parse_batch_size(values["batch_size"])
        if "model_args" in values:
            values["model_args"] = parse_model_args(values["model_args"])
        if not quiet and values.get("batch_size") == "auto" and values.get("backend") == "hf":
            from ..backends.batching import AUTO_BATCH_CPU
            from ..backends.hf import resolve_device

            if resolve_device(values.get("device", "cpu")) == "cpu":
                typer.echo(f"note: --batch-size auto on CPU uses {AUTO_BATCH_CPU} (the search for the largest batch "
                           "that fits runs on a GPU)", err=True)
        return EvalSettings(**values, **fields)

    def executor(self) -> ExecutorChoice:
        """The EXECUTOR group's values (the local executor for a command without the group)."""
        return ExecutorChoice(self.values.get("executor", "local"), self.values.get("ray_address"),
                              self.values.get("ray_workers"))

    def load_tasks(self, specs: list[str], checkpoints: Sequence[str | Checkpoint] = ()) -> list[Task]:
        """Tasks of the --task arguments (synthetic ones included), with the task options applied.

        `checkpoints`: the command's models (records paths among them are skipped; a Checkpoint is one the
        command scores with more than its argument says, e.g. eval's --revision); with
        --apply-chat-template the prompts are rendered with their tokenizer's template.
        """
        from ..tasks import TaskOptions
        from ..tasks.base import TaskError
        from ..tasks.lmeval import is_lmeval_task
        from ..train.tasks import load_task

        values = {name: self.values[name] for name in TASKS.names if name not in CHAT_OPTIONS}
        values["include_path"] = tuple(values["include_path"] or ())
        if values["limit"] is not None and values["limit"] == int(values["limit"]):
            values["limit"] = int(values["limit"])  # --limit 10 is ten items (typer reads a float)
        if values["include_path"] and not any(is_lmeval_task(spec) for spec in specs):
            raise TaskError("--include-path applies to lmeval: tasks only (--task lmeval:NAME)")
        options = TaskOptions(**values, prompt=self.prompt_style(checkpoints) if specs else None)
        tasks = [load_task(spec, options=options) for spec in specs]
        names = [t.name for t in tasks]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:  # an error, not a fail(): the gate still writes its CI outputs
            raise TaskError(f"two tasks are named {', '.join(sorted(duplicates))}; rename one (spec `name:`)")
        return tasks

    def prompt_style(self, checkpoints: Sequence[str | Checkpoint]) -> PromptStyle | None:
        """The chat template (from the models' tokenizer) and system instruction of the command line.

        Every model among `checkpoints` must have the same template (the same source and special
        tokens): otherwise their prompts would differ and no item could be compared.
        """
        from ..tasks.base import TaskError
        from ..tasks.chat import PromptStyle

        name = self.values.get("apply_chat_template")
        system = self.values.get("system_instruction")
        multiturn = self.values.get("fewshot_as_multiturn")
        if name is None:
            if multiturn:
                raise TaskError("--fewshot-as-multiturn needs --apply-chat-template (as in lm-eval)")
            return PromptStyle(system_instruction=system) if system is not None else None
        models = _models(checkpoints)
        settings = self.settings(quiet=True) if models else None
        templates = [self._chat_template(model, name, settings) for model in models]
        if not templates:
            raise TaskError("--apply-chat-template renders the prompts with a model's tokenizer, and no checkpoint "
                            "here is a model (stored records keep the prompts they were scored with)")
        different = [t for t in templates if t.digest != templates[0].digest]
        if different:
            raise TaskError(f"{templates[0].origin} and {different[0].origin} have different chat templates, so "
                            "their prompts would differ and no item could be paired; evaluate them separately "
                            "(one `eval` each) or without --apply-chat-template")
        return PromptStyle(chat=templates[0], system_instruction=system,
                           fewshot_as_multiturn=True if multiturn is None else multiturn)

    def _chat_template(self, checkpoint: str | Checkpoint, name: str, settings: EvalSettings) -> ChatTemplate:
        """The chat template of the tokenizer scored with `checkpoint`: the model is resolved as scoring
        resolves it (prepare_checkpoint: MODEL@REV, --revision, --model-args revision= and subfolder=,
        --gguf-file), and its tokenizer found as the backend finds it (an adapter's base, a subfolder)."""
        from copy import copy

        from ..backends.chat import load_chat_template
        from ..engine.evaluate import prepare_checkpoint

        # a copy: the command's own Checkpoint is resolved again when it is scored
        ckpt, _ = prepare_checkpoint(copy(checkpoint), settings, check_pickle=False)
        return load_chat_template(ckpt.load_path(), name or None, gguf_file=ckpt.gguf_file, subfolder=ckpt.subfolder,
                                  trust_remote_code=settings.trust_remote_code,
                                  origin=f"{ckpt.model}@{ckpt.revision}" if ckpt.revision else ckpt.model)


#: task options that shape the prompt (ScoringOptions.prompt_style), not TaskOptions fields
CHAT_OPTIONS = ("apply_chat_template", "system_instruction", "fewshot_as_multiturn")
#: options whose value may be left out (`--apply-chat-template` alone: the tokenizer's default template)
OPTIONAL_VALUE = ("--apply-chat-template",)

#: lm-evaluation-harness's spellings, accepted for habit's sake; rewritten before parsing, so --help
#: lists each option once, under forgetscope's name
LM_EVAL_SPELLINGS = {
    "--num_fewshot": "--num-fewshot", "--batch_size": "--batch-size", "--model_args": "--model-args",
    "--output_path": "--output", "--apply_chat_template": "--apply-chat-template",
    "--system_instruction": "--system-instruction", "--fewshot_as_multiturn": "--fewshot-as-multiturn",
}


def lm_eval_spellings(args: Sequence[str]) -> list[str]:
    """The command line with lm-eval's underscore option names (`--num_fewshot 5`, `--batch_size=8`) in
    forgetscope's spelling; words after `--` are left alone."""
    out = list(args)
    end = out.index("--") if "--" in out else len(out)
    for i in range(end):
        name, eq, value = out[i].partition("=")
        if name in LM_EVAL_SPELLINGS:
            out[i] = LM_EVAL_SPELLINGS[name] + eq + value
    return out


def optional_values(args: Sequence[str]) -> list[str]:
    """The command line with every OPTIONAL_VALUE option given its value explicitly (`--opt=` when none).

    As lm-eval's `--apply_chat_template [NAME]` (argparse nargs="?"), the next word is the value unless it
    is an option; and, since forgetscope commands also take checkpoints, unless it looks like one (a path
    that exists, or anything with a `/` or `.`): `eval --apply-chat-template ./model` applies the default
    template to ./model. `--apply-chat-template=NAME` is never ambiguous.
    """
    out = list(args)
    end = out.index("--") if "--" in out else len(out)
    for i in range(end):
        if out[i] in OPTIONAL_VALUE:
            following = out[i + 1] if i + 1 < end else None
            if following is None or not _is_value(following):
                out[i] += "="
    return out


def _is_value(word: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z0-9_-]+", word)) and not word.startswith("-") and not Path(word).exists()


def _models(checkpoints: Sequence[str | Checkpoint]) -> list[str | Checkpoint]:
    """The checkpoints that are models (not stored records), each once."""
    from ..engine.compare import is_records_path

    models = [c for c in checkpoints if not isinstance(c, str) or not is_records_path(c)]
    return [c for i, c in enumerate(models) if c not in models[:i]]


def with_groups(*groups: OptionGroup) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the options of `groups`; it receives them as `options: ScoringOptions`.

    The command's own parameters come first in --help, then each group's (in the
    order given, each in its help panel). The command must have a parameter named
    `options` and none named like a group's option.
    """
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "options"]
        spliced = [p for group in groups for p in group.parameters]
        clash = {p.name for p in own} & {p.name for p in spliced}
        if clash:
            raise TypeError(f"{command.__name__}: {', '.join(sorted(clash))} declared twice")
        names = [p.name for p in spliced]

        def run(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            return command(**kwargs, options=ScoringOptions(values))

        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(run, attribute, getattr(command, attribute))
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own + spliced]
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate
