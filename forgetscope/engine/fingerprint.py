"""Model fingerprints: a content hash of config, tokenizer and weight files.

The fingerprint, not the path, identifies a checkpoint in the cache: copying
a checkpoint elsewhere reuses its results, and overwriting a directory with
new weights never reuses stale ones. Hashing a large file takes time, so each
file's digest is remembered by (path, size, mtime) in a small JSON cache
(backends.digests).

A hub checkpoint (`org/name`, `org/name@REVISION`) is resolved to one commit
(backends.hub) and that commit enters the fingerprint too: a branch that moved
is a new model, a branch and its commit hash are one. A PEFT adapter folder is
fingerprinted as its base model's fingerprint plus the adapter's files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..backends.adapters import ADAPTER_CONFIG, is_adapter_dir, read_adapter
from ..backends.base import BackendError
from ..backends.digests import file_digests
from ..backends.hf import split_gguf
from ..backends.hub import is_hub_id, resolve_snapshot

_MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt", "tokenizer.model", "vocab.txt", "added_tokens.json", "chat_template.jinja",
)


class FingerprintError(ValueError):
    """The model files could not be found or read."""


@dataclass(frozen=True)
class ModelSource:
    """Where a checkpoint's files are on local disk; `commit` is set for a hub checkpoint."""

    folder: Path
    commit: str | None = None


def resolve_model(model: str, revision: str | None = None) -> ModelSource:
    """The local folder of `model`: itself if local, else its hub snapshot at `revision` (resolved to a commit)."""
    path = Path(model).expanduser()
    if path.exists() and revision is None:
        return ModelSource(path)
    if not is_hub_id(model) and revision is None:
        raise FingerprintError(f"model path {model!r} does not exist; check the path")
    try:
        snapshot = resolve_snapshot(model, revision)
    except BackendError as exc:
        raise FingerprintError(str(exc)) from None
    return ModelSource(snapshot.folder, snapshot.commit)


def _folder_files(root: Path, gguf_file: str | None, subfolder: str | None) -> list[Path]:
    folder = root / subfolder if subfolder else root
    if subfolder and not folder.is_dir():
        raise FingerprintError(f"{root}: no subfolder {subfolder!r} (model arg subfolder)")
    if gguf_file:
        target = folder / gguf_file
        if not target.is_file():
            raise FingerprintError(f"GGUF file {target} not found")
        files = [target]
    else:
        files = [folder / "config.json"] if (folder / "config.json").is_file() else []
        files += sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _MODEL_FILE_SUFFIXES
                        and not p.name.startswith("training_"))
        if not any(p.suffix in _MODEL_FILE_SUFFIXES for p in files):
            raise FingerprintError(
                f"{folder}: no weight files (*.safetensors, *.bin); is this a model directory?"
            )
    tokenizer_dirs = [folder, root] if subfolder else [folder]
    seen = {p.name for p in files}
    for where in tokenizer_dirs:
        for name in _TOKENIZER_FILES:
            if name not in seen and (where / name).is_file():
                files.append(where / name)
                seen.add(name)
    return files


def model_fingerprint(model: str, gguf_file: str | None = None, *, revision: str | None = None,
                      subfolder: str | None = None) -> str:
    """32-hex-digit hash over the model's config, weight and tokenizer file contents (and its hub commit)."""
    folder_str, gguf_file = split_gguf(model, gguf_file)
    if not gguf_file and revision is None and is_adapter_dir(folder_str):
        return _adapter_fingerprint(Path(folder_str).expanduser())
    return source_fingerprint(resolve_model(folder_str, revision), gguf_file, subfolder)


def source_fingerprint(source: ModelSource, gguf_file: str | None = None, subfolder: str | None = None) -> str:
    """model_fingerprint of a model already resolved to its local folder (and hub commit)."""
    # the commit only for a hub model: local models keep the fingerprints they always had
    header = f"commit:{source.commit}" if source.commit else None
    return _hash_files(_folder_files(source.folder, gguf_file, subfolder), header)


def _hash_files(files: list[Path], header: str | None) -> str:
    """32 hex digits over `header`, then each file's name and content digest, in order."""
    digest = hashlib.blake2b(digest_size=16)
    if header is not None:
        digest.update(header.encode())
    for path, content in zip(files, file_digests(files)):
        digest.update(path.name.encode())
        digest.update(content.encode())
    return digest.hexdigest()


def _adapter_fingerprint(folder: Path) -> str:
    """The base model's fingerprint, then the adapter's config, weights and tokenizer files."""
    try:
        adapter = read_adapter(folder, allow_pickle=True)  # fingerprinting reads bytes, never unpickles
    except BackendError as exc:
        raise FingerprintError(str(exc)) from None
    if is_adapter_dir(adapter.base):
        raise FingerprintError(f"{folder / ADAPTER_CONFIG}: its base {adapter.base} is an adapter too; point "
                               "base_model_name_or_path at the full base model")
    base = model_fingerprint(adapter.base, revision=adapter.base_revision)
    files = [folder / ADAPTER_CONFIG, adapter.weights]
    files += [folder / name for name in _TOKENIZER_FILES if (folder / name).is_file()]
    return _hash_files(files, f"base:{base}")
