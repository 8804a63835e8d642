"""Merging two checkpoints: refusals without any library, the merge itself with mergekit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from forgetscope.analysis.sequence import RunManifest
from forgetscope.cli import app
from forgetscope.train.merge import MergeError, check_mergeable, merge_checkpoints, parse_alphas
from tests.helpers import write_quiz

runner = CliRunner()


def _weights(path):
    from safetensors.numpy import load_file

    out = {}
    for file in sorted(path.glob("*.safetensors")):
        out.update(load_file(file))
    return out


def test_alphas_are_checked():
    assert parse_alphas("0,0.25,1") == [0.0, 0.25, 1.0]
    for bad in ("0,2", "a,b", "0.5,0.5", ""):
        with pytest.raises(MergeError):
            parse_alphas(bad)


def test_different_architectures_are_refused_in_one_line(tmp_path, tiny_llama_dir, tiny_gpt2_dir):
    result = runner.invoke(app, ["merge", str(tiny_llama_dir), str(tiny_gpt2_dir), "-o", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "error:" in result.output and "different architectures" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()


def test_different_tokenizers_are_refused(tmp_path, tiny_llama_dir, tiny_llama_dir_b):
    other = tmp_path / "b"
    shutil.copytree(tiny_llama_dir_b, other)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = list(vocab)[:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]  # two tokens swap ids
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(MergeError, match=r"different tokenizers \(tokenizer.json differs\)"):
        check_mergeable(tiny_llama_dir, other)


def test_pickle_only_weights_are_refused(tmp_path, tiny_llama_dir, tiny_llama_dir_b):
    other = tmp_path / "b"
    shutil.copytree(tiny_llama_dir_b, other)
    (other / "model.safetensors").unlink()
    (other / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(MergeError, match="no .safetensors weights.*pytorch_model.bin: pickle"):
        check_mergeable(tiny_llama_dir, other)


def test_a_missing_weight_is_refused(tmp_path, tiny_llama_dir, tiny_llama_dir_b):
    from safetensors.numpy import save_file

    other = tmp_path / "b"
    shutil.copytree(tiny_llama_dir_b, other)
    weights = _weights(other)
    dropped = sorted(weights)[0]
    del weights[dropped]
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(MergeError, match=f"different weights .*{dropped}"):
        check_mergeable(tiny_llama_dir, other)


def test_merges_along_the_path_and_writes_a_manifest(tmp_path, tiny_llama_dir, tiny_llama_dir_b):
    pytest.importorskip("mergekit")
    out = tmp_path / "merged"
    result = runner.invoke(app, ["merge", str(tiny_llama_dir), str(tiny_llama_dir_b), "--alpha", "0,0.25,1",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    a, b = _weights(tiny_llama_dir), _weights(tiny_llama_dir_b)
    zero, quarter, one = (_weights(out / name) for name in ("alpha-0", "alpha-0.25", "alpha-1"))
    for name in a:
        assert np.array_equal(zero[name], a[name]) and np.array_equal(one[name], b[name])
        assert np.allclose(quarter[name], 0.75 * a[name] + 0.25 * b[name], atol=1e-6)
    manifest = RunManifest.read(out)
    assert manifest.names == ["merge/alpha-0", "merge/alpha-0.25", "merge/alpha-1"]
    assert manifest.checkpoints[1].path == (out / "alpha-0.25").resolve()
    assert json.loads((out / "manifest.json").read_text())["merge"]["method"] == "linear"
    assert (out / "alpha-0.25" / "tokenizer.json").read_bytes() == (tiny_llama_dir / "tokenizer.json").read_bytes()


def test_slerp_interpolates_on_the_sphere(tmp_path, tiny_llama_dir, tiny_llama_dir_b):
    pytest.importorskip("mergekit")
    result = merge_checkpoints(tiny_llama_dir, tiny_llama_dir_b, [0.25], method="slerp", output=tmp_path / "s")
    merged = _weights(result.checkpoints[0])
    a, b = _weights(tiny_llama_dir), _weights(tiny_llama_dir_b)
    name = "model.layers.0.mlp.up_proj.weight"
    x, y = a[name].astype(np.float64), b[name].astype(np.float64)
    theta = np.arccos((x * y).sum() / (np.linalg.norm(x) * np.linalg.norm(y)))  # the whole tensor as one vector
    expected = (np.sin(0.75 * theta) * x + np.sin(0.25 * theta) * y) / np.sin(theta)
    assert np.allclose(merged[name], expected, atol=1e-6)
    assert not np.allclose(merged[name], 0.75 * x + 0.25 * y, atol=1e-4)  # not the straight line


def test_sequence_follows_the_items_along_the_merge_path(tmp_path, tiny_llama_dir, tiny_llama_dir_b):
    pytest.importorskip("mergekit")
    out = tmp_path / "merged"
    merge_checkpoints(tiny_llama_dir, tiny_llama_dir_b, [0, 0.5, 1], output=out)
    items = write_quiz(tmp_path / "quiz.jsonl", 12)
    result = runner.invoke(app, ["sequence", str(out), "--task", str(items), "--output", str(tmp_path / "r"),
                                 "--json", str(tmp_path / "seq.json")])
    assert result.exit_code == 0, result.output
    assert "0: alpha-0  →  1: alpha-0.5  →  2: alpha-1" in result.output  # the manifest's order, A to B
    assert (tmp_path / "seq.json").is_file()
