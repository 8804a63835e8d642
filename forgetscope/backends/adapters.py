"""PEFT adapters (LoRA and the like): a folder with `adapter_config.json` is its base model plus the adapter.

The base is the config's `base_model_name_or_path`: a local directory, a hub id,
or `hub id@REVISION` (the config's `revision` key names the base's revision
too). Adapter weights are read from `adapter_model.safetensors`; a pickle
(`adapter_model.bin`) is refused unless the user opts in (`--allow-pickle`),
and peft then reads it with torch.load(weights_only=True), the rule for models.
peft is an optional dependency, imported only when an adapter is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import BackendError
from .hub import split_revision
from .weights import ALLOW_PICKLE_HINT, refuse_pickle

ADAPTER_CONFIG = "adapter_config.json"
SAFE_ADAPTER_WEIGHTS = "adapter_model.safetensors"
PICKLE_ADAPTER_WEIGHTS = "adapter_model.bin"
PEFT_HINT = "pip install 'forgetscope[peft]'"


def is_adapter_dir(model: str | Path) -> bool:
    """True for a local folder holding an adapter_config.json (and so no full model of its own)."""
    path = Path(model).expanduser()
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file()


@dataclass(frozen=True)
class Adapter:
    """An adapter folder and the base model it applies to."""

    folder: Path
    base: str
    base_revision: str | None
    weights: Path


def read_adapter(folder: str | Path, allow_pickle: bool = False) -> Adapter:
    """The adapter in `folder`; BackendError (naming the file) when its config or weights are unusable."""
    folder = Path(folder).expanduser()
    config_path = folder / ADAPTER_CONFIG
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BackendError(f"{config_path}: cannot read it ({exc})") from None
    except ValueError as exc:
        raise BackendError(f"{config_path}: not valid JSON ({exc})") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base, str) or not base:
        raise BackendError(f"{config_path}: no base_model_name_or_path; set it to the base model's directory or "
                           "hub id")
    base, revision = split_revision(base)
    if revision is None and isinstance(config.get("revision"), str) and config["revision"]:
        revision = config["revision"]
    if not Path(base).expanduser().exists() and (folder / base).exists():
        base = str(folder / base)  # a base given relative to the adapter's folder
    if (folder / SAFE_ADAPTER_WEIGHTS).is_file():
        weights = folder / SAFE_ADAPTER_WEIGHTS
    elif (folder / PICKLE_ADAPTER_WEIGHTS).is_file():
        if not allow_pickle:
            raise BackendError(f"{folder}: the adapter's weights are only in pickle format ({PICKLE_ADAPTER_WEIGHTS}), "
                               f"which can run code when loaded, so forgetscope does not load them; "
                               f"{ALLOW_PICKLE_HINT}")
        weights = folder / PICKLE_ADAPTER_WEIGHTS
    else:
        raise BackendError(f"{folder}: an adapter folder ({ADAPTER_CONFIG}) without weights ({SAFE_ADAPTER_WEIGHTS})")
    return Adapter(folder, base, revision, weights)


def refuse_any_pickle(model: str | Path) -> None:
    """weights.refuse_pickle for a model directory or an adapter folder (its weights, then its base's)."""
    if is_adapter_dir(model):
        refuse_pickle(read_adapter(model, allow_pickle=False).base, False)
    else:
        refuse_pickle(model, False)


def attach_adapter(model: Any, adapter: Adapter, *, merge: bool = False) -> Any:
    """`model` with the adapter applied: its layers wrapped (merge=False) or the adapter's deltas added into
    its weights (merge=True). Either way a plain transformers model is returned, so scoring is unchanged."""
    try:
        from peft import PeftModel
    except ImportError:
        raise BackendError(f"{adapter.folder} is a PEFT adapter; loading it needs peft: {PEFT_HINT}") from None
    try:
        wrapped = PeftModel.from_pretrained(model, str(adapter.folder), is_trainable=False)
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        raise BackendError(f"{adapter.folder}: cannot apply the adapter to {adapter.base} "
                           f"({' '.join(str(exc).split())[:300]})") from None
    return wrapped.merge_and_unload() if merge else wrapped.get_base_model()
