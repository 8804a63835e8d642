"""The model options people pass as lm-evaluation-harness spells them: --model-args, --device auto,
--batch-size auto, --limit as a fraction, and the underscore aliases."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from forgetscope.backends.base import BackendError
from forgetscope.backends.batching import BatchSizer
from forgetscope.backends.model_args import parse_model_args
from forgetscope.cli import app
from forgetscope.engine.evaluate import EvalSettings
from forgetscope.records.store import load_records
from forgetscope.tasks.base import TaskError, item_limit
from tests.helpers import run_eval, write_quiz

runner = CliRunner()


@pytest.fixture()
def quiz(tmp_path):
    return write_quiz(tmp_path / "quiz.jsonl", 10)


# ------------------------------------------------------------------ --model-args

def test_model_args_are_typed_as_lm_eval_types_them():
    args = parse_model_args("attn_implementation=eager,rope_theta=10000,use_cache=False,scale=1.5,x=none,"
                            "label='123',revision=0123,subfolder=1.0")
    assert args == {"attn_implementation": "eager", "rope_theta": 10000, "use_cache": False, "scale": 1.5, "x": None,
                    "label": "123", "revision": "0123", "subfolder": "1.0"}  # names stay names
    lm_eval = pytest.importorskip("lm_eval.utils")
    text = "a=1,b=-2,c=1e3,d=TRUE,e=None,f='7',g=text"
    assert parse_model_args(text) == lm_eval.simple_parse_args_string(text)


@pytest.mark.parametrize(("arg", "option"), [
    ("dtype=bfloat16", "--dtype"), ("torch_dtype=float16", "--dtype"), ("device_map=auto", "--device"),
    ("gguf_file=m.gguf", "--gguf-file"), ("trust_remote_code=True", "--trust-remote-code"),
    ("pretrained=gpt2", "the CHECKPOINT argument"),
])
def test_keywords_forgetscope_sets_are_refused_pointing_at_the_option(tmp_path, quiz, tiny_llama_dir, arg, option):
    result = run_eval(tiny_llama_dir, quiz, tmp_path / "res", "--model-args", arg)
    assert result.exit_code == 2
    key = arg.split("=")[0]
    assert result.output.strip() == f"error: --model-args {key}=...: forgetscope sets {key} itself; use {option}"
    assert not (tmp_path / "res").exists()


def test_model_args_enter_the_cache_key_but_the_revision_does_not():
    plain = EvalSettings().settings_hash()
    assert EvalSettings(model_args={"attn_implementation": "eager"}).settings_hash() != plain
    assert EvalSettings(model_args={"revision": "step2"}).settings_hash() == plain  # the commit is in the fingerprint
    with pytest.raises(BackendError, match="use --dtype"):
        EvalSettings(model_args={"dtype": "float16"})


def test_model_args_reach_from_pretrained_and_keep_records_apart(tmp_path, quiz, tiny_llama_dir):
    out = tmp_path / "res"
    assert run_eval(tiny_llama_dir, quiz, out, "--name", "plain").exit_code == 0
    result = run_eval(tiny_llama_dir, quiz, out, "--name", "eager", "--model_args", "attn_implementation=eager")
    assert result.exit_code == 0, result.output
    records = load_records([out])
    plain, eager = (records[records.checkpoint == n].sort_values("item_id") for n in ("plain", "eager"))
    assert set(plain.settings_hash) != set(eager.settings_hash)  # scored again, not read back
    assert json.loads(eager.settings.iloc[0])["model_args"] == {"attn_implementation": "eager"}
    for a, b in zip(plain.loglikelihoods, eager.loglikelihoods):  # same arithmetic up to kernels
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4
    result = run_eval(tiny_llama_dir, quiz, out, "--model-args", "attn_implementation=no_such_kernel")
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("error: cannot load")


# ------------------------------------------------------------------ --device auto, --batch-size auto

def test_device_auto_is_the_default_and_records_store_the_resolved_device(tmp_path, quiz, tiny_llama_dir):
    import torch

    assert run_eval(tiny_llama_dir, quiz, tmp_path / "res").exit_code == 0
    settings = {json.loads(s)["device"] for s in load_records([tmp_path / "res"]).settings}
    assert settings == {"cuda" if torch.cuda.is_available() else "cpu"}


def test_batch_size_auto_on_cpu_says_so_and_scores_as_batch_one(tmp_path, quiz, tiny_llama_dir):
    result = run_eval(tiny_llama_dir, quiz, tmp_path / "auto", "--batch_size", "auto", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "--batch-size auto on CPU uses 16" in result.output
    assert run_eval(tiny_llama_dir, quiz, tmp_path / "one", "-b", "1", "--device", "cpu").exit_code == 0
    auto, one = (load_records([tmp_path / d]).sort_values("item_id") for d in ("auto", "one"))
    for a, b in zip(auto.loglikelihoods, one.loglikelihoods):  # as test_batch_size_1_and_16_agree
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4
    assert auto.correct.tolist() == one.correct.tolist()
    result = run_eval(tiny_llama_dir, quiz, tmp_path / "bad", "--batch-size", "many")
    assert result.exit_code == 2
    assert "error: --batch-size 'many': give a whole number of at least 1, or auto" in result.output


def test_auto_batches_halve_on_out_of_memory_and_keep_the_size_that_fits():
    import torch

    seen: list[list[int]] = []

    def score(batch):
        if len(batch) > 5:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        seen.append(list(batch))

    sizer = BatchSizer(32, auto=True)
    sizer.run(list(range(70)), score)
    assert sizer.size == 4  # 32 -> 16 -> 8 -> 4
    assert [i for batch in seen for i in batch] == list(range(70))  # every item once, in order
    seen.clear()
    sizer.run(list(range(9)), score)  # the next call starts at the size found
    assert [len(b) for b in seen] == [4, 4, 1]
    with pytest.raises(torch.OutOfMemoryError):  # a fixed batch size is the user's: no silent halving
        BatchSizer(32).run(list(range(10)), score)
    with pytest.raises(ValueError):  # other errors are never retried
        BatchSizer(4, auto=True).run([1, 2], lambda batch: (_ for _ in ()).throw(ValueError("bad")))


def test_the_hf_backend_uses_16_for_auto_on_cpu(tiny_llama_dir):
    from forgetscope.backends.hf import HFBackend

    backend = HFBackend.from_pretrained(str(tiny_llama_dir), batch_size="auto", device="cpu")
    assert backend.batch_size == 16 and not backend.batches.auto


# ------------------------------------------------------------------ --limit fraction, aliases

def test_item_limit_matches_lm_eval():
    fractions = (None, 0.25, 0.1, 0.01, 0.999, 1, 5, 5.0, 50)
    assert [item_limit(x, 10) for x in fractions] == [None, 3, 1, 1, 10, 1, 5, 5, 50]
    for bad in (0, -1, 2.5, 0.0):
        with pytest.raises(TaskError, match="whole number of items"):
            item_limit(bad, 10)
    evaluator_utils = pytest.importorskip("lm_eval.evaluator_utils")

    class Docs:
        eval_docs = list(range(37))

    for x in (0.05, 0.1, 0.333, 0.5, 0.99, 3, 40):
        assert item_limit(x, 37) == evaluator_utils.get_sample_size(Docs, x)


def test_limit_fraction_and_underscore_aliases(tmp_path, quiz, tiny_llama_dir):
    out = tmp_path / "res"
    result = runner.invoke(app, ["eval", str(tiny_llama_dir), "-t", str(quiz), "--output_path", str(out),
                                 "--limit", "0.25", "--num_fewshot", "1", "--batch_size", "2",
                                 "--model_args", "use_cache=false"])
    assert result.exit_code == 0, result.output
    assert "quiz: n=3 " in result.output  # ceil(0.25 * 10)
    records = load_records([out])
    assert sorted(records.item_id) == ["q0", "q1", "q2"]
    assert records.prompt.str.count("Which one is number").min() == 2  # one example before each item
    result = runner.invoke(app, ["eval", str(tiny_llama_dir), "-t", str(quiz), "-o", str(out), "--limit", "1.5"])
    assert result.exit_code == 2 and "--limit 1.5: give a whole number of items" in result.output
