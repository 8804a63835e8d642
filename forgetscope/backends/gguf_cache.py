"""Convert a GGUF checkpoint once, then load the converted copy.

transformers reads a GGUF file by parsing its metadata (the whole vocabulary
and merge list, field by field), mapping tensor names and de-quantising every
tensor, and it does this on every load: about 17 s for SmolLM2-135M on two
CPU cores, of which the de-quantisation proper is under 2 s (~7 s with the
file parsed once, see gguf_parsed_once). The result is an
ordinary float32 model and fast tokenizer, so forgetscope saves that result
(transformers' own conversion, `save_pretrained`) under the cache directory,
keyed by the GGUF file's content digest and the transformers version, and
later loads read plain safetensors in about a second. Scores are unchanged:
the saved tensors are the de-quantised tensors, bit for bit.

Disable with FORGETSCOPE_GGUF_CACHE=0 (the copy costs 4 bytes per parameter
of disk: ~0.55 GB for a 135M model).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..env import cache_dir, switched_on
from .digests import file_digests

_DONE = "forgetscope-gguf-complete"


def gguf_cache_enabled() -> bool:
    return switched_on("FORGETSCOPE_GGUF_CACHE")


def cache_root() -> Path:
    return cache_dir() / "gguf"


@contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """While transformers converts a GGUF file: parse the file once, build gguf's name table once.

    transformers' conversion constructs a `gguf.GGUFReader` three times for the same file (config,
    tokenizer, weights; each parses every metadata field: ~3 s for SmolLM2's 49k-token vocabulary
    here) and gguf's `TensorNameMap` once per tensor (397 times, ~2.5 s). Both are pure: a reader
    is a read-only view of a memory-mapped file, the name map a function of (architecture, layers).
    Inside this block the same path and mode give the same reader and the name map is memoised;
    both are restored after. Without gguf installed it does nothing (transformers then reports it).
    """
    try:
        import gguf
    except ImportError:
        yield
        return
    base_reader, base_name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    class SharedReader(base_reader):  # type: ignore[misc, valid-type]
        def __new__(cls, path, mode="r"):
            key = (os.path.realpath(os.fspath(path)), mode)
            if key not in readers:
                readers[key] = super().__new__(cls)
            return readers[key]

        def __init__(self, path, mode="r"):
            if not getattr(self, "_forgetscope_parsed", False):
                super().__init__(path, mode)
                self._forgetscope_parsed = True

    gguf.GGUFReader, gguf.get_tensor_name_map = SharedReader, functools.lru_cache(maxsize=None)(base_name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = base_reader, base_name_map


def converted_dir(gguf_path: Path, dtype: str) -> Path:
    """Where the copy of `gguf_path` converted to `dtype` lives (whether or not it exists yet)."""
    import transformers

    digest = file_digests([gguf_path])[0]
    return cache_root() / f"{digest}-{dtype}-transformers{transformers.__version__}"


def load_gguf_cached(
    gguf_path: Path,
    dtype: str,
    convert: Callable[[], tuple[Any, Any]],
    load: Callable[[Path], tuple[Any, Any]],
) -> tuple[Any, Any, bool]:
    """(model, tokenizer, from_cache). `convert()` loads the GGUF itself (slow);
    `load(dir)` loads a converted copy. A copy is used only when it is complete."""
    target = converted_dir(gguf_path, dtype)
    if (target / _DONE).is_file():
        model, tokenizer = load(target)
        return model, tokenizer, True
    model, tokenizer = convert()
    _save_copy(model, tokenizer, target)
    return model, tokenizer, False


def _save_dequantized(model: Any, folder: Path) -> None:
    """config.json + model.safetensors of an already de-quantised model.

    transformers refuses `save_pretrained` on a model loaded from GGUF (it
    still carries the GGUF quantizer), although its tensors are plain floats;
    so the config is written without its `quantization_config` and the tensors
    with safetensors directly (tied embeddings are stored once).
    """
    from safetensors.torch import save_model

    config = json.loads(model.config.to_json_string())
    config.pop("quantization_config", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)


def _save_copy(model: Any, tokenizer: Any, target: Path) -> None:
    """Write to a temporary sibling, then rename: a killed save never looks complete."""
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        _save_dequantized(model, tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _DONE).write_text("converted from GGUF by transformers; safe to delete\n")
        if target.exists() and not (target / _DONE).is_file():
            shutil.rmtree(target, ignore_errors=True)  # damaged copy from outside: replace it
        os.replace(tmp, target)
    except OSError as exc:  # full or read-only disk, or another process finished first
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not (target / _DONE).is_file():
            warnings.warn(f"could not cache the converted GGUF model in {target}: {exc}", stacklevel=3)
