"""PEFT adapters: a folder with adapter_config.json is scored as its base model plus the adapter."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from typer.testing import CliRunner

from forgetscope.backends.base import BackendError, LoglikelihoodRequest
from forgetscope.cli import app
from forgetscope.engine.evaluate import Checkpoint, EvalSettings, evaluate
from forgetscope.engine.fingerprint import model_fingerprint
from tests.helpers import item_scores, mc_task, write_quiz

runner = CliRunner()


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory, tiny_llama_dir):
    """A LoRA (r=4 on q/v projections) on the tiny llama, initialised randomly so it changes the scores."""
    pytest.importorskip("peft")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    out = tmp_path_factory.mktemp("lora") / "adapter"
    model.save_pretrained(out)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_llama_dir)
    return out


def test_base_plus_adapter_scores_and_fingerprints_differ_from_the_base(tmp_path, lora_dir, tiny_llama_dir):
    task = mc_task(12)
    base = evaluate(Checkpoint(str(tiny_llama_dir)), [task], tmp_path / "res")
    adapted = evaluate(Checkpoint(str(lora_dir)), [task], tmp_path / "res")
    assert item_scores(base) != item_scores(adapted)
    assert set(base.model_fingerprint) != set(adapted.model_fingerprint)
    assert set(adapted.model_fingerprint) == {model_fingerprint(str(lora_dir))}


def test_the_adapter_fingerprint_covers_base_and_adapter_weights(tmp_path, lora_dir, tiny_llama_dir_b):
    from safetensors.torch import load_file, save_file

    original = model_fingerprint(str(lora_dir))
    other_base = tmp_path / "other_base"
    shutil.copytree(lora_dir, other_base)
    config = json.loads((other_base / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tiny_llama_dir_b)
    (other_base / "adapter_config.json").write_text(json.dumps(config))
    other_weights = tmp_path / "other_weights"
    shutil.copytree(lora_dir, other_weights)
    weights = load_file(other_weights / "adapter_model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] * 2
    save_file(weights, other_weights / "adapter_model.safetensors")
    fingerprints = {original, model_fingerprint(str(other_base)), model_fingerprint(str(other_weights))}
    assert len(fingerprints) == 3


def test_merged_and_unmerged_adapters_score_alike(lora_dir):
    from forgetscope.backends.base import Tokenization
    from forgetscope.backends.hf import HFBackend, load_model_and_tokenizer

    scores = []
    for merge in (False, True):
        model, tokenizer = load_model_and_tokenizer(str(lora_dir), merge_adapter=merge)
        assert type(model).__name__ == "LlamaForCausalLM"
        backend = HFBackend(model, tokenizer, batch_size=4)
        encode = Tokenization(tokenizer, None).encode_pair
        requests = [LoglikelihoodRequest(*encode(c, k)) for item in mc_task(10).items for c, k in item.requests()]
        scores.append([r.logprob for r in backend.loglikelihood(requests)])
    assert max(abs(a - b) for a, b in zip(*scores)) <= 1e-5


def test_pickle_adapter_weights_need_allow_pickle(tmp_path, lora_dir):
    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(lora_dir, pickled)
    torch.save(load_file(pickled / "adapter_model.safetensors"), pickled / "adapter_model.bin")
    (pickled / "adapter_model.safetensors").unlink()
    task = write_quiz(tmp_path / "quiz.jsonl", 4)
    result = runner.invoke(app, ["eval", str(pickled), "-t", str(task), "-o", str(tmp_path / "res")])
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"error: {pickled}: the adapter's weights are only in pickle format")
    assert "--allow-pickle" in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").rglob("*.parquet"))
    with_pickle = evaluate(Checkpoint(str(pickled)), [mc_task(6)], tmp_path / "res2", EvalSettings(allow_pickle=True))
    safe = evaluate(Checkpoint(str(lora_dir)), [mc_task(6)], tmp_path / "res3")
    assert item_scores(with_pickle) == item_scores(safe)


def test_adapter_on_a_hub_revision(hub, tmp_path, lora_dir):
    """base_model_name_or_path may be a hub id@revision: the adapter follows that revision's weights."""
    on_step2 = tmp_path / "on_step2"
    shutil.copytree(lora_dir, on_step2)
    config = json.loads((on_step2 / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "org/tiny@step2"
    (on_step2 / "adapter_config.json").write_text(json.dumps(config))
    on_main = tmp_path / "on_main"
    shutil.copytree(on_step2, on_main)
    config["base_model_name_or_path"] = "org/tiny"
    config["revision"] = "main"  # peft's own key for the base's revision
    (on_main / "adapter_config.json").write_text(json.dumps(config))
    task = mc_task(8)
    step2 = evaluate(Checkpoint(str(on_step2)), [task], tmp_path / "res")
    main = evaluate(Checkpoint(str(on_main)), [task], tmp_path / "res")
    local = evaluate(Checkpoint(str(lora_dir)), [task], tmp_path / "res")  # base: the seed-0 model, as main
    assert item_scores(step2) != item_scores(main)
    assert item_scores(main) == item_scores(local)
    assert model_fingerprint(str(on_step2)) != model_fingerprint(str(on_main))


def test_a_missing_peft_is_one_line_naming_the_extra(tmp_path, monkeypatch, tiny_llama_dir):
    from forgetscope.backends.adapters import attach_adapter, read_adapter

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_llama_dir)}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft -> ImportError
    with pytest.raises(BackendError, match=r"needs peft: pip install 'forgetscope\[peft\]'$"):
        attach_adapter(object(), read_adapter(folder))
