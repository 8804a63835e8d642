"""NAME=PATH labels of checkpoints on the command line, split only where no path can be misread."""

from __future__ import annotations

import pytest

from forgetscope.cli.labels import checkpoint_labels, split_label


def test_name_equals_existing_path(tmp_path):
    model = tmp_path / "runs" / "a" / "ckpt"
    model.mkdir(parents=True)
    assert split_label(f"base={model}") == ("base", str(model))


def test_name_equals_hub_id():
    assert split_label("tuned=HuggingFaceTB/SmolLM2-135M") == ("tuned", "HuggingFaceTB/SmolLM2-135M")


@pytest.mark.parametrize("arg", [
    "runs/lr=0.1/ckpt",          # '=' inside a path: the left side is no plain name
    "base=nowhere",              # the right side neither exists nor is a hub id
    "base=",                     # nothing after '='
    "=runs/a",                   # nothing before '='
    "my model=org/name",         # a space is no plain name
    "plain/path",
])
def test_not_split(arg):
    assert split_label(arg) == (None, arg)


def test_an_existing_path_with_equals_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lr=0.1").mkdir()
    (tmp_path / "0.1").mkdir()
    assert split_label("lr=0.1") == (None, "lr=0.1")  # the whole argument exists: never split


def test_labels_default_to_short_paths(tmp_path):
    a, b = tmp_path / "run-a" / "step-350", tmp_path / "run-b" / "step-350"
    c = tmp_path / "x" / "final"
    for path in (a, b, c):
        path.mkdir(parents=True)
    labels, paths = checkpoint_labels([str(a), f"tuned={b}"])
    assert labels == ["run-a/step-350", "tuned"] and paths == [str(a), str(b)]
    assert checkpoint_labels([str(a), str(c)])[0] == ["run-a/step-350", "x/final"]  # step-N keeps its stage
    assert checkpoint_labels([str(tmp_path / "x" / "final"), str(tmp_path / "y" / "other")])[0] == ["final", "other"]
