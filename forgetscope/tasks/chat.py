"""Chat templates and system instructions, with lm-evaluation-harness's semantics.

`--apply-chat-template`, `--system-instruction` and `--fewshot-as-multiturn`
mean what lm-eval's `--apply_chat_template`, `--system_instruction` and
`--fewshot_as_multiturn` mean (lm_eval 0.4.13, `ConfigurableTask.fewshot_context`
and `construct_requests`): a prompt is a list of messages

    system     the system instruction and the task's description, joined by the
               few-shot delimiter unless one side has whitespace at the join
    user       a few-shot example's question      } once per example
    assistant  its answer                          }
    user       the item's question

and, without a chat template, the prompt is their concatenation, each message
followed by its delimiter (the target delimiter after an example's question, the
few-shot delimiter after its answer, nothing after the system message or the
item). With a chat template the messages go to the tokenizer's template with the
generation prompt (`<|im_start|>assistant\\n`); without `fewshot_as_multiturn`
they are first collapsed into one user message (their concatenation, as
above). A multiple-choice choice is then scored as it is, with no target
delimiter before it: the assistant's turn starts with the answer.

The rendered prompt is the item's context, so `item_hash` covers the template,
the system instruction and the turn layout: templated and plain records of the
same items never pair. The template itself is rendered by the tokenizer
(transformers' sandboxed Jinja); this module only builds the messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

ChatRenderer = Callable[..., str]
"""messages (list of {"role", "content"} dicts), add_generation_prompt=True -> the rendered prompt."""


@dataclass(frozen=True)
class ChatTemplate:
    """A tokenizer's chat template, ready to render messages."""

    render: ChatRenderer
    """Called as render(messages, add_generation_prompt=True), like lm-eval's `lm.apply_chat_template`."""
    name: str
    """The template's name (`default` for a tokenizer with one template)."""
    digest: str
    """Hash of the template's source and the special tokens it can use: equal digests render alike."""
    origin: str = ""
    """Where it came from (the model), for messages."""

    def describe(self) -> str:
        return f"chat template {self.name} ({self.digest[:12]})"


@dataclass(frozen=True)
class PromptStyle:
    """How an item's parts become its context: plain text or a chat, with or without a system instruction."""

    chat: ChatTemplate | None = None
    system_instruction: str | None = None
    fewshot_as_multiturn: bool = False
    """Few-shot examples as separate user/assistant turns (only with a chat template)."""

    def __post_init__(self) -> None:
        if self.fewshot_as_multiturn and self.chat is None:
            raise ValueError("fewshot_as_multiturn needs a chat template")

    @property
    def is_plain(self) -> bool:
        """No template and no system instruction: prompts are rendered exactly as without a style."""
        return self.chat is None and self.system_instruction is None

    def describe(self) -> str:
        parts = [self.chat.describe()] if self.chat else []
        if self.system_instruction is not None:
            parts.append(f"system instruction {self.system_instruction[:40]!r}")
        if self.chat is not None:
            parts.append("few-shot as multi-turn" if self.fewshot_as_multiturn else "few-shot in one user turn")
        return ", ".join(parts)


@dataclass(frozen=True)
class Shot:
    """A solved few-shot example: question + delimiter + answer is its plain text."""

    question: str
    delimiter: str
    answer: str


@dataclass
class _Message:
    role: str
    content: str
    delimiter: str = ""

    def text(self) -> str:
        return self.content + self.delimiter


def maybe_delimit(prefix: str | None, suffix: str | None, delimiter: str = " ") -> str:
    """prefix + delimiter + suffix, without the delimiter when either side has whitespace at the join
    (lm_eval.api.utils.maybe_delimit)."""
    if not prefix:
        return suffix or ""
    if not suffix:
        return prefix
    if prefix[-1].isspace() or suffix[0].isspace():
        return prefix + suffix
    return prefix + delimiter + suffix


def messages(style: PromptStyle, description: str, shots: Sequence[Shot], question: str,
             fewshot_delimiter: str) -> list[_Message]:
    """The prompt's messages (ConfigurableTask.fewshot_context / build_qa_turn)."""
    found = []
    system = maybe_delimit(style.system_instruction, description, fewshot_delimiter)
    if system:
        found.append(_Message("system", system))
    for shot in shots:
        found.append(_Message("user", shot.question, shot.delimiter))
        found.append(_Message("assistant", shot.answer, fewshot_delimiter))
    found.append(_Message("user", question))
    return found


def render_prompt(style: PromptStyle, description: str, shots: Sequence[Shot], question: str,
                  fewshot_delimiter: str) -> str:
    """The context of one item in `style`."""
    found = messages(style, description, shots, question, fewshot_delimiter)
    if style.chat is None:
        return "".join(m.text() for m in found)
    chat = ([{"role": m.role, "content": m.content} for m in found] if style.fewshot_as_multiturn
            else _single_turn(found))
    return style.chat.render(chat, add_generation_prompt=True)


def _single_turn(found: list[_Message]) -> list[dict[str, str]]:
    """The system message, then everything else as one user message (lm_eval's multiturn_to_singleturn;
    the last message is always the item's question here, so no assistant message follows)."""
    system = found[0] if found[0].role == "system" else None
    rest = found[1:] if system else found
    user = "".join(m.text() for m in rest[:-1]) + rest[-1].content
    chat = [{"role": "user", "content": user}]
    return ([{"role": "system", "content": system.content}] if system else []) + chat


__all__ = ["ChatRenderer", "ChatTemplate", "PromptStyle", "Shot", "maybe_delimit", "render_prompt"]
