"""Pickle weights (pytorch_model.bin) are refused unless --allow-pickle, and then read with weights_only=True."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forgetscope.backends.base import BackendError
from forgetscope.backends.hf import load_model_and_tokenizer
from forgetscope.cli import app
from forgetscope.engine.evaluate import EvalSettings, evaluate

from ..helpers import mc_task

runner = CliRunner()


class Payload:
    """Unpickling this creates a directory: proof that a file was unpickled with code allowed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


@pytest.fixture(scope="module")
def pickle_model_dir(tmp_path_factory, tiny_llama_dir: Path) -> Path:
    """The tiny Llama with its weights only in pytorch_model.bin (torch.save of the state dict, what
    save_pretrained(safe_serialization=False) wrote before transformers 5 always wrote safetensors)."""
    import torch
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("pickle_llama")
    for name in os.listdir(tiny_llama_dir):
        if not name.endswith(".safetensors"):
            shutil.copy(tiny_llama_dir / name, out / name)
    torch.save(AutoModelForCausalLM.from_pretrained(tiny_llama_dir).state_dict(), out / "pytorch_model.bin")
    assert (out / "pytorch_model.bin").is_file() and not list(out.glob("*.safetensors"))
    return out


@pytest.fixture()
def items_file(tmp_path: Path) -> Path:
    path = tmp_path / "quiz.jsonl"
    rows = [{"question": f"Which one is {i}?", "choices": ["river", "stone", "cloud"], "answer": i % 3}
            for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_eval_refuses_pickle_weights_and_names_the_flag(pickle_model_dir: Path, items_file: Path,
                                                        tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(pickle_model_dir), "--task", str(items_file),
                                 "--output", str(tmp_path / "res")])
    line = _one_error_line(result)
    assert "pytorch_model.bin" in line and "--allow-pickle" in line and str(pickle_model_dir) in line
    assert not list((tmp_path / "res").rglob("*.parquet"))


def test_compare_refuses_pickle_weights(pickle_model_dir: Path, tiny_llama_dir: Path, items_file: Path,
                                        tmp_path: Path) -> None:
    result = runner.invoke(app, ["compare", str(tiny_llama_dir), str(pickle_model_dir), "--task", str(items_file),
                                 "--output", str(tmp_path / "res")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]  # (after checkpoint A's progress: its rows are kept)
    assert last.startswith("error: ") and "--allow-pickle" in last
    assert len(list((tmp_path / "res").rglob("records.parquet"))) == 1


def test_allow_pickle_scores_like_the_safetensors_copy_and_shares_its_cache(
        pickle_model_dir: Path, tiny_llama_dir: Path, items_file: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(pickle_model_dir), "--task", str(items_file), "--allow-pickle",
                                 "--output", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    task = mc_task(8)
    plain = evaluate(str(tiny_llama_dir), [task], tmp_path / "a")
    pickled = evaluate(str(pickle_model_dir), [task], tmp_path / "b", EvalSettings(allow_pickle=True))
    assert plain["loglikelihoods"].map(list).tolist() == pickled["loglikelihoods"].map(list).tolist()
    # the flag says what may be loaded, not how to score: not part of the run key
    assert EvalSettings(allow_pickle=True).settings_hash() == EvalSettings().settings_hash()
    again = evaluate(str(tiny_llama_dir), [task], tmp_path / "a", EvalSettings(allow_pickle=True))
    assert len(list((tmp_path / "a").rglob("records.parquet"))) == 1 and len(again) == 8


def test_allowed_pickle_is_still_loaded_with_weights_only(pickle_model_dir: Path, tmp_path: Path) -> None:
    import torch

    evil = tmp_path / "evil"
    shutil.copytree(pickle_model_dir, evil)
    marker = tmp_path / "PWNED"
    torch.save({"model.embed_tokens.weight": Payload(marker)}, evil / "pytorch_model.bin")
    with pytest.raises(BackendError):
        load_model_and_tokenizer(str(evil), allow_pickle=True)
    assert not marker.exists()
    with pytest.raises(BackendError, match="only in pickle format.*--allow-pickle"):
        load_model_and_tokenizer(str(evil))
    assert not marker.exists()


def test_a_config_naming_a_pickle_file_is_refused(tiny_llama_dir: Path, pickle_model_dir: Path,
                                                  tmp_path: Path) -> None:
    both = tmp_path / "both"
    shutil.copytree(tiny_llama_dir, both)
    shutil.copy(pickle_model_dir / "pytorch_model.bin", both / "weights.bin")
    config = json.loads((both / "config.json").read_text())
    (both / "config.json").write_text(json.dumps({**config, "transformers_weights": "weights.bin"}))
    with pytest.raises(BackendError, match=r"weights\.bin"):
        load_model_and_tokenizer(str(both))


def test_every_command_that_loads_a_model_has_the_flag() -> None:
    for command in ("eval", "compare", "gate", "noise", "sequence"):
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert "--allow-pickle" in result.output, command


def test_training_from_a_pickle_init_is_refused(pickle_model_dir: Path) -> None:
    from forgetscope.train.config import ModelConfig
    from forgetscope.train.fields import ConfigError

    with pytest.raises(ConfigError, match=r"model\.init: .*pickle format.*safetensors"):
        ModelConfig(init=str(pickle_model_dir)).build(None, 0)
