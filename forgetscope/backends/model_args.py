"""`--model-args key=value,...`: extra from_pretrained keywords, spelled as lm-evaluation-harness spells them.

Values are typed as lm-eval types them (`true`/`false`, `none`, integers,
floats, quoted strings stay strings). Keywords forgetscope sets itself are
refused here, pointing at the option that sets them, so a setting has one
spelling and enters the cache key once. `revision` is the checkpoint's
(resolved to a commit, which enters the fingerprint); every other keyword
may change the arithmetic (attn_implementation, rope_scaling, ...), so all of
them enter the cache key.
"""

from __future__ import annotations

from typing import Any

from .base import BackendError

#: keyword -> the option (or argument) that sets it
RESERVED = {
    "pretrained": "the CHECKPOINT argument",
    "dtype": "--dtype",
    "torch_dtype": "--dtype",
    "device": "--device",
    "device_map": "--device",
    "gguf_file": "--gguf-file",
    "trust_remote_code": "--trust-remote-code",
    "batch_size": "--batch-size",
    "max_length": "--max-length",
    "peft": "the CHECKPOINT argument (an adapter folder loads its base model and the adapter)",
    "use_safetensors": "--allow-pickle",
    "weights_only": "--allow-pickle",
}
#: keywords about where the files are, not how they are computed with
_LOCATION = ("revision",)
#: values that are names: kept as typed (a commit "1234567" or a tag "1.0" is no number)
_NAMES = ("revision", "subfolder")


def parse_value(text: str) -> Any:
    """One value, typed as lm-eval's `handle_arg_string` types it."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in ("'", '"'):
        return text[1:-1]
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if lower == "none":
        return None
    if text.lstrip("+-").isdigit() and text not in ("", "+", "-"):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_model_args(text: str | None) -> dict[str, Any]:
    """`key=value,key=value` -> dict (as lm-eval's simple_parse_args_string); checked by check_model_args."""
    if not text or not text.strip():
        return {}
    args: dict[str, Any] = {}
    for part in (p for p in text.strip().split(",") if p):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BackendError(f"--model-args {text!r}: {part!r} is not key=value; give key=value,key=value")
        args[key] = value.strip().strip("'\"") if key in _NAMES else parse_value(value)
    check_model_args(args)
    return args


def check_model_args(args: dict[str, Any]) -> None:
    """BackendError for a keyword forgetscope sets itself, naming the option to use instead."""
    for key in args:
        if key in RESERVED:
            raise BackendError(f"--model-args {key}=...: forgetscope sets {key} itself; use {RESERVED[key]}")
    revision = args.get("revision")
    if "revision" in args and (not isinstance(revision, str) or not revision):
        raise BackendError(f"--model-args revision={revision!r}: give a branch, tag or commit name")


def loading_model_args(args: dict[str, Any]) -> dict[str, Any]:
    """All but the checkpoint's location: what the backend passes to from_pretrained (the revision is already
    resolved into the folder loaded), and the model args that enter the cache key."""
    return {k: v for k, v in args.items() if k not in _LOCATION}
