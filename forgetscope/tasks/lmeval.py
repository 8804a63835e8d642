"""lm-evaluation-harness tasks as a task source: `--task lmeval:NAME`.

The items come from lm-eval itself (its TaskManager and `build_all_requests`),
not from a re-implementation, so every prompt is the one lm-eval sends: the
description, the few-shot examples its sampler draws with the given seed,
`doc_to_text`, the target delimiter and the choices of `doc_to_choice`.

- item_id is lm-eval's doc_id; for a group (mmlu) it is "<subtask>/<doc_id>",
  the task is the group and the category the subtask, as the lm-eval importer
  names them.
- item_hash hashes lm-eval's own doc_hash, prompt_hash (the rendered context,
  few-shot included) and target_hash plus the continuations, exactly as the
  importer does, so records scored here pair with an imported lm-eval run of
  the same task, and never with a differently rendered prompt.
- num_fewshot and the few-shot seed follow `lm_eval --num_fewshot` and
  `--fewshot_random_seed` (default 1234): a task whose YAML sets num_fewshot: 0
  ignores the override, as in lm-eval.
- Only `output_type: multiple_choice` is supported (including several golds and
  multiple-input tasks such as winogrande); other output types are refused.

lm-eval is an optional dependency (`pip install 'forgetscope[lmeval]'`). A task
folder given as an include path is code, as it is for lm-eval: its YAML may
call Python files beside it (`!function`) and its templates are rendered by
lm-eval's Jinja environment.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from forgetscope.tasks.base import Item, Task, TaskError, item_limit, stable_hash

if TYPE_CHECKING:
    from forgetscope.tasks.spec import TaskOptions

PREFIX = "lmeval:"
DEFAULT_FEWSHOT_SEED = 1234
"""lm-eval's default `--fewshot_random_seed` (lm_eval.defaults.DEFAULT_OTHER_SEED)."""
INSTALL_HINT = "pip install 'forgetscope[lmeval]'"


@dataclass(frozen=True)
class LmevalOptions:
    """How lm-eval builds the requests, with lm-eval's meanings (None: the task's own setting)."""

    num_fewshot: int | None = None
    fewshot_seed: int = DEFAULT_FEWSHOT_SEED
    limit: int | float | None = None
    """First N documents of each (sub)task, or a fraction below 1.0 (rounded up), as `lm_eval --limit`."""
    include_path: tuple[str, ...] = ()
    system_instruction: str | None = None
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    chat_template: Callable[..., str] | None = None
    """Renders a list of chat messages to a string (lm-eval's `lm.apply_chat_template`)."""
    chat_description: str = ""
    """Which template `chat_template` renders, for the task's source line."""


def is_lmeval_task(arg: str) -> bool:
    return arg.startswith(PREFIX)


def lmeval_task(arg: str, options: "TaskOptions | None" = None) -> Task:
    """`lmeval:NAME` with the command line's task options (see `load_lmeval_task`).

    --num-fewshot, --fewshot-seed (default lm-eval's 1234), --limit, --name,
    --include-path and the chat options (--apply-chat-template, --system-instruction,
    --fewshot-as-multiturn: lm-eval renders the messages, the model's tokenizer the
    template) apply; prompt options (--template, --target-delimiter,
    --fewshot-source) belong in the lm-eval task YAML and are refused.
    """
    from forgetscope.tasks.spec import TaskOptions

    options = options or TaskOptions()
    unsupported = [f"--{key.replace('_', '-')}" for key in ("template", "target_delimiter", "fewshot_source")
                   if getattr(options, key) is not None]
    if unsupported:
        raise TaskError(f"task {arg!r}: {', '.join(unsupported)} do(es) not apply to lm-eval tasks; their prompts "
                        "come from the task's YAML (copy it into a folder, edit it, and pass --include-path)")
    seed = DEFAULT_FEWSHOT_SEED if options.fewshot_seed is None else options.fewshot_seed
    style = options.prompt
    chat = style.chat if style is not None else None
    return load_lmeval_task(arg, LmevalOptions(
        num_fewshot=options.num_fewshot, fewshot_seed=seed, limit=options.limit,
        include_path=tuple(options.include_path),
        system_instruction=style.system_instruction if style is not None else None,
        apply_chat_template=chat is not None, fewshot_as_multiturn=bool(style and style.fewshot_as_multiturn),
        chat_template=chat.render if chat is not None else None,
        chat_description=chat.describe() if chat is not None else ""), name=options.name)


def load_lmeval_task(arg: str, options: LmevalOptions | None = None, *, name: str | None = None) -> Task:
    """`lmeval:NAME` (a task, group or single-task tag of lm-eval, or a task YAML path) as a Task."""
    options = options or LmevalOptions()
    spec = arg[len(PREFIX):] if is_lmeval_task(arg) else arg
    if not spec:
        raise TaskError(f"task {arg!r}: name the lm-eval task after the colon, e.g. lmeval:arc_easy")
    _check_options(arg, options)
    with _quiet():
        return _build(arg, spec, options, name)


def _build(arg: str, spec: str, options: LmevalOptions, name: str | None) -> Task:
    loaded = _load(spec, arg, options.include_path)
    leaves = loaded["tasks"]
    if not leaves:
        raise TaskError(f"task {arg!r}: lm-eval found no tasks under this name")
    group = _group_name(spec, loaded)
    items: list[Item] = []
    notes = []
    for leaf_name, lm_task in leaves.items():
        _configure(lm_task, options)
        leaf_items = _items(lm_task, leaf_name, arg, options)
        if group is not None:
            leaf_items = [_in_group(item, leaf_name) for item in leaf_items]
        items += leaf_items
        notes.append(f"{leaf_name}: {len(leaf_items)} docs, {lm_task.get_config('num_fewshot')}-shot")
    task_name = name or group or next(iter(leaves))
    settings = f"fewshot seed {options.fewshot_seed}"
    if options.apply_chat_template:
        settings += f", {options.chat_description or 'chat template'}, few-shot " + (
            "as multi-turn" if options.fewshot_as_multiturn else "in one user turn")
    if options.system_instruction is not None:
        settings += f", system instruction {options.system_instruction[:40]!r}"
    return Task(name=task_name, items=items, description=f"lm-evaluation-harness task {spec}",
                source=f"lm-eval {_version()} task {spec} ({'; '.join(notes)}; {settings})")


# ------------------------------------------------------------------ loading


def _import_lmeval() -> Any:
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise TaskError(f"lmeval: tasks need lm-evaluation-harness, which is not installed ({exc}); "
                        f"{INSTALL_HINT}") from None
    return TaskManager


@contextmanager
def _quiet() -> Iterator[None]:
    """lm-eval's notes about its task configs (defaulted aggregations, ...) are not the user's business here;
    and its progress bars must not leave tqdm's monitor thread behind (a live thread keeps the CLI from
    its fast exit)."""
    from tqdm import tqdm

    logger = logging.getLogger("lm_eval")
    level, interval = logger.level, tqdm.monitor_interval
    logger.setLevel(logging.ERROR)
    tqdm.monitor_interval = 0
    try:
        yield
    finally:
        logger.setLevel(level)
        tqdm.monitor_interval = interval


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm_eval")
    except PackageNotFoundError:  # pragma: no cover - imported from a source tree
        return "?"


def _check_options(arg: str, options: LmevalOptions) -> None:
    if options.apply_chat_template and options.chat_template is None:
        raise TaskError(f"task {arg!r}: apply_chat_template needs the chat_template that renders the messages")
    if options.fewshot_as_multiturn and not options.apply_chat_template:
        raise TaskError("fewshot_as_multiturn needs apply_chat_template (as in lm-eval)")
    if options.num_fewshot is not None and options.num_fewshot < 0:
        raise TaskError(f"the number of few-shot examples must be 0 or more, got {options.num_fewshot}")
    item_limit(options.limit, 0)  # a bad limit fails before lm-eval loads anything, as for every task
    for path in options.include_path:
        if not Path(path).expanduser().exists():
            raise TaskError(f"{path}: include path not found (for task {arg!r}); give a folder of lm-eval task "
                            "YAML files (or one YAML file)")


def _load(spec: str, arg: str, include_path: Sequence[str]) -> dict:
    """lm-eval's TaskManager.load(spec): {"tasks": {name: Task}, "groups": {...}}.

    With include paths (or a YAML path as the name), those alone are indexed
    first (the full index of lm-eval's thousands of YAML files takes seconds);
    only if the name is not found there, or needs lm-eval's own tasks, is
    everything indexed, as lm-eval does (include paths take precedence either way).
    """
    TaskManager = _import_lmeval()
    paths = [str(Path(p).expanduser().resolve()) for p in include_path]
    is_file = Path(spec).expanduser().is_file()
    if paths or is_file:
        try:
            manager = TaskManager(include_path=paths or None, include_defaults=False)
            if spec in manager.all_tasks or is_file:
                return _checked_load(manager, spec, arg)
        except TaskError:
            pass  # maybe it needs lm-eval's own tasks: try with everything below
    try:
        manager = TaskManager(include_path=paths or None)
    except Exception as exc:  # lm-eval raises many kinds; any is a broken task folder
        raise TaskError(f"task {arg!r}: lm-eval could not index its tasks{_where(paths)}: {_short(exc)}") from None
    if spec not in manager.all_tasks and not is_file:
        import difflib

        close = difflib.get_close_matches(spec, manager.all_tasks, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TaskError(f"task {arg!r}: lm-eval has no task, group or tag {spec!r}{_where(paths)}; {hint}"
                        "list them with `lm-eval ls tasks`" + ("" if paths else ", or add your own with --include-path DIR"))
    return _checked_load(manager, spec, arg)


def _checked_load(manager: Any, spec: str, arg: str) -> dict:
    entry = manager.task_index.get(spec)
    try:
        loaded = manager.load(spec)
    except Exception as exc:  # dataset missing offline, bad YAML, unknown subtask, ...
        raise TaskError(f"task {arg!r}: lm-eval could not build it: {_short(exc)}") from None
    if entry is not None and str(getattr(entry.kind, "name", entry.kind)).upper() == "TAG" and len(loaded["tasks"]) > 1:
        names = sorted(loaded["tasks"])
        raise TaskError(f"task {arg!r}: {spec!r} is an lm-eval tag of {len(names)} tasks; name them one by one "
                        f"({' '.join('--task ' + PREFIX + n for n in names)})")
    return loaded


def _group_name(spec: str, loaded: dict) -> str | None:
    """The group's name when `spec` is a group (items then carry their subtask), else None."""
    groups = loaded.get("groups") or {}
    if not groups:
        return None
    children = {c for g in groups.values() for c in _child_names(g)}
    tops = [name for name in groups if name not in children]
    return spec if spec in groups else (tops[0] if len(tops) == 1 else spec)


def _child_names(group: Any) -> list[str]:
    return [str(c) for c in (getattr(group, "child_names", None) or [])]


def _where(paths: Sequence[str]) -> str:
    return f" (include path {', '.join(paths)})" if paths else ""


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


# ------------------------------------------------------------------ building


def _configure(lm_task: Any, options: LmevalOptions) -> None:
    """num_fewshot and the few-shot seed exactly as lm_eval.simple_evaluate sets them."""
    default = lm_task.get_config("num_fewshot")
    if options.num_fewshot is not None:
        if default != 0:  # a task that fixes 0 shots in its YAML keeps them (lm-eval ignores the override)
            lm_task.set_config(key="num_fewshot", value=options.num_fewshot)
    elif default is None:
        lm_task.set_config(key="num_fewshot", value=0)
    lm_task.set_fewshot_seed(seed=options.fewshot_seed)


def _items(lm_task: Any, leaf: str, arg: str, options: LmevalOptions) -> list[Item]:
    output_type = lm_task.get_config("output_type")
    if output_type != "multiple_choice":
        raise TaskError(f"task {arg!r}: lm-eval task {leaf!r} has output_type {output_type!r}; only "
                        "multiple_choice tasks can be scored from lm-eval's registry so far")
    if getattr(lm_task, "MULTIMODAL", False):
        raise TaskError(f"task {arg!r}: lm-eval task {leaf!r} needs images or audio, which forgetscope cannot score")
    limit = None if options.limit is None else item_limit(options.limit, len(lm_task.eval_docs))
    try:
        lm_task.build_all_requests(limit=limit, system_instruction=options.system_instruction,
                                   apply_chat_template=options.apply_chat_template,
                                   fewshot_as_multiturn=options.fewshot_as_multiturn,
                                   chat_template=options.chat_template if options.apply_chat_template else None)
    except Exception as exc:  # a template that fails on a document, an empty split, ...
        raise TaskError(f"task {arg!r}: lm-eval could not build the requests of {leaf!r}: {_short(exc)}") from None
    by_doc: dict[int, list] = defaultdict(list)
    for instance in lm_task.instances:
        by_doc[instance.doc_id].append(instance)
    return [_item(lm_task, doc_id, sorted(requests, key=lambda r: r.idx), leaf, arg)
            for doc_id, requests in sorted(by_doc.items())]


def _item(lm_task: Any, doc_id: int, requests: list, leaf: str, arg: str) -> Item:
    from lm_eval.utils import handle_non_serializable, hash_string

    where = f"task {arg!r}, lm-eval task {leaf!r}, doc {doc_id}"
    doc = requests[0].doc
    choices = [str(c) for c in lm_task.doc_to_choice(doc)]
    requests = requests[: len(choices)]  # acc_mutual_info appends unconditional requests after the choices
    if len(requests) != len(choices) or not choices:
        raise TaskError(f"{where}: {len(requests)} requests for {len(choices)} choices")
    contexts = [str(r.arguments[0]) for r in requests]
    continuations = [str(r.arguments[1]) for r in requests]
    target = lm_task.doc_to_target(doc)
    gold_source = lm_task.doc_to_text(doc) if lm_task.multiple_input else target
    gold = _gold(gold_source, choices, where, "doc_to_text" if lm_task.multiple_input else "doc_to_target")
    # lm-eval's own hashes of the doc, the rendered prompt and the target (evaluator.evaluate),
    # combined as forgetscope.importers.lmeval combines them
    doc_hash = hash_string(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False))
    item_hash = stable_hash({"doc_hash": doc_hash, "prompt_hash": hash_string(contexts[0]),
                             "target_hash": hash_string(str(target)), "continuations": continuations})
    return Item(item_id=str(doc_id), kind="multiple_choice",
                contexts=tuple(contexts) if lm_task.multiple_input else (contexts[0],),
                continuations=tuple(continuations), choices=tuple(choices), gold=gold, item_hash=item_hash)


def _gold(value: Any, choices: list[str], where: str, source: str) -> tuple[int, ...]:
    """Gold indices as lm-eval's process_results reads them: an index, a choice text, or a list of indices."""
    values = value if isinstance(value, list) else [value]
    golds = []
    for gold in values:
        if isinstance(gold, str) and not isinstance(value, list):
            if gold not in choices:
                raise TaskError(f"{where}: gold {gold!r} is not one of the choices {choices}; fix {source}")
            gold = choices.index(gold)
        if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
            raise TaskError(f"{where}: gold {value!r} is not an index of the {len(choices)} choices; "
                            f"lm-eval would score this document as wrong whatever the model says: fix {source}")
        golds.append(gold)
    if not golds:
        raise TaskError(f"{where}: {source} gave no gold")
    return tuple(golds)


def _in_group(item: Item, leaf: str) -> Item:
    from dataclasses import replace

    return replace(item, item_id=f"{leaf}/{item.item_id}", category=leaf)


__all__ = ["DEFAULT_FEWSHOT_SEED", "LmevalOptions", "PREFIX", "is_lmeval_task", "lmeval_task", "load_lmeval_task"]
