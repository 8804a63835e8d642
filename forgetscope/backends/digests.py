"""File content digests, remembered by (path, size, mtime) in a small JSON cache.

Model fingerprints (engine.fingerprint), the GGUF conversion cache
(gguf_cache) and the training runner's data fingerprints hash the same large
files; each file is read once and its digest found again in the cache until
the file changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..env import cache_dir


def _cache_path() -> Path:
    return cache_dir() / "file_digests.json"


def load_digest_cache() -> dict:
    """The remembered digests (empty when the cache file is missing or unreadable)."""
    try:
        return json.loads(_cache_path().read_text())
    except (OSError, ValueError):
        return {}


def save_digest_cache(cache: dict) -> None:
    """Write the digests back (atomically; a read-only cache directory only costs time)."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs time


def file_digests(paths: list[Path]) -> list[str]:
    """file_digest of each path, through the on-disk cache (read once, written back only when it grew)."""
    cache = load_digest_cache()
    size_before = len(cache)
    digests = [file_digest(path, cache) for path in paths]
    if len(cache) != size_before:
        save_digest_cache(cache)
    return digests


def file_digest(path: Path, cache: dict | None = None) -> str:
    """128-bit BLAKE2b of the file's bytes; looked up in and added to `cache` by (path, size, mtime)."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if cache is not None and key in cache:
        return cache[key]
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    value = digest.hexdigest()
    if cache is not None:
        cache[key] = value
    return value
