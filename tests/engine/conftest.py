"""Fixtures of the engine tests: a local Hugging Face cache with two revisions of a tiny model."""

from __future__ import annotations

import shutil

import pytest

COMMIT_A = "a" * 40  # main, step1: the seed-0 tiny llama
COMMIT_B = "b" * 40  # step2: the seed-1 tiny llama (different weights, same tokenizer)


@pytest.fixture()
def hub(tmp_path, monkeypatch, tiny_llama_dir, tiny_llama_dir_b):
    """A local HF cache with org/tiny at revisions main, step1 (commit A) and step2 (commit B); hub offline."""
    from huggingface_hub import constants

    root = tmp_path / "hub"
    repo = root / "models--org--tiny"
    for commit, source in ((COMMIT_A, tiny_llama_dir), (COMMIT_B, tiny_llama_dir_b)):
        shutil.copytree(source, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    for ref, commit in (("main", COMMIT_A), ("step1", COMMIT_A), ("step2", COMMIT_B)):
        (repo / "refs" / ref).write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo
