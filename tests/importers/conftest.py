"""Fixtures of the importer tests: the committed real logs (see data/make_fixtures.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
LMEVAL = DATA / "lmeval"
LIGHTEVAL = DATA / "lighteval"


def samples_file(model: str, task: str) -> Path:
    return next((LMEVAL / model).glob(f"samples_{task}_*.jsonl"))


def read_samples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def lmeval_copy(tmp_path: Path) -> Path:
    """A writable copy of model_a's lm-eval output, for tests that damage it."""
    target = tmp_path / "lmeval_a"
    shutil.copytree(LMEVAL / "model_a", target)
    return target
