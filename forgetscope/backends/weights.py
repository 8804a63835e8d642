"""Which weight files a model directory would be loaded from, and refusing pickle.

`pytorch_model.bin` (and `.pt`, `.pth`, `.ckpt`) files are Python pickles:
loading one can run any code its author put in it. transformers loads a
directory's `model.safetensors` when there is one, and falls back to the
pickle otherwise, silently. forgetscope refuses that fallback unless the user
opts in (`--allow-pickle`, `allow_pickle=True`), and even then the pickle is
read with `torch.load(weights_only=True)`, which rebuilds tensors and plain
containers only.
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import BackendError

#: what transformers loads first, when present (safetensors: no code, only tensors)
SAFE_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
ALLOW_PICKLE_HINT = ("convert it to safetensors (model.save_pretrained(dir, safe_serialization=True)), "
                     "or pass --allow-pickle to load it with torch.load(weights_only=True)")


def pickle_weight_files(folder: Path) -> list[str]:
    """The pickle files transformers would load the weights of `folder` from ([] when it would not)."""
    if not folder.is_dir():
        return []
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    explicit = config.get("transformers_weights") if isinstance(config, dict) else None
    if isinstance(explicit, str):  # config.json may name the weights file; transformers obeys it first
        return [] if explicit.endswith((".safetensors", ".safetensors.index.json")) else [explicit]
    if any((folder / name).is_file() for name in SAFE_WEIGHT_FILES):
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(PICKLE_SUFFIXES)
                  and not p.name.startswith("training_"))


def refuse_pickle(model: str | Path, allow_pickle: bool) -> None:
    """BackendError when `model` (a local directory) would be loaded from pickle and that is not allowed."""
    if allow_pickle:
        return
    files = pickle_weight_files(Path(model))
    if files:
        raise BackendError(
            f"{model}: the weights are only in pickle format ({', '.join(files[:3])}), which can run code when "
            f"loaded, so forgetscope does not load them; {ALLOW_PICKLE_HINT}"
        )


def transformers_weight_options(allow_pickle: bool) -> dict:
    """from_pretrained keywords: safetensors only, or (opted in) pickle read with weights_only=True."""
    return {"weights_only": True} if allow_pickle else {"use_safetensors": True}
