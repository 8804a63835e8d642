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

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator
from pydantic import dataclasses as pydantic_dataclasses
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from forgetscope.configio import NULL_REFUSED_CONFIG, Bool, ConfigFile, ConfigProblem, ExactInt, List, NullRefused, Str
from forgetscope.configio import check as check_config
from forgetscope.configio import read_config
from forgetscope.tasks.base import GenerationConfig, Kind, Task, TaskError, item_limit
from forgetscope.tasks.bigbench import load_bigbench, read_bigbench_json
from forgetscope.tasks.chat import PromptStyle
from forgetscope.tasks.builtin import Builtin, get_builtin
from forgetscope.tasks.formats import DEFAULT_FEWSHOT_SEED, FewShotPool, PromptFormat, build_items
from forgetscope.tasks.hf import DEFAULT_HINT, load_hf_rows
from forgetscope.tasks.local import DATA_SUFFIXES, RowSet, apply_columns, detect_kind, read_rows
KIND_ALIASES: dict[str, Kind] = {
    "multiple_choice": "multiple_choice",
    "mc": "multiple_choice",
    "generate": "generate",
    "generative": "generate",
    "generate_until": "generate",
}
KindSpelling = Annotated[Literal["multiple_choice", "mc", "generate", "generative", "generate_until"],
                         AfterValidator(KIND_ALIASES.__getitem__)]
"""A task kind as written in a spec (lm-eval's spellings too), read as the Kind it means."""


def _number_as_text(value: Any) -> Any:
    """Config and split names may be written as numbers (`config: 2020`)."""
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


NameOrNumber = Annotated[Str, BeforeValidator(_number_as_text)]
Count = Annotated[ExactInt, Field(ge=0)]


@pydantic_dataclasses.dataclass(config=NULL_REFUSED_CONFIG)
class FewShotSpec(NullRefused):
    """Where few-shot examples come from."""

    k: Count = 0
    """Number of solved examples before each item (0: zero-shot)."""
    split: Str | None = None
    """Split of the same dataset to draw from (built-ins default to their train/dev split;
    other sources to the evaluated rows, never showing an item to itself)."""
    file: Str | None = None
    """A data file (or BIG-bench JSON) to draw from instead; relative to the spec file."""
    seed: ExactInt = DEFAULT_FEWSHOT_SEED
    """Examples are a pure function of (seed, item id)."""
    sampler: Literal["random", "first_n"] | None = None
    """`random` (seeded per item) or `first_n` (the first k rows, in order); default random,
    or the built-in's choice (MMLU: first_n)."""
    by_category: Bool | None = None
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
    limit: int | float | None = None
    """First N items of each task, or a fraction below 1 of them (rounded up, as lm-eval's --limit)."""
    name: str | None = None
    include_path: tuple[str, ...] = ()
    """Folders (or files) of lm-evaluation-harness task YAMLs for `lmeval:NAME` tasks."""
    prompt: PromptStyle | None = None
    """A chat template and/or system instruction the prompts are rendered with (tasks.chat)."""


def _fewshot_spec(value: int | FewShotSpec) -> FewShotSpec:
    return value if isinstance(value, FewShotSpec) else FewShotSpec(k=value)


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _task_error(problem: ConfigProblem) -> TaskError:
    return TaskError(str(problem))


@pydantic_dataclasses.dataclass(config=NULL_REFUSED_CONFIG)
class TaskSpec(NullRefused):
    """A task: its source, how rows map to prompts, few-shot, and generative judging."""

    name: Str | None = None
    """Task name in results; defaults to the built-in name or the file stem."""
    kind: KindSpelling | None = None
    """`multiple_choice` (or `mc`) or `generate` (or `generative`, `generate_until`); detected (rows with
    choices are multiple choice) when unset."""
    path: Str | None = None
    """Local data: .jsonl/.json/.csv/.parquet file, BIG-bench task.json, or a dataset folder."""
    hf: Str | None = None
    """Hugging Face dataset: hub id, or a local path (save_to_disk folder, data folder, data file)."""
    config: NameOrNumber | None = None
    """Hugging Face config name (e.g. ARC-Easy)."""
    split: NameOrNumber | None = None
    """Split to evaluate (default: the built-in's split, else `test`); ignored for single files."""
    bigbench: Str | None = None
    """Path to a BIG-bench task.json."""
    builtin: Str | None = None
    """Use a built-in task's preprocessing and format; with `path`/`hf`, over that data instead of the hub."""
    columns: dict[Str, Str] = field(default_factory=dict)
    """Canonical name -> source column (dots reach into nested columns), e.g. {question: stem}."""
    template: Str | None = None
    """Context template (format string or Jinja), rendered from the mapped row."""
    choices: Str | List[Str] | None = None
    """Column with the choice list, a template rendering to a list, or one template per choice."""
    answer: Str | None = None
    """Column or template giving the gold (index or choice text), or the answer(s) for generative tasks."""
    labels: Str | None = None
    """Column with choice labels, so a letter answer ("C") can be looked up."""
    target_delimiter: Str | None = None
    """Between context and choice (default " ")."""
    description: Str | None = None
    """Prompt prefix before few-shot examples (a template)."""
    category: Str | None = None
    """Column or template for each item's category."""
    fewshot: Annotated[Count | FewShotSpec, AfterValidator(_fewshot_spec)] = field(default_factory=FewShotSpec)
    """Few-shot settings; `fewshot: 5` is short for `fewshot: {k: 5}`."""
    fewshot_delimiter: Str | None = None
    """Between examples (default a blank line)."""
    fewshot_target: Str | None = None
    """Column or template for an example's answer text (default: the gold choice / first answer)."""
    limit: Annotated[ExactInt, Field(ge=1)] | None = None
    """Evaluate only the first N items."""
    max_new_tokens: ExactInt | None = None
    """Generative: token budget per item."""
    stop: Annotated[Str | List[Str], AfterValidator(_as_list)] | None = None
    """Generative: stop sequences (one string, or a list)."""
    answer_regex: Str | None = None
    """Generative: regex extracting the answer from the output (group 1 if any)."""
    regex_match: Literal["first", "last"] | None = None
    """Generative: use the first or the last regex match."""
    ignore_case: Bool | None = None
    """Generative: compare case-insensitively."""
    ignore_punctuation: Bool | None = None
    """Generative: drop punctuation before comparing."""
    strip_chars: Str | None = None
    """Generative: characters removed before comparing (e.g. "$,")."""
    base_dir: SkipJsonSchema[Path] = field(default_factory=Path.cwd, repr=False)
    """Relative paths start here (the spec file's folder); not a key of the file."""

    @field_validator("base_dir", mode="before")
    @classmethod
    def _not_from_input(cls, value: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get("forgetscope_input"):
            raise PydanticCustomError("unexpected_keyword_argument", "base_dir is set by the loader")
        return value

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], origin: str = "task spec", base_dir: Path | None = None, *,
                  file: ConfigFile | None = None) -> "TaskSpec":
        """Validate keys and types; errors name the file (and line) or `origin`, and the key."""
        spec = check_config(cls, data, _task_error, file=file, origin=origin)
        spec.base_dir = base_dir or Path.cwd()
        return spec

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TaskSpec":
        path = Path(path)
        file = read_config(path, _task_error, noun="task spec")
        spec = cls.from_dict(file.data, origin=str(path), base_dir=path.parent, file=file)
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

    def build(self, style: PromptStyle | None = None) -> Task:
        """Load the rows, render every item (in `style`: a chat template, a system instruction), and
        return the Task."""
        item_limit(self.limit, 0)  # a bad limit fails before any loading
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
        items = build_items(docs, fmt, where=loaded.rows.where, fewshot=pool, limit=item_limit(self.limit, len(docs)),
                            style=style)
        base_gen = builtin.generation if builtin and builtin.generation else GenerationConfig()
        notes = loaded.rows.notes + ([pool_note] if pool_note else [])
        if style is not None and not style.is_plain:
            notes.append(style.describe())
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
