"""Regenerate the OLMES fixtures under tests/importers/data/olmes/ from real model scores.

OLMES (allenai/olmes, package oe_eval) cannot run here, so its output files are
written by this script, field for field as oe_eval writes them:

- `task-NNN-<task>-predictions.jsonl`: oe_eval/metrics/metric.py
  `Metric.compute_for_docs` (keys doc_id, native_id, metrics, model_output,
  label) plus task_hash and model_hash added in oe_eval/run_eval.py
  `compute_save_metrics`; model_output entries as oe_eval's HFLM_Verbose
  returns them (`_loglikelihood_tokens_verbose`: sum_logits, num_tokens,
  num_tokens_all, is_greedy; `generate_until_verbose`: continuation,
  sum_logits, num_tokens) with MCAccuracy.compute_for_requests's additions
  (logits_per_token, logits_per_char, bits_per_byte, num_chars), and the
  document metrics of MCAccuracy.process_one_doc;
- `task-NNN-<task>-metrics.json`: run_eval's full_config (task_name,
  task_hash, model_hash, model_config, task_config, compute_config,
  processing_time, current_date, num_instances, metrics, task_idx);
- `metrics-all.jsonl`: every task's metrics.json, one per line.

The numbers are real: the per-choice log-likelihoods, greedy flags and the
generations are those of the committed lm-evaluation-harness fixture
(lmeval/model_a, lmeval/model_b: the two tiny models of tests/conftest.py;
oe_eval scores with lm-eval's HFLM, so it gets the same log-likelihoods), the
token counts come from the same tiny tokenizer, split as lm-eval's
`_encode_pair` splits context and continuation, and the generations' sum_logits
are computed with the tiny models. Tasks: quiz_even and quiz_odd (4 choices,
16 docs each), arith_gen (generative, 8 docs).

    .venv/bin/python tests/importers/data/make_olmes_fixtures.py
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
OUT = HERE / "olmes"
LMEVAL = HERE / "lmeval"
TASKS = ("quiz_even", "quiz_odd", "arith_gen")
LOG_2_OF_E = 1.44269504089


def hash_config(config: dict) -> str:
    return hashlib.md5(json.dumps(config, sort_keys=True).encode()).hexdigest()


def samples(model: str, task: str) -> list[dict]:
    path = next((LMEVAL / model).glob(f"samples_{task}_*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def arguments(sample: dict) -> list[tuple[str, str]]:
    args = sample["arguments"]
    return [(args[k]["arg_0"], args[k]["arg_1"]) for k in sorted(args, key=lambda k: int(k.rsplit("_", 1)[1]))]


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's HFLM._encode_pair (trailing spaces of the context move to the continuation)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation, context = context[-spaces:] + continuation, context[:-spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    context_enc = tokenizer(context, add_special_tokens=False)["input_ids"]
    return context_enc, whole[len(context_enc):]


def mc_doc(sample: dict, tokenizer, task: str, task_hash: str, model_hash: str) -> dict:
    outputs = []
    for (context, continuation), (ll, greedy) in zip(arguments(sample), sample["filtered_resps"]):
        context_enc, continuation_enc = encode_pair(tokenizer, context, continuation)
        out = {"sum_logits": float(ll), "num_tokens": len(continuation_enc),
               "num_tokens_all": len(context_enc) + len(continuation_enc), "is_greedy": greedy == "True"}
        chars = max(len(continuation), 1)
        out.update(logits_per_token=out["sum_logits"] / max(out["num_tokens"], 1),
                   logits_per_char=out["sum_logits"] / chars,
                   bits_per_byte=-LOG_2_OF_E * (out["sum_logits"] / max(len(continuation.encode()), 1)),
                   num_chars=chars)
        outputs.append(out)
    label = int(sample["target"])

    def first_max(values):
        return values.index(max(values))

    raw, per_token = first_max([o["sum_logits"] for o in outputs]), first_max([o["logits_per_token"] for o in outputs])
    per_char = first_max([o["logits_per_char"] for o in outputs])
    bpb = [o["bits_per_byte"] for o in outputs]
    per_byte = bpb.index(min(bpb))
    metrics = {"predicted_index_raw": raw, "predicted_index_per_token": per_token,
               "predicted_index_per_char": per_char, "predicted_index_per_byte": per_byte,
               "predicted_index_uncond": None, "correct_choice": label, "acc_raw": int(raw == label),
               "acc_per_token": int(per_token == label), "acc_per_char": int(per_char == label),
               "acc_per_byte": int(per_byte == label), "acc_uncond": None, "no_answer": 0,
               "sum_logits_corr": outputs[label]["sum_logits"],
               "logits_per_token_corr": outputs[label]["logits_per_token"],
               "logits_per_char_corr": outputs[label]["logits_per_char"],
               "bits_per_byte_corr": outputs[label]["bits_per_byte"]}
    return {"doc_id": sample["doc_id"], "native_id": sample["doc"]["id"], "metrics": metrics,
            "model_output": outputs, "label": label, "task_hash": task_hash, "model_hash": model_hash}


def gen_doc(sample: dict, tokenizer, model, task_hash: str, model_hash: str) -> dict:
    import torch

    context = arguments(sample)[0][0]
    continuation = sample["resps"][0][0]
    context_enc = tokenizer(context, add_special_tokens=False)["input_ids"]
    continuation_enc = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([context_enc + continuation_enc])).logits[0].log_softmax(-1)
    sum_logits = float(sum(logits[len(context_enc) - 1 + i, t] for i, t in enumerate(continuation_enc)))
    return {"doc_id": sample["doc_id"], "native_id": sample["doc"]["id"],
            "metrics": {"exact_match": int(sample["exact_match"]), "model_answer": sample["filtered_resps"][0]},
            "model_output": [{"continuation": continuation, "sum_logits": sum_logits,
                              "num_tokens": len(continuation_enc)}],
            "label": sample["target"], "task_hash": task_hash, "model_hash": model_hash}


def task_config(task: str, n: int) -> dict:
    generative = task == "arith_gen"
    return {"task_name": task, "task_core": task, "limit": None, "split": "test", "num_shots": 0,
            "fewshot_seed": 1234, "primary_metric": "exact_match" if generative else "acc_per_char",
            "random_subsample_seed": 1234, "context_kwargs": None,
            "generation_kwargs": {"max_gen_toks": 8, "do_sample": False, "stop_sequences": ["\n"]}
            if generative else None, "metric_kwargs": None, "native_id_field": "id", "fewshot_source": None,
            "dataset_path": f"json:{task}.jsonl", "dataset_name": None, "use_chat_format": None, "version": 0,
            "revision": None, "metadata": {"alias": task}}


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(HERE))
    from make_fixtures import build_models

    work = Path(tempfile.mkdtemp(prefix="forgetscope-olmes-"))
    models = build_models(work)
    shutil.rmtree(OUT, ignore_errors=True)
    for name, model_dir in models.items():
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        model_config = {"model": f"tiny-llama-{name[-1]}", "revision": None, "trust_remote_code": None,
                        "max_length": 256, "model_path": None, "model_type": "hf"}
        model_hash = hash_config(model_config)
        out = OUT / name
        out.mkdir(parents=True)
        all_metrics = []
        for index, task in enumerate(TASKS):
            docs = samples(name, task)
            config = task_config(task, len(docs))
            task_hash = hash_config(config)
            if task == "arith_gen":
                rows = [gen_doc(s, tokenizer, model, task_hash, model_hash) for s in docs]
                aggregate = {"exact_match": sum(r["metrics"]["exact_match"] for r in rows) / len(rows)}
            else:
                rows = [mc_doc(s, tokenizer, task, task_hash, model_hash) for s in docs]
                aggregate = {m: sum(r["metrics"][m] for r in rows) / len(rows)
                             for m in ("acc_raw", "acc_per_token", "acc_per_char", "acc_per_byte")}
            aggregate["primary_score"] = aggregate[config["primary_metric"]]
            assert all(math.isfinite(o["sum_logits"]) for r in rows for o in r["model_output"])
            prefix = f"task-{index:03d}-{task}"
            (out / f"{prefix}-predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            metrics = {"task_name": task, "task_hash": task_hash, "model_hash": model_hash,
                       "model_config": model_config, "task_config": config,
                       "compute_config": {"batch_size": 8, "max_batch_size": 32, "output_dir": str(out),
                                          "num_recorded_inputs": 3, "save_raw_requests": False,
                                          "recompute_metrics": False},
                       "processing_time": 1.0, "current_date": "2026-12-03 00:00:00 UTC",
                       "num_instances": len(rows), "beaker_info": {}, "metrics": aggregate, "task_idx": index}
            (out / f"{prefix}-metrics.json").write_text(json.dumps(metrics))
            all_metrics.append(metrics)
            print("  ->", (out / f"{prefix}-predictions.jsonl").relative_to(HERE))
        (out / "metrics-all.jsonl").write_text("".join(json.dumps(m) + "\n" for m in all_metrics))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
