"""Items × checkpoint → records. Caching and resume live here.

`evaluate()` fingerprints the model (by file contents, without loading it),
looks up finished rows for every task in the results directory, and loads the
model only if something is missing. Missing items are scored in chunks; each
chunk is written as its own Parquet part as soon as it is done, so a run that
is killed midway loses at most one chunk and a re-run neither repeats nor
duplicates finished rows.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ..backends.adapters import refuse_any_pickle
from ..backends.base import (AUTO_BATCH, Backend, GenerationRequest, LoglikelihoodRequest, NonFiniteScoreError,
                             Tokenization, check_finite)
from ..backends.hub import from_snapshot, split_revision
from ..backends.model_args import check_model_args, loading_model_args
from ..records.schema import SCHEMA, empty_table, to_table
from ..records.store import RUN_KEY_COLUMNS, dedupe
from ..tasks.base import Item, Task, stable_hash
from .fingerprint import model_fingerprint, resolve_model, source_fingerprint


@dataclass
class EvalSettings:
    """How a checkpoint is evaluated.

    Only the fields in `scoring_key()` can change a score, so only they enter
    the cache key; batch size, device and threads do not (batch invariance is
    tested), so changing them reuses cached rows.
    """

    backend: str = "hf"
    #: float32 (default; exact on CPU), bfloat16, float16 or auto
    dtype: str = "float32"
    #: cpu, cuda, cuda:1, or auto (GPU when available; evaluate() stores the device it resolved to)
    device: str = "cpu"
    #: sequences per forward pass, or "auto": the largest that fits on a GPU (16 on CPU)
    batch_size: int | str = 16
    #: longest sequence fed to the model (default: the model's context length)
    max_length: int | None = None
    #: None follows the tokenizer's default (as lm-evaluation-harness does)
    add_special_tokens: bool | None = None
    #: repeats per item (seeds seed, seed+1, ...); useful with sampling
    repeats: int = 1
    seed: int = 0
    #: sampling temperature for generative tasks; 0 = greedy
    temperature: float = 0.0
    top_p: float = 1.0
    #: override each generative task's max_new_tokens
    max_new_tokens: int | None = None
    gguf_file: str | None = None
    trust_remote_code: bool = False
    #: items scored between two writes to disk
    chunk_size: int = 256
    threads: int | None = None
    #: vLLM: fraction of GPU memory for weights and KV cache (not a scoring setting)
    gpu_memory_utilization: float = 0.9
    #: vLLM: the engine's context length (default: the model's); truncation depends on it
    max_model_len: int | None = None
    #: vLLM: GPUs the model is sharded over (not a scoring setting)
    tensor_parallel_size: int = 1
    #: load weights that exist only as pickle (pytorch_model.bin), with torch.load(weights_only=True);
    #: off: such a model is refused (pickle can run code). Not a scoring setting.
    allow_pickle: bool = False
    #: extra from_pretrained keywords (--model-args; backends.model_args checks them). Those that can
    #: change a score enter the cache key; `revision` is the checkpoint's (resolved to its commit)
    model_args: dict = field(default_factory=dict)

    def scoring_key(self) -> dict:
        return {
            "backend": self.backend,
            "dtype": self.dtype,
            "max_length": self.max_length,
            "add_special_tokens": self.add_special_tokens,
            "seed": self.seed,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            # only when set, so hashes (and caches) from before this field existed stay valid
            **({"max_model_len": self.max_model_len} if self.max_model_len is not None else {}),
            **({"model_args": model_args} if (model_args := loading_model_args(self.model_args)) else {}),
        }

    def settings_hash(self) -> str:
        return stable_hash(self.scoring_key())

    def __post_init__(self) -> None:
        """Refuse settings no backend can score with (also after `dataclasses.replace`)."""
        from ..backends.base import BackendError

        if self.batch_size != AUTO_BATCH and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                                              or self.batch_size < 1):
            raise BackendError(f"--batch-size must be a whole number of at least 1 (sequences per forward pass) "
                               f"or auto, got {self.batch_size!r}")
        check_model_args(self.model_args)
        if self.max_length is not None and (not isinstance(self.max_length, int) or self.max_length < 2):
            raise BackendError(f"--max-length {self.max_length!r} is too short: the model would see at most one token, "
                               "so nothing of the prompt is left before a choice; give at least 2 tokens, or leave "
                               "it unset for the model's context length")


ProgressFn = Callable[[str, int, int], None]


@dataclass
class Checkpoint:
    """A model to evaluate: where it is and what to call it in the records.

    `model` may name a hub revision, `org/name@REVISION` (split into `model` and
    `revision` here; an existing local path with an `@` is a path). A hub
    checkpoint is resolved once to its commit (`commit`, `folder`): that snapshot
    is what is fingerprinted and loaded, even if the revision moves meanwhile.
    """

    model: str
    name: str = ""
    gguf_file: str | None = None
    revision: str | None = None
    fingerprint: str = field(default="", repr=False)
    #: the hub commit `revision` resolved to (None: a local model)
    commit: str | None = field(default=None, repr=False)
    #: model arg `subfolder`: the weights are in this folder of the model
    subfolder: str | None = field(default=None, repr=False)
    _folder: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        given = self.model
        model, revision = split_revision(self.model)
        if revision is not None:
            self.model = model
            self.with_revision(revision)
        if not self.name:
            self.name = given

    def with_revision(self, revision: str | None) -> None:
        """Set the revision (from @REV, --revision or --model-args revision=); two different ones are an error."""
        from ..backends.base import BackendError

        if revision is None or revision == self.revision:
            return
        if self.revision is not None:
            raise BackendError(f"{self.model}: two revisions given ({self.revision!r} and {revision!r}); give one")
        self.revision = revision

    def resolve_fingerprint(self) -> str:
        if not self.fingerprint:
            if from_snapshot(self.model, self.revision):
                source = resolve_model(self.model, self.revision)  # one resolution: fingerprint and load agree
                self.commit, self._folder = source.commit, source.folder
                self.fingerprint = source_fingerprint(source, self.gguf_file, self.subfolder)
            else:
                self.fingerprint = model_fingerprint(self.model, self.gguf_file, revision=self.commit,
                                                     subfolder=self.subfolder)
        return self.fingerprint

    def load_path(self) -> str:
        """What the backend loads: the resolved snapshot folder of a hub checkpoint, else `model`."""
        self.resolve_fingerprint()
        return str(self._folder) if self._folder is not None else self.model


def evaluate(
    checkpoint: Checkpoint | str,
    tasks: Sequence[Task],
    output_dir: Path | str,
    settings: EvalSettings | None = None,
    *,
    backend: Backend | None = None,
    progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """Score every item of every task (reusing cached rows) and return their records.

    `output_dir` is a local directory or a URL fsspec opens (records.fsstore)."""
    settings = settings or EvalSettings()
    if backend is None:
        settings = resolve_device_setting(settings)
    ckpt, model_fp = prepare_checkpoint(checkpoint, settings, check_pickle=backend is None)
    frames = []
    lazy = _LazyBackend(ckpt, settings, backend)
    for task in tasks:
        plan = plan_task(ckpt, model_fp, task, output_dir, settings)
        total = len(task.items)
        if progress:
            progress(task.name, total - len(plan.todo), total)
        if plan.todo:
            backend_now = lazy.get()
            for start, chunk in plan.chunks(chunk_step(settings, backend_now)):
                score_chunk(plan, chunk, backend_now)
                if progress:
                    progress(task.name, total - len(plan.todo) + start + len(chunk), total)
        frames.append(finish_task(plan))
    if not frames:
        return SCHEMA.empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)


def resolve_device_setting(settings: EvalSettings) -> EvalSettings:
    """`device="auto"` made concrete (CUDA when present, else CPU): records store the device scores came from."""
    if settings.device != "auto":
        return settings
    from ..backends.hf import resolve_device

    return replace(settings, device=resolve_device("auto"))


def prepare_checkpoint(checkpoint: Checkpoint | str, settings: EvalSettings,
                       check_pickle: bool = True) -> tuple[Checkpoint, str]:
    """The checkpoint (its GGUF file from the settings if it names none) and its fingerprint; a model
    whose weights exist only as pickle is refused here, before anything is scored or shown."""
    ckpt = Checkpoint(checkpoint) if isinstance(checkpoint, str) else checkpoint
    if settings.gguf_file and not ckpt.gguf_file:
        ckpt.gguf_file = settings.gguf_file
    ckpt.with_revision(settings.model_args.get("revision"))
    ckpt.subfolder = ckpt.subfolder or settings.model_args.get("subfolder")
    model_fp = ckpt.resolve_fingerprint()
    if check_pickle and not ckpt.gguf_file and not settings.allow_pickle:
        refuse_any_pickle(ckpt.load_path())
    return ckpt, model_fp


def load_backend(ckpt: Checkpoint, settings: EvalSettings, threads: int | None = None) -> Backend:
    """The settings' backend with the checkpoint's model loaded (`threads` overrides settings.threads)."""
    from ..backends import create_backend

    s = settings
    loading = loading_model_args(s.model_args)
    return create_backend(
        s.backend, ckpt.load_path(), dtype=s.dtype, device=s.device, batch_size=s.batch_size,
        max_length=s.max_length, gguf_file=ckpt.gguf_file,
        trust_remote_code=s.trust_remote_code, threads=threads or s.threads, allow_pickle=s.allow_pickle,
        **({"model_args": loading} if loading else {}),
        **({"gpu_memory_utilization": s.gpu_memory_utilization, "max_model_len": s.max_model_len,
            "tensor_parallel_size": s.tensor_parallel_size, "seed": s.seed} if s.backend == "vllm" else {}),
    )


class _LazyBackend:
    """Loads the model on first use, so fully cached runs never load it."""

    def __init__(self, ckpt: Checkpoint, settings: EvalSettings, backend: Backend | None) -> None:
        self.ckpt, self.settings, self._backend = ckpt, settings, backend

    def get(self) -> Backend:
        if self._backend is None:
            self._backend = load_backend(self.ckpt, self.settings)
        return self._backend


def chunk_step(settings: EvalSettings, backend: Backend | None = None) -> int:
    """Items per chunk: settings.chunk_size, or more for a backend that batches by itself (vLLM asks
    for a whole task per call). Without a loaded backend, the backend class's own request."""
    per_call = getattr(backend, "items_per_call", None) if backend is not None else _items_per_call(settings.backend)
    return max(1, settings.chunk_size, per_call or 0)


def _items_per_call(name: str) -> int | None:
    if name == "vllm":  # the class attribute, without importing vllm
        from ..backends.vllm import VLLMBackend

        return VLLMBackend.items_per_call
    return None


@dataclass
class TaskPlan:
    """One (checkpoint, task): where its rows go, which are done, which items are left to score.

    Made by `plan_task` (which also borrows rows of relatives and writes meta.json), scored chunk
    by chunk with `score_chunk` (in this process or on a worker: a plan pickles), and finished by
    `finish_task`, which merges the parts. The executors (engine.executor) run these three steps."""

    checkpoint: Checkpoint
    model_fp: str
    task: Task
    task_fp: str
    settings: EvalSettings
    run: Any
    """store.RunDir (a local path) or fsstore.FsRunDir (a URL)."""
    current: dict[str, str]
    """item_id → item_hash of the task's items."""
    n_repeats: int
    done_keys: set = field(default_factory=set, repr=False)
    """(item_id, repeat) already stored."""
    todo: list[Item] = field(default_factory=list, repr=False)
    relatives: list = field(default_factory=list, repr=False)

    @property
    def settings_hash(self) -> str:
        return self.settings.settings_hash()

    @property
    def repeats(self) -> range:
        return range(self.n_repeats)

    def chunks(self, step: int) -> list[tuple[int, list[Item]]]:
        """(offset into todo, items) of each chunk of at most `step` items."""
        return [(start, self.todo[start:start + step]) for start in range(0, len(self.todo), step)]

    def unit_tag(self, items: Sequence[Item]) -> str:
        """12 hex digits naming the part of exactly these items of this run (see RunDir.append)."""
        return stable_hash({"model": self.model_fp, "task": self.task_fp, "settings": self.settings_hash,
                            "items": [i.item_id for i in items], "repeats": self.n_repeats}, n=12)


def plan_task(ckpt: Checkpoint, model_fp: str, task: Task, root: Path | str, settings: EvalSettings) -> TaskPlan:
    """Find the task's stored rows (borrowing those of relatives) and what is left to score."""
    from ..records.fsstore import open_run_dir

    task_fp = task.fingerprint()
    settings_hash = settings.settings_hash()
    # The family key holds what judges every item alike: model, task name, settings and, for
    # generative items, the decoding/judging config. Rows are valid across a family per item
    # (same item_id and item_hash). The run key adds the task's content, so two different
    # tasks that share a name (a/quiz.jsonl, b/quiz.jsonl) never share, or replace, rows.
    judging = task.generation.to_dict() if any(i.kind == "generate" for i in task.items) else None
    family = stable_hash({"model": model_fp, "task": task.name, "settings": settings_hash, "judging": judging}, n=32)
    run_key = stable_hash({"family": family, "task_fingerprint": task_fp}, n=32)
    run = open_run_dir(root, model_fp, task.name, run_key)
    current = {item.item_id: item.item_hash for item in task.items}
    repeats = range(max(1, settings.repeats))
    done = run.read(valid=current)
    done_keys = set(zip(done.column("item_id").to_pylist(), done.column("repeat").to_pylist()))
    todo = [item for item in task.items if any((item.item_id, r) not in done_keys for r in repeats)]
    relatives = [r for r in run.siblings() if _family_of(r) == family] if todo else []
    # rows of the same items from another content of this task (a --limit, an edit, an older layout)
    borrowed = _borrow(relatives, current, len(repeats), done_keys, task_fp) if todo else empty_table()
    if todo:
        run.write_meta({
            "checkpoint": ckpt.name, "model": ckpt.model, "model_fingerprint": model_fp,
            **({"revision": ckpt.revision, "commit": ckpt.commit} if ckpt.commit else {}),
            "gguf_file": ckpt.gguf_file, "task": task.name, "task_fingerprint": task_fp,
            "task_source": task.source, "n_items": len(task.items), "settings": asdict(settings),
            "settings_hash": settings_hash, "run_key": run_key, "family_key": family, "started": time.time(),
        })
    if borrowed.num_rows:
        run.append(borrowed)
        done_keys |= set(zip(borrowed.column("item_id").to_pylist(), borrowed.column("repeat").to_pylist()))
        todo = [item for item in task.items if any((item.item_id, r) not in done_keys for r in repeats)]
    return TaskPlan(ckpt, model_fp, task, task_fp, settings, run, current, len(repeats), done_keys, todo, relatives)


def score_chunk(plan: TaskPlan, items: Sequence[Item], backend: Backend, tag: str | None = None) -> int:
    """Score `items` (those not yet done of every repeat) and store their rows as one part; returns
    how many rows were written. `tag` names the part (RunDir.append), so a retried unit can tell."""
    context = _RowContext(plan.checkpoint.name, plan.model_fp, plan.task, plan.task_fp, plan.settings_hash,
                          plan.settings, backend)
    rows = [row for row in context.score(list(items), plan.repeats)
            if (row["item_id"], row["repeat"]) not in plan.done_keys]
    plan.run.append(to_table(rows), tag=tag)
    return len(rows)


def finish_task(plan: TaskPlan) -> pd.DataFrame:
    """Merge the parts into the run's records file and return the task's rows."""
    final = plan.run.finalize(valid=plan.current, checkpoint=plan.checkpoint.name)
    for relative in plan.relatives:
        if "family_key" not in relative.read_meta():  # the layout before run keys held task contents
            relative.remove_if_within(final)  # only once every row of it lives on here
    frame = final.to_pandas()
    # rows of items not in this task (e.g. beyond --limit) stay on disk but are not returned
    frame = frame[frame["item_id"].isin(plan.current.keys()) & (frame["repeat"] < plan.n_repeats)]
    return frame.assign(task_fingerprint=plan.task_fp).reset_index(drop=True)


def _family_of(run) -> str | None:
    """A run directory's family key; a directory written before run keys held task contents has
    its family key as its run key (the same hash)."""
    meta = run.read_meta()
    return meta.get("family_key", meta.get("run_key"))


def _borrow(relatives: list, current: dict[str, str], n_repeats: int, done: set, task_fp: str) -> "pa.Table":
    """Rows of these items (same item_id and item_hash, repeat < n_repeats, not yet done) from run
    directories of the same family, marked as rows of this task content."""
    found = []
    for relative in relatives:
        table = relative.read(valid=current)
        ids, repeats = table.column("item_id").to_pylist(), table.column("repeat").to_pylist()
        keep = [i in current and r < n_repeats and (i, r) not in done for i, r in zip(ids, repeats)]
        if any(keep):
            found.append(table.filter(pa.array(keep)))
    if not found:
        return empty_table()
    table = dedupe(pa.concat_tables(found), RUN_KEY_COLUMNS)
    index = table.schema.get_field_index("task_fingerprint")
    return table.set_column(index, "task_fingerprint", pa.array([task_fp] * table.num_rows, pa.string()))


class _RowContext:
    """Scores items and turns results into records rows."""

    def __init__(self, name, model_fp, task: Task, task_fp, settings_hash, settings: EvalSettings, backend):
        self.task, self.backend, self.settings = task, backend, settings
        self.tokenization = Tokenization(backend.tokenizer, settings.add_special_tokens)
        self.base = {
            "checkpoint": name, "model_fingerprint": model_fp, "task": task.name,
            "task_fingerprint": task_fp, "settings_hash": settings_hash, "backend": backend.name,
            "settings": json.dumps(asdict(settings), sort_keys=True),
        }

    def score(self, items: list[Item], repeats: range) -> list[dict]:
        mc = [i for i in items if i.kind == "multiple_choice"]
        gen = [i for i in items if i.kind == "generate"]
        rows = self._score_multiple_choice(mc, repeats) if mc else []
        if gen:
            rows += self._score_generative(gen, repeats)
        return rows

    def _broken(self, what: str, affected: int, scored: int) -> NonFiniteScoreError:
        """The error that stops this checkpoint: rows of a broken model are never written (they
        would read as answers: a NaN log-likelihood picks choice 0)."""
        return NonFiniteScoreError(
            f"checkpoint {self.base['checkpoint']!r}, task {self.task.name!r}: non-finite {what} (NaN or inf) "
            f"for {affected} of the {scored} items being scored (the task has {len(self.task.items)}); the "
            "checkpoint's weights or numerics are broken (a NaN or inf weight; an overflow in float16: try "
            "--dtype float32). Stopped; nothing was stored for these items")

    def _row(self, item: Item, repeat: int, **fields) -> dict:
        row = dict(self.base)
        row.update(
            item_id=item.item_id, item_hash=item.item_hash, category=item.category,
            n_choices=item.n_choices, repeat=repeat, seed=self.settings.seed + repeat,
            gold=item.gold_text(), prompt=item.context, choices=list(item.choices),
        )
        row.update(fields)
        return row

    def _score_multiple_choice(self, items: list[Item], repeats: range) -> list[dict]:
        # Each distinct (context ids, continuation ids) pair is scored once,
        # even when items or choices share it.
        unique: dict[LoglikelihoodRequest, int] = {}
        per_item: list[list[int]] = []
        for item in items:
            slots = []
            for context, continuation in item.requests():
                request = LoglikelihoodRequest(*self.tokenization.encode_pair(context, continuation))
                slots.append(unique.setdefault(request, len(unique)))
            per_item.append(slots)
        try:
            results = self.backend.loglikelihood(list(unique))
            check_finite(results)  # also for a backend that does not check by itself
        except NonFiniteScoreError as exc:
            bad = set(exc.requests)
            affected = sum(1 for slots in per_item if bad.intersection(slots)) if bad else len(items)
            raise self._broken("log-likelihoods", affected, len(items)) from None
        rows = []
        for item, slots in zip(items, per_item):
            found = [results[s] for s in slots]
            ll = np.array([r.logprob for r in found], dtype=np.float64)
            tokens = np.array([max(r.n_tokens, 1) for r in found], dtype=np.float64)
            chars = np.array([max(len(c), 1) for c in item.choices], dtype=np.float64)
            pred = int(np.argmax(ll))  # first maximum, as lm-evaluation-harness
            fields = dict(
                prediction=pred,
                correct=pred in item.gold,
                correct_norm=int(np.argmax(ll / chars)) in item.gold,
                correct_per_token=int(np.argmax(ll / tokens)) in item.gold,
                loglikelihoods=ll.tolist(),
                is_greedy=[r.is_greedy for r in found],
                choice_tokens=[r.n_tokens for r in found],
                choice_chars=[len(c) for c in item.choices],
            )
            # multiple-choice scoring is deterministic: every repeat is the same row
            rows.extend(self._row(item, r, **fields) for r in repeats)
        return rows

    def _score_generative(self, items: list[Item], repeats: range) -> list[dict]:
        config = self.task.generation
        max_new = self.settings.max_new_tokens or config.max_new_tokens
        sampling = self.settings.temperature > 0
        # greedy decoding gives the same text for every repeat: decode once
        decode_repeats = list(repeats) if sampling else [repeats[0]]
        requests, owners = [], []
        for r in decode_repeats:
            for item in items:
                requests.append(GenerationRequest(
                    context_ids=self.tokenization.encode_context(item.context),
                    max_new_tokens=max_new, stop=tuple(config.stop),
                    temperature=self.settings.temperature, top_p=self.settings.top_p,
                    # the seed depends on the item, not its position in a batch
                    seed=int(stable_hash([self.settings.seed + r, item.item_id], n=15), 16),
                ))
                owners.append((item, r))
        try:
            outputs = self.backend.generate(requests)
        except NonFiniteScoreError as exc:
            affected = len({owners[i][0].item_id for i in exc.requests}) if exc.requests else len(items)
            raise self._broken("logits", affected, len(items)) from None
        by_key = {(item.item_id, r): text for (item, r), text in zip(owners, outputs)}
        rows = []
        for item in items:
            for r in repeats:
                text = by_key[(item.item_id, r if sampling else decode_repeats[0])]
                extracted, correct = config.judge(text, item.answers)
                rows.append(self._row(item, r, output=text, extracted=extracted, correct=correct,
                                      correct_norm=correct, correct_per_token=correct))
        return rows
