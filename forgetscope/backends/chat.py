"""A model's chat template, from its tokenizer, chosen as lm-evaluation-harness chooses it.

Only the tokenizer is loaded (not the weights): the template is needed to build
the items, and their hashes decide what is cached, before any model is loaded.
The template is rendered by the tokenizer itself (transformers renders chat
templates in Jinja's immutable sandbox); nothing else of the input runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..tasks.base import TaskError, stable_hash
from ..tasks.chat import ChatTemplate
from .base import BackendError


def load_chat_template(model: str, name: str | None = None, *, gguf_file: str | None = None,
                       trust_remote_code: bool = False, revision: str | None = None, subfolder: str | None = None,
                       origin: str | None = None) -> ChatTemplate:
    """The chat template of `model`'s tokenizer: `name` of several, or its only (or `default`) one.

    The tokenizer is the one the hf backend loads with the model (hf.load_model_and_tokenizer): `model`
    may be `org/name@REVISION`; an adapter folder without a tokenizer of its own has its base model's;
    with model arg `subfolder`, the subfolder's tokenizer when it holds one. `origin` names the model
    in messages (default: `model`).
    """
    origin = origin or model
    tokenizer = _load_tokenizer(model, gguf_file, trust_remote_code, revision, subfolder, origin)
    source, chosen = select_template(tokenizer, name, origin)
    special = {key: str(value) for key, value in sorted((tokenizer.special_tokens_map or {}).items())}
    digest = stable_hash({"template": source, "special_tokens": special}, n=32)
    return ChatTemplate(render=_renderer(tokenizer, source, origin), name=chosen, digest=digest, origin=origin)


def select_template(tokenizer: Any, name: str | None, model: str) -> tuple[str, str]:
    """(template source, its name), as lm_eval.api.model.TemplateLM.chat_template resolves it.

    One template: it is used (a name other than `default` is refused: there is nothing to choose,
    and lm-eval's quiet fallback to the only template would hide a typo). Several (a dict): `name`, or
    `default` when no name is given. None: the tokenizer has no chat template.
    """
    templates = getattr(tokenizer, "chat_template", None)
    if not templates:
        raise TaskError(f"{model}: its tokenizer has no chat template; drop --apply-chat-template (the prompts are "
                        "then plain text), or use the model's chat variant, whose tokenizer_config.json (or "
                        "chat_template.jinja) holds one")
    if isinstance(templates, str):
        if name and name != "default":
            raise TaskError(f"{model}: its tokenizer has one chat template, not several to choose from; give "
                            f"--apply-chat-template without the name {name!r}")
        return templates, "default"
    names = sorted(templates)
    chosen = name or "default"
    if chosen not in templates:
        what = f"no chat template named {name!r}" if name else "several chat templates and none named 'default'"
        raise TaskError(f"{model}: its tokenizer has {what}; choose one with --apply-chat-template=NAME "
                        f"({', '.join(names)})")
    return templates[chosen], chosen


def _renderer(tokenizer: Any, source: str, model: str):
    """Render messages as lm_eval's HFLM.apply_chat_template does: with the generation prompt (or continuing
    the last message); a template that refuses the system role is retried without system messages."""
    import jinja2

    def render(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        def apply(chat: list[dict[str, str]]) -> str:
            return tokenizer.apply_chat_template(chat, chat_template=source, tokenize=False,
                                                 add_generation_prompt=add_generation_prompt,
                                                 continue_final_message=not add_generation_prompt)
        try:
            try:
                return apply(messages)
            except jinja2.exceptions.TemplateError:
                return apply([m for m in messages if m["role"] != "system"])
        except jinja2.exceptions.TemplateError as exc:  # raise_exception() in the template, a sandbox refusal
            raise TaskError(f"{model}: its chat template refused the prompt: {exc}") from None

    return render


def _load_tokenizer(model: str, gguf_file: str | None, trust_remote_code: bool, revision: str | None,
                    subfolder: str | None, origin: str) -> Any:
    """The tokenizer hf.load_model_and_tokenizer loads with `model`, found the way it finds it."""
    from .adapters import is_adapter_dir, read_adapter
    from .gguf_cache import converted_dir, gguf_cache_enabled, gguf_parsed_once
    from .hf import missing_tokenizer, split_gguf
    from .hub import is_hub_id, resolve_snapshot, split_revision

    if revision is None:
        model, revision = split_revision(model)
    if revision is not None or (is_hub_id(model) and not model.endswith(".gguf")):
        model = str(resolve_snapshot(model, revision).folder)
    model, gguf_file = split_gguf(model, gguf_file)
    if not gguf_file and is_adapter_dir(model):
        if missing_tokenizer(model) is not None:  # the base model's tokenizer; the adapter's weights are not read
            adapter = read_adapter(model, allow_pickle=True)
            return _load_tokenizer(adapter.base, None, trust_remote_code, adapter.base_revision, subfolder, origin)
        subfolder = None  # an adapter's own tokenizer (added tokens) is in its folder
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if subfolder and missing_tokenizer(Path(model, subfolder)) is None:
        kwargs["subfolder"] = subfolder
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if gguf_file:
            path = Path(model, gguf_file)
            converted = converted_dir(path, "float32") if path.is_file() and gguf_cache_enabled() else None
            if converted is not None and converted.is_dir() and any(converted.glob("tokenizer*")):
                return AutoTokenizer.from_pretrained(converted)  # the copy a scoring run saved: same tokenizer
            with gguf_parsed_once():
                return AutoTokenizer.from_pretrained(model, gguf_file=gguf_file, **kwargs)
        return AutoTokenizer.from_pretrained(model, **kwargs)
    except ImportError as exc:
        raise BackendError(f"cannot load the tokenizer of {origin!r}: {exc}") from None
    except (OSError, ValueError) as exc:
        reason = None if gguf_file else missing_tokenizer(model)
        raise BackendError(f"cannot load the tokenizer of {origin!r} (for its chat template): "
                           f"{reason or ' '.join(str(exc).split())[:300]}") from None


__all__ = ["load_chat_template", "select_template"]
