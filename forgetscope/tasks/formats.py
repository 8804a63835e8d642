"""Prompt formats: how one data row becomes one rendered `Item`.

The defaults follow lm-evaluation-harness, so scores are comparable with
numbers people already know: a multiple-choice context is
`Question: {question}\\nAnswer:` and every choice is scored as the
continuation `" " + choice` (the space belongs to the continuation because
" Paris" and "Paris" are different tokens). Few-shot examples are rendered
with the same format and prepended, joined by a blank line.

Templates render from the row dict (after column mapping, so `{question}`
works whatever the source column is called; the raw columns stay available).
A template containing `{{` or `{%` is Jinja, anything else is a Python format
string (`{question}`, `{choices[0]}`). Literal braces therefore need Jinja.
Jinja templates come from task files, so they render in Jinja's immutable
sandbox: no access to Python internals (`__globals__`, `__class__`, ...), no
calls that change data; a template that tries is a task error.
"""

from __future__ import annotations

import ast
import json
import random
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Literal, Mapping, Sequence

from forgetscope.tasks.base import Item, Kind, TaskError, generative_item, multiple_choice_item
from forgetscope.tasks.chat import PromptStyle, Shot, render_prompt

DEFAULT_MC_TEMPLATE = "Question: {question}\nAnswer:"
DEFAULT_GEN_TEMPLATE = "{prompt}"
DEFAULT_FEWSHOT_SEED = 1234
MISSING = object()


# --------------------------------------------------------------------------- templates


def is_jinja(template: str) -> bool:
    """Jinja if it uses `{{ }}` or `{% %}`; otherwise a Python format string."""
    return "{{" in template or "{%" in template


def is_template(text: str) -> bool:
    """Whether a field spec is a template (has braces) rather than a column name."""
    return "{" in text


@lru_cache(maxsize=256)
def _jinja(template: str) -> Any:
    import jinja2  # lazy: most runs only use format strings
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise TaskError(f"Jinja template {template!r} does not parse: {exc.message}") from None


def render_template(template: str, row: Mapping[str, Any]) -> str:
    """Render a format-string or Jinja template from a row dict."""
    if is_jinja(template):
        import jinja2
        from jinja2.exceptions import SecurityError

        try:
            return _jinja(template).render(**row)
        except (SecurityError, OverflowError) as exc:  # OverflowError: the sandbox's range() limit
            raise TaskError(
                f"template {template!r} is not allowed: {str(exc).rstrip('.')}; a template may only read "
                "the row's fields (Jinja sandbox)"
            ) from None
        except jinja2.UndefinedError as exc:
            raise TaskError(
                f"template {template!r}: {exc.message} (row has columns: {_columns(row)}); "
                "fix the template or map the column with `columns:` in a spec file"
            ) from None
    try:
        return template.format_map(row)
    except KeyError as exc:
        raise TaskError(
            f"template {template!r} uses {{{shown_name(exc.args[0])}}} but the row has no such column "
            f"(columns: {_columns(row)}); fix the template or map the column with `columns:`"
        ) from None
    except (IndexError, AttributeError, ValueError, TypeError) as exc:
        raise TaskError(f"template {template!r} cannot be rendered: {exc}; check the field names") from None


def _columns(row: Mapping[str, Any]) -> str:
    return ", ".join(shown_name(k) for k in row) or "none"


def shown_name(name: Any) -> str:
    """A column name as messages show it: as is, or quoted and escaped when it holds a line break or tab."""
    text = str(name)
    return text if text.isprintable() else repr(text)


def get_field(row: Mapping[str, Any], path: str, default: Any = MISSING) -> Any:
    """Look up a column; dots reach into nested dicts (`choices.text` in ARC)."""
    if path in row:
        return row[path]
    value: Any = row
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return default
    return value


def resolve(spec: str | Sequence[str], row: Mapping[str, Any], what: str) -> Any:
    """A column value, a rendered template, or (for a list spec) a list of rendered templates."""
    if not isinstance(spec, str):
        return [render_template(s, row) if is_template(s) else get_field(row, s, s) for s in spec]
    value = get_field(row, spec)
    if value is not MISSING:
        return value
    if is_template(spec):
        return render_template(spec, row)
    raise TaskError(
        f"no column {spec!r} for the {what} (columns: {_columns(row)}); rename the column or map it, "
        f"e.g. `columns: {{{what}: your_column}}` in a spec file"
    )


# --------------------------------------------------------------------------- choices and gold


def parse_choices(value: Any) -> list[str]:
    """Choices as a list of strings; a string holding a JSON/Python list (CSV cells) is parsed."""
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            raise TaskError(f"choices must be a list, got the string {value[:60]!r}; write a JSON list like [\"a\", \"b\"]")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise TaskError(f"choices {value[:60]!r} is not a valid JSON list; write it like [\"a\", \"b\"]") from None
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise TaskError(f"choices must be a non-empty list, got {_short(value)}")
    for index, choice in enumerate(value):
        # str() would make null the choice "None" and a list its Python repr: a text nobody wrote
        if choice is None or isinstance(choice, (list, tuple, dict)):
            raise TaskError(f"choice {index} is {_short(choice)}; every choice must be a text (or a number)")
    return [str(v) for v in value]


def _short(value: Any) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def resolve_gold(value: Any, choices: Sequence[str], labels: Sequence[str] | None = None) -> tuple[int, ...]:
    """Gold choice indices from an answer value.

    Rules, in order: an int is an index (a boolean is refused); a string equal
    to a choice's text is that choice; else equal to a label (when `labels` are
    given, e.g. ARC's "A".."D" or "1".."4"); else a single capital letter is A=0,
    B=1, ...; else a string of digits is an index. A list gives several golds.
    """
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        if not value:
            raise TaskError("answer is an empty list; give at least one correct choice")
        golds: list[int] = []
        for v in value:
            golds.extend(g for g in resolve_gold(v, choices, labels) if g not in golds)
        return tuple(golds)
    n = len(choices)
    if isinstance(value, bool):  # JSON true is not the index 1: a yes/no answer needs choices to point at
        raise TaskError(f"answer is {str(value).lower()} (a boolean), not a choice; give the 0-based index of the "
                        "correct choice or its text")
    elif isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        index = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if value in choices or text in choices:
            return (list(choices).index(value if value in choices else text),)
        if labels is not None and text in labels:
            index = list(labels).index(text)
        elif labels is None and len(text) == 1 and "A" <= text <= "Z":
            index = ord(text) - ord("A")
        elif re.fullmatch(r"-?[0-9]{1,18}", text):  # longer is out of range anyway (and int() refuses 4300+ digits)
            index = int(text)
        else:
            raise TaskError(
                f"answer {value!r} is not one of the choices {list(choices)}"
                + (f" nor a label {list(labels)}" if labels is not None else "")
                + "; give the choice text or its 0-based index"
            )
    else:
        raise TaskError(f"answer {value!r} must be a choice index or the choice text")
    if not 0 <= index < n:
        raise TaskError(
            f"answer index {index} is out of range for {n} choices; use 0..{n - 1} (0-based) or the choice text"
        )
    return (index,)


def parse_answers(value: Any) -> tuple[str, ...]:
    """Accepted answers of a generative item: a string or a list of strings."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        answers = tuple(str(v) for v in value if v is not None and str(v) != "")
    elif value is None or value == "":
        answers = ()
    else:
        answers = (str(value),)
    if not answers:
        raise TaskError("no answer given; set `answer` (a string) or `answers` (a list)")
    return answers


# --------------------------------------------------------------------------- the format


@dataclass(frozen=True)
class PromptFormat:
    """How a (column-mapped) row is rendered into an Item."""

    kind: Kind = "multiple_choice"
    template: str | None = None
    """Context template; None means `Question: {question}\\nAnswer:` (MC) or `{prompt}` (generative)."""
    choices: str | tuple[str, ...] = "choices"
    """Column (dotted paths allowed) holding the list of choices, a template rendering to a list
    literal, or a list of templates (one per choice)."""
    answer: str | None = None
    """Column or template giving the gold; None means `answer` (MC) or `answers`/`answer` (generative)."""
    labels: str | None = None
    """Column holding choice labels (ARC `choices.label`), so an answer "C" can be looked up."""
    target_delimiter: str = " "
    """Put between context and choice: the continuation scored is `target_delimiter + choice`."""
    description: str = ""
    """Prefix before the few-shot examples (a template, so it may vary per row, e.g. MMLU's subject)."""
    fewshot_delimiter: str = "\n\n"
    """Between few-shot examples, and between the last example and the item."""
    fewshot_target: str | None = None
    """Column or template for a few-shot example's answer text (GSM8K shows the worked solution)."""
    id_field: str = "id"
    """Column with a stable item id; rows without it get their 0-based row index."""
    category: str = "category"
    """Column or template for the item's category (empty if the row has none)."""

    def item_id(self, row: Mapping[str, Any], index: int) -> str:
        value = get_field(row, self.id_field, None)
        return str(index) if value is None or value == "" else str(value)

    def context(self, row: Mapping[str, Any]) -> str:
        default = DEFAULT_MC_TEMPLATE if self.kind == "multiple_choice" else DEFAULT_GEN_TEMPLATE
        return render_template(self.template or default, row)

    def choice_list(self, row: Mapping[str, Any]) -> list[str]:
        return parse_choices(resolve(self.choices, row, "choices"))

    def gold(self, row: Mapping[str, Any], choices: Sequence[str]) -> tuple[int, ...]:
        labels = None
        if self.labels:
            labels = [str(x) for x in parse_choices(resolve(self.labels, row, "labels"))]
        return resolve_gold(resolve(self.answer or "answer", row, "answer"), choices, labels)

    def answers(self, row: Mapping[str, Any]) -> tuple[str, ...]:
        spec = self.answer or ("answers" if get_field(row, "answers", None) is not None else "answer")
        return parse_answers(resolve(spec, row, "answer"))

    def requests(self, row: Mapping[str, Any], choices: Sequence[str]) -> tuple[list[str], list[str] | None]:
        """(contexts, continuations) of a MC item; override for partial scoring (Winogrande)."""
        return [self.context(row)], None

    def category_of(self, row: Mapping[str, Any]) -> str:
        value = get_field(row, self.category, None)
        if value is None and is_template(self.category):
            value = render_template(self.category, row)
        return "" if value is None else str(value)

    def item(self, row: Mapping[str, Any], index: int) -> Item:
        """The zero-shot item for one row (no description, no examples)."""
        item_id = self.item_id(row, index)
        category = self.category_of(row)
        if self.kind == "generate":
            return generative_item(item_id, self.context(row), self.answers(row), category=category)
        choices = self.choice_list(row)
        gold = self.gold(row, choices)
        contexts, continuations = self.requests(row, choices)
        return multiple_choice_item(
            item_id,
            contexts,
            choices,
            gold,
            target_delimiter=self.target_delimiter,
            continuations=continuations,
            category=category,
        )

    def shot(self, row: Mapping[str, Any], index: int) -> Shot:
        """The row as a solved example: its question, the delimiter, and the gold answer (joined, the
        example's plain text; a chat shows the question and the answer as two turns)."""
        item = self.item(row, index)
        if self.fewshot_target:
            target = str(resolve(self.fewshot_target, row, "fewshot_target"))
            gold = item.gold[0] if item.gold else 0
            context = item.contexts[gold] if len(item.contexts) > 1 else item.context
            return Shot(context, self.target_delimiter, target)
        if item.kind == "generate":
            return Shot(item.context, self.target_delimiter, item.answers[0])
        context, continuation = item.requests()[item.gold[0]]
        delimiter = self.target_delimiter if continuation.startswith(self.target_delimiter) else ""
        return Shot(context, delimiter, continuation[len(delimiter):])


# --------------------------------------------------------------------------- few-shot and assembly


@dataclass
class FewShotPool:
    """Rows the few-shot examples are drawn from.

    `same_source` means the pool is the evaluated rows themselves, so an item
    never sees itself as an example (pool index == item row index is skipped).
    """

    k: int
    rows: Sequence[Mapping[str, Any]]
    where: Callable[[int], str]
    same_source: bool
    seed: int = DEFAULT_FEWSHOT_SEED
    sampler: Literal["random", "first_n"] = "random"
    """`first_n` takes the first k rows in order (lm-eval's MMLU), ignoring the seed."""
    categories: Sequence[str] | None = None
    """Category of each pool row; when given, examples come from the item's own category."""
    _groups: dict[str, list[int]] | None = field(default=None, init=False, repr=False)

    def candidates(self, own_index: int, category: str) -> Sequence[int]:
        if self.categories is None:
            candidates: Sequence[int] = range(len(self.rows))
        else:
            if self._groups is None:
                self._groups = {}
                for j, name in enumerate(self.categories):
                    self._groups.setdefault(name, []).append(j)
            candidates = self._groups.get(category, [])
        if not self.same_source:
            return candidates
        if isinstance(candidates, range):  # cheap for large pools: a range without own_index
            return _RangeWithout(len(self.rows), own_index)
        return [j for j in candidates if j != own_index]

    def indices(self, item_id: str, own_index: int, category: str = "") -> list[int]:
        """k pool indices, a pure function of (seed, item id[, category]).

        Seeding per item (not one generator for the whole run) keeps an item's
        examples identical when --limit or the item order changes, so its
        item_hash stays comparable across runs.
        """
        candidates = self.candidates(own_index, category)
        if self.k > len(candidates):
            raise TaskError(
                f"{self.k}-shot needs {self.k} example rows but the few-shot source has {len(candidates)}"
                + (f" in category {category!r}" if self.categories is not None else "")
                + (" (excluding the item itself)" if self.same_source else "")
                + "; lower num_fewshot or give a larger few-shot split/file"
            )
        if self.sampler == "first_n":
            return [candidates[j] for j in range(self.k)]
        return random.Random(f"{self.seed}:{item_id}").sample(candidates, self.k)


class _RangeWithout(Sequence[int]):
    """0..n-1 without one index, without building the list (pools can be large)."""

    def __init__(self, n: int, skip: int) -> None:
        self.n, self.skip = n, skip

    def __len__(self) -> int:
        return self.n - 1 if 0 <= self.skip < self.n else self.n

    def __getitem__(self, j):  # type: ignore[override]
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        if j < 0:
            j += len(self)
        if not 0 <= j < len(self):
            raise IndexError(j)
        return j + 1 if 0 <= self.skip <= j else j


def build_items(
    rows: Sequence[Mapping[str, Any]],
    fmt: PromptFormat,
    *,
    where: Callable[[int], str],
    fewshot: FewShotPool | None = None,
    limit: int | None = None,
    style: PromptStyle | None = None,
) -> list[Item]:
    """Render rows into items: description, then k examples, then the item's own context.

    With a `style` (a chat template, a system instruction), the same parts are
    laid out as lm-evaluation-harness lays them out (tasks.chat); under a chat
    template a choice is scored with no target delimiter before it, as there.
    Every error is re-raised naming the row (`where(i)`), so people can find it.
    """
    shots: dict[int, Shot] = {}
    style = style or PromptStyle()  # plain text: description, examples, then the item's context
    item_fmt = replace(fmt, target_delimiter="") if style.chat is not None else fmt

    def shot(j: int) -> Shot:
        if j not in shots:
            assert fewshot is not None
            try:
                shots[j] = fmt.shot(fewshot.rows[j], j)
            except TaskError as exc:
                raise TaskError(f"{fewshot.where(j)} (few-shot example): {exc}") from None
        return shots[j]

    items: list[Item] = []
    seen: dict[str, int] = {}
    n = len(rows) if limit is None else min(limit, len(rows))
    for i in range(n):
        row = rows[i]
        try:
            item = item_fmt.item(row, i)
            description = render_template(fmt.description, row) if fmt.description else ""
        except TaskError as exc:
            raise TaskError(f"{where(i)}: {exc}") from None
        examples = ([shot(j) for j in fewshot.indices(item.item_id, i, item.category)]
                    if fewshot is not None and fewshot.k > 0 else [])
        if item.item_id in seen:
            raise TaskError(
                f"{where(i)}: item id {item.item_id!r} already used by {where(seen[item.item_id])}; "
                "ids must be unique (fix the id column, or drop it to use row numbers)"
            )
        seen[item.item_id] = i
        contexts = tuple(render_prompt(style, description, examples, context, fmt.fewshot_delimiter)
                         for context in item.contexts)
        items.append(item if contexts == item.contexts else replace(item, contexts=contexts, item_hash=""))
    return items
