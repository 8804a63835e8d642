"""Task specs: a small typed description of a task, readable from YAML.

Every way of naming a task (a built-in, a data file, a BIG-bench JSON, a
YAML file) becomes a `TaskSpec`, CLI overrides (`TaskOptions`) are applied to
it, and `TaskSpec.build()` makes the `Task`. One path, so an override means
the same thing whatever the source. Example:

    name: my_quiz
    path: quiz.csv               # relative to this file
    columns: {question: prompt_text, answer: gold}
    template: "Q: {question}\\nA:"
    fewshot: {k: 3, file: quiz_train.jsonl, seed: 1}
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from forgetscope.tasks.base import GenerationConfig, Kind, Task, TaskError
from forgetscope.tasks.bigbench import load_bigbench, read_bigbench_json
from forgetscope.tasks.builtin import Builtin, get_builtin
from forgetscope.tasks.formats import DEFAULT_FEWSHOT_SEED, FewShotPool, PromptFormat, build_items
from forgetscope.tasks.hf import DEFAULT_HINT, load_hf_rows
from forgetscope.tasks.local import DATA_SUFFIXES, RowSet, apply_columns, detect_kind, read_rows
from forgetscope.textfile import load_yaml, read_utf8

KIND_ALIASES: dict[str, Kind] = {
    "multiple_choice": "multiple_choice",
    "mc": "multiple_choice",
    "generate": "generate",
    "generative": "generate",
    "generate_until": "generate",
}


@dataclass
class FewShotSpec:
    """Where few-shot examples come from."""

    k: int = 0
    """Number of solved examples before each item (0: zero-shot)."""
    split: str | None = None
    """Split of the same dataset to draw from (built-ins default to their train/dev split;
    other sources to the evaluated rows, never showing an item to itself)."""
    file: str | None = None
    """A data file (or BIG-bench JSON) to draw from instead; relative to the spec file."""
    seed: int = DEFAULT_FEWSHOT_SEED
    """Examples are a pure function of (seed, item id)."""
    sampler: Literal["random", "first_n"] | None = None
    """`random` (seeded per item) or `first_n` (the first k rows, in order); default random,
    or the built-in's choice (MMLU: first_n)."""
    by_category: bool | None = None
    """Draw examples only from rows of the item's own category (default: the built-in's choice)."""


@dataclass
class TaskOptions:
    """Command-line overrides applied on top of any task (None: keep the task's setting)."""

    template: str | None = None
    target_delimiter: str | None = None
    num_fewshot: int | None = None
    fewshot_source: str | None = None
    """A split name, or a path to a data file."""
    fewshot_seed: int | None = None
    limit: int | None = None
    name: str | None = None
    include_path: tuple[str, ...] = ()
    """Folders (or files) of lm-evaluation-harness task YAMLs for `lmeval:NAME` tasks."""


@dataclass
class TaskSpec:
    """A task: its source, how rows map to prompts, few-shot, and generative judging."""

    name: str | None = None
    """Task name in results; defaults to the built-in name or the file stem."""
    kind: Kind | None = None
    """`multiple_choice` or `generate`; detected (rows with choices are multiple choice) when unset."""
    path: str | None = None
    """Local data: .jsonl/.json/.csv/.parquet file, BIG-bench task.json, or a dataset folder."""
    hf: str | None = None
    """Hugging Face dataset: hub id, or a local path (save_to_disk folder, data folder, data file)."""
    config: str | None = None
    """Hugging Face config name (e.g. ARC-Easy)."""
    split: str | None = None
    """Split to evaluate (default: the built-in's split, else `test`); ignored for single files."""
    bigbench: str | None = None
    """Path to a BIG-bench task.json."""
    builtin: str | None = None
    """Use a built-in task's preprocessing and format; with `path`/`hf`, over that data instead of the hub."""
    columns: dict[str, str] = field(default_factory=dict)
    """Canonical name -> source column (dots reach into nested columns), e.g. {question: stem}."""
    template: str | None = None
    """Context template (format string or Jinja), rendered from the mapped row."""
    choices: str | list[str] | None = None
    """Column with the choice list, a template rendering to a list, or one template per choice."""
    answer: str | None = None
    """Column or template giving the gold (index or choice text), or the answer(s) for generative tasks."""
    labels: str | None = None
    """Column with choice labels, so a letter answer ("C") can be looked up."""
    target_delimiter: str | None = None
    """Between context and choice (default " ")."""
    description: str | None = None
    """Prompt prefix before few-shot examples (a template)."""
    category: str | None = None
    """Column or template for each item's category."""
    fewshot: FewShotSpec = field(default_factory=FewShotSpec)
    """Few-shot settings; `fewshot: 5` is short for `fewshot: {k: 5}`."""
    fewshot_delimiter: str | None = None
    """Between examples (default a blank line)."""
    fewshot_target: str | None = None
    """Column or template for an example's answer text (default: the gold choice / first answer)."""
    limit: int | None = None
    """Evaluate only the first N items."""
    max_new_tokens: int | None = None
    """Generative: token budget per item."""
    stop: list[str] | None = None
    """Generative: stop sequences."""
    answer_regex: str | None = None
    """Generative: regex extracting the answer from the output (group 1 if any)."""
    regex_match: Literal["first", "last"] | None = None
    """Generative: use the first or the last regex match."""
    ignore_case: bool | None = None
    ignore_punctuation: bool | None = None
    strip_chars: str | None = None
    """Generative: characters removed before comparing (e.g. "$,")."""
    base_dir: Path = field(default_factory=Path.cwd, repr=False)
    """Relative paths start here (the spec file's folder); not a YAML key."""

    # ------------------------------------------------------------------ reading

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "base_dir"]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "task spec", base_dir: Path | None = None) -> "TaskSpec":
        """Validate keys and types; errors name the file and the key."""
        allowed = cls.keys()
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in allowed:
                raise TaskError(f"{origin}: unknown key {key!r}; allowed keys: {', '.join(allowed)}")
            values[key] = _check(origin, key, value)
        return cls(**values, base_dir=base_dir or Path.cwd())

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TaskSpec":
        path = Path(path)
        if not path.exists():
            raise TaskError(f"{path}: spec file not found; check the path")
        data = load_yaml(read_utf8(path, TaskError), path, TaskError)
        if not isinstance(data, dict):
            raise TaskError(f"{path}: a task spec is a YAML mapping of keys ({', '.join(cls.keys())})")
        spec = cls.from_dict(data, origin=str(path), base_dir=path.parent)
        return spec if spec.name else replace(spec, name=path.stem)

    def with_options(self, options: TaskOptions | None) -> "TaskSpec":
        """The spec with CLI overrides applied."""
        if options is None:
            return self
        spec = replace(self, fewshot=replace(self.fewshot))
        for key in ("template", "target_delimiter", "limit", "name"):
            if getattr(options, key) is not None:
                setattr(spec, key, getattr(options, key))
        if options.num_fewshot is not None:
            spec.fewshot.k = options.num_fewshot
        if options.fewshot_seed is not None:
            spec.fewshot.seed = options.fewshot_seed
        if options.fewshot_source:
            source = options.fewshot_source
            if Path(source).exists() or Path(source).suffix.lower() in DATA_SUFFIXES:
                spec.fewshot.file, spec.fewshot.split = str(Path(source).resolve()), None
            else:
                spec.fewshot.split, spec.fewshot.file = source, None
        return spec

    # ------------------------------------------------------------------ building

    def build(self) -> Task:
        """Load the rows, render every item, and return the Task."""
        if self.limit is not None and self.limit < 1:
            raise TaskError(f"limit must be at least 1, got {self.limit}")
        if self.fewshot.k < 0:
            raise TaskError(f"the number of few-shot examples must be 0 or more, got {self.fewshot.k}")
        builtin = get_builtin(self.builtin) if self.builtin else None
        split = self.split or (builtin.info.split if builtin else "test")
        loaded = self._load(builtin, split)
        docs = self._process(loaded.rows, builtin)
        kind = self.kind or loaded.kind or (builtin.info.kind if builtin else None)
        kind = kind or ("multiple_choice" if self.choices else detect_kind(docs[0]))
        fmt = self._format(loaded.fmt or (builtin.format if builtin else PromptFormat()), kind)
        pool, pool_from = self._fewshot_pool(builtin, loaded, docs, split, fmt)
        pool_note = self._describe_pool(pool, pool_from)
        items = build_items(docs, fmt, where=loaded.rows.where, fewshot=pool, limit=self.limit)
        base_gen = builtin.generation if builtin and builtin.generation else GenerationConfig()
        notes = loaded.rows.notes + ([pool_note] if pool_note else [])
        source = loaded.rows.origin + (f" via built-in {builtin.name}" if builtin else "")
        return Task(
            name=self.name or loaded.name,
            items=items,
            generation=self._generation(base_gen),
            description=loaded.about,
            source=source + (f" ({'; '.join(notes)})" if notes else ""),
        )

    def _path(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path

    def _load(self, builtin: Builtin | None, split: str) -> "_Loaded":
        sources = [k for k in ("path", "hf", "bigbench") if getattr(self, k)]
        if len(sources) > 1:
            raise TaskError(f"task spec: give only one of path/hf/bigbench, got {', '.join(sources)}")
        hint = builtin.info.local_hint if builtin else DEFAULT_HINT
        if self.bigbench or (self.path and not builtin and read_bigbench_json(self._path(self.path))):
            bb = load_bigbench(self._path(self.bigbench or self.path or ""), self.kind)
            fmt = PromptFormat(kind=bb.kind, description=bb.prefix)
            return _Loaded(bb.rows, bb.name, bb.about, bb.kind, fmt, path=self._path(self.bigbench or self.path or ""))
        if self.path and not self._path(self.path).is_dir():
            path = self._path(self.path)
            return _Loaded(read_rows(path), builtin.name if builtin else path.stem, _about(builtin), path=path)
        if self.path or self.hf:
            local = self._path(self.path or self.hf or "")
            where = str(local) if local.exists() else str(self.hf)  # a hub id when no such path
            rows = load_hf_rows(where, self.config, split, hint=hint)
            load = lambda s: load_hf_rows(where, self.config, s, hint=hint, exact_split=True)  # noqa: E731
            default_name = builtin.name if builtin else Path(where.rstrip("/")).name
            path = local if local.is_file() else None
            return _Loaded(rows, default_name, _about(builtin), load_split=load if path is None else None, path=path)
        if builtin:
            info = builtin.info
            rows = load_hf_rows(info.hf_id, info.hf_config, split, hint=hint)
            load = lambda s: load_hf_rows(info.hf_id, info.hf_config, s, hint=hint, exact_split=True)  # noqa: E731
            return _Loaded(rows, info.name, info.description, load_split=load)
        raise TaskError("task spec: no data source; set one of `path`, `hf`, `bigbench` or `builtin`")

    def _process(self, rows: RowSet, builtin: Builtin | None) -> list[dict]:
        docs = []
        for i, row in enumerate(rows.rows):
            try:
                if builtin:
                    docs.append(builtin.doc(apply_columns(row, self.columns, gather=False), i))
                else:
                    docs.append(apply_columns(row, self.columns))
            except TaskError as exc:
                raise TaskError(f"{rows.where(i)}: {exc}") from None
        return docs

    def _format(self, base: PromptFormat, kind: Kind) -> PromptFormat:
        overrides: dict[str, Any] = {"kind": kind}
        for key in ("template", "answer", "labels", "target_delimiter", "description", "fewshot_delimiter",
                    "fewshot_target", "category"):  # fmt: skip
            if getattr(self, key) is not None:
                overrides[key] = getattr(self, key)
        if self.choices is not None:
            overrides["choices"] = self.choices if isinstance(self.choices, str) else tuple(self.choices)
        return replace(base, **overrides)

    def _fewshot_pool(
        self, builtin: Builtin | None, loaded: "_Loaded", docs: list[dict], split: str, fmt: PromptFormat
    ) -> tuple[FewShotPool | None, str]:
        spec = self.fewshot
        if spec.k <= 0:
            return None, ""
        if spec.file:
            path = self._path(spec.file)
            if loaded.path is not None and path.resolve() == loaded.path.resolve():
                return self._pool(builtin, fmt, docs, loaded.rows, True), "the same file"
            if read_bigbench_json(path):
                rows = load_bigbench(path).rows
            elif path.is_dir():
                rows = load_hf_rows(str(path), self.config, spec.split or "train")
            else:
                rows = read_rows(path)
            return self._pool(builtin, fmt, self._process(rows, builtin), rows, False), str(path)
        wanted = spec.split or (builtin.info.fewshot_split if builtin else None) or split
        if wanted == split:
            return self._pool(builtin, fmt, docs, loaded.rows, True), "the evaluated rows"
        if loaded.load_split is None:
            raise TaskError(
                f"{loaded.rows.origin}: few-shot examples come from split {wanted!r}, but a single file has no splits; "
                f"give a few-shot file (--fewshot-source FILE or `fewshot: {{file: ...}}`), or point at a folder "
                f"holding {split}.jsonl and {wanted}.jsonl"
            )
        rows = loaded.load_split(wanted)
        return self._pool(builtin, fmt, self._process(rows, builtin), rows, False), f"split {wanted!r}"

    def _pool(
        self, builtin: Builtin | None, fmt: PromptFormat, docs: list[dict], rows: RowSet, same_source: bool
    ) -> FewShotPool:
        spec = self.fewshot
        sampler = spec.sampler or (builtin.fewshot_sampler if builtin else "random")
        by_category = spec.by_category if spec.by_category is not None else bool(builtin and builtin.fewshot_by_category)
        categories = None
        if by_category:
            try:
                categories = [fmt.category_of(doc) for doc in docs]
            except TaskError as exc:
                raise TaskError(f"{rows.origin} (few-shot rows): {exc}") from None
        return FewShotPool(spec.k, docs, rows.where, same_source, spec.seed, sampler, categories)

    def _describe_pool(self, pool: FewShotPool | None, source: str) -> str:
        if pool is None:
            return ""
        how = "first rows" if pool.sampler == "first_n" else f"seed {pool.seed}"
        return f"{pool.k}-shot from {source}, {how}" + (", same category" if pool.categories is not None else "")

    def _generation(self, base: GenerationConfig) -> GenerationConfig:
        overrides: dict[str, Any] = {}
        for key in ("max_new_tokens", "answer_regex", "regex_match", "ignore_case", "ignore_punctuation", "strip_chars"):
            if getattr(self, key) is not None:
                overrides[key] = getattr(self, key)
        if self.stop is not None:
            overrides["stop"] = tuple(self.stop)
        return replace(base, **overrides)


@dataclass
class _Loaded:
    """Rows of the evaluated split plus what the source knows about itself."""

    rows: RowSet
    name: str
    about: str
    kind: Kind | None = None
    fmt: PromptFormat | None = None
    load_split: Callable[[str], RowSet] | None = None
    """Loads another split of the same dataset (None for single files)."""
    path: Path | None = None
    """The single local file the rows came from, if any."""


def _about(builtin: Builtin | None) -> str:
    return builtin.info.description if builtin else ""




# ---------------------------------------------------------------------- validation

_STR_KEYS = {
    "name", "path", "hf", "config", "split", "bigbench", "builtin", "template", "answer", "labels",
    "target_delimiter", "description", "fewshot_delimiter", "fewshot_target", "category", "answer_regex",
    "strip_chars",
}  # fmt: skip
_INT_KEYS = {"limit", "max_new_tokens"}
_BOOL_KEYS = {"ignore_case", "ignore_punctuation"}


def _check(origin: str, key: str, value: Any) -> Any:
    """The value of one spec key, checked (and normalised) or a TaskError naming it."""

    def bad(expected: str) -> TaskError:
        return TaskError(f"{origin}: key {key!r} must be {expected}, got {value!r}")

    if key in _STR_KEYS:
        if key in ("config", "split") and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if key in _BOOL_KEYS:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key == "kind":
        if not isinstance(value, str) or value not in KIND_ALIASES:
            raise bad("multiple_choice or generate")
        return KIND_ALIASES[value]
    if key == "regex_match":
        if value not in ("first", "last"):
            raise bad("first or last")
        return value
    if key in ("choices", "stop"):
        if isinstance(value, str):
            return value if key == "choices" else [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a string or a list of strings")
        return value
    if key == "columns":
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise bad("a mapping of canonical name to column name, e.g. {question: stem}")
        return dict(value)
    if key == "fewshot":
        return _check_fewshot(origin, value)
    raise TaskError(f"{origin}: key {key!r} is not supported")  # unreachable: keys are checked first


def _check_fewshot(origin: str, value: Any) -> FewShotSpec:
    if isinstance(value, int) and not isinstance(value, bool):
        return FewShotSpec(k=value)
    if not isinstance(value, dict):
        raise TaskError(f"{origin}: key 'fewshot' must be a number (k) or a mapping with k, split, file, seed")
    allowed = [f.name for f in fields(FewShotSpec)]
    for key, item in value.items():
        if key not in allowed:
            raise TaskError(f"{origin}: unknown key {'fewshot.' + str(key)!r}; allowed keys: {', '.join(allowed)}")
        if key in ("k", "seed") and (isinstance(item, bool) or not isinstance(item, int)):
            raise TaskError(f"{origin}: key 'fewshot.{key}' must be an integer, got {item!r}")
        if key in ("split", "file") and not isinstance(item, str):
            raise TaskError(f"{origin}: key 'fewshot.{key}' must be a string, got {item!r}")
        if key == "sampler" and item not in ("random", "first_n"):
            raise TaskError(f"{origin}: key 'fewshot.sampler' must be random or first_n, got {item!r}")
        if key == "by_category" and not isinstance(item, bool):
            raise TaskError(f"{origin}: key 'fewshot.by_category' must be true or false, got {item!r}")
    return FewShotSpec(**value)
