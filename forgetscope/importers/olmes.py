"""OLMES (allenai/olmes, `oe_eval`) prediction files → records.

`python -m oe_eval.run_eval --output-dir DIR` writes, per task,
`task-NNN-<task>-predictions.jsonl` (one JSON object per document) beside
`task-NNN-<task>-metrics.json` (the task's config, hashes and aggregate
metrics). A predictions line holds, as oe_eval's Metric.compute_for_docs
writes it:

- doc_id, native_id (the dataset's own id), label (the gold), task_hash and
  model_hash (oe_eval's hashes of the task and the model configuration);
- model_output: one dict per request; for a multiple-choice (ranked
  classification) task one per choice with sum_logits, num_tokens,
  num_tokens_all, is_greedy, and from MCAccuracy logits_per_token,
  logits_per_char, num_chars (and sum_logits_uncond with an unconditioned
  prompt); for a generative task one per repeat with the continuation;
- metrics: the document's metrics; MCAccuracy gives predicted_index_raw,
  acc_raw, acc_per_token, acc_per_char, acc_uncond, ...

Mapped to records: item_id is doc_id, and item_hash hashes task_hash (which
covers the prompt format, shots, few-shot seed and split), doc_id, native_id,
label and the number of choices (the files hold no prompt text). Multiple
choice: acc (acc_raw), acc_norm (acc_per_char: log-likelihood per character
of the continuation, as OLMES counts them) and acc_per_token are recomputed
from sum_logits and must equal the file's metrics. OLMES's acc_uncond has no
records column. Generative: the continuation and a 0/1 metric (exact_match, or
the one named).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..tasks.base import stable_hash
from ..textfile import describe_non_utf8, read_utf8
from .common import ImportedRun, LogFormatError, argmax_in, build_records, check_finite, check_unique

PREDICTIONS_NAME = re.compile(r"^task-(?P<index>\d+)-(?P<task>.+)-predictions\.jsonl$")
GENERATIVE_METRICS = ("exact_match", "acc")
MC_CHECKS = {"acc_raw": "correct", "acc_per_token": "correct_per_token", "acc_per_char": "correct_norm"}


def read_olmes(path: Path | str, *, checkpoint: str | None = None, metric: str | None = None) -> ImportedRun:
    """Read an OLMES predictions file, or every one under a directory, as one checkpoint's records."""
    files = _prediction_files(Path(path))
    rows, where, notes, seen, model_hashes, names, primary = [], [], [], {}, {}, [], {}
    for file in files:
        info = _metrics_file(file)
        task = str(info.get("task_name") or _name_match(file)["task"])
        if task in seen:
            raise LogFormatError(f"{file}: task {task!r} also in {seen[task]}; two runs are mixed here, import one "
                                 "run's output directory (or one file) at a time")
        seen[task] = file
        file_rows, file_where, model_hash = _read_file(file, task, info, metric)
        model_hashes.setdefault(model_hash, file)
        names.append(_model_name(info))
        pm = (info.get("task_config") or {}).get("primary_metric") if isinstance(info.get("task_config"), dict) else None
        if pm:
            primary[task] = str(pm)
            if pm == "acc_uncond":
                notes.append(f"{task}: OLMES's primary metric is acc_uncond, which has no records column; "
                             "compare with --metric acc, acc_norm (per character) or acc_per_token")
        rows += file_rows
        where += file_where
    if len(model_hashes) > 1:
        (first_hash, first), (second_hash, second) = list(model_hashes.items())[:2]
        raise LogFormatError(f"{second}: model_hash {second_hash}, but {first} has {first_hash}; the files are of "
                             "different models, import one model's predictions at a time")
    check_unique(rows, where)
    name = checkpoint or next((n for n in names if n), None) or next(iter(model_hashes)) or Path(path).resolve().name
    settings = {"source": "olmes", "metric": metric, "model_hash": next(iter(model_hashes)), "primary_metric": primary}
    return ImportedRun(name, "olmes", build_records(rows, "olmes", name, settings), files, notes)


def _prediction_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise LogFormatError(f"{path}: no such file or directory")
    files = sorted(p for p in path.rglob("task-*-predictions.jsonl") if PREDICTIONS_NAME.match(p.name))
    if not files:
        raise LogFormatError(f"{path}: no task-NNN-<task>-predictions.jsonl files; give the --output-dir of "
                             "oe_eval.run_eval (or one predictions file)")
    return files


def _name_match(file: Path) -> re.Match:
    match = PREDICTIONS_NAME.match(file.name)
    if match is None:
        raise LogFormatError(f"{file}: not named task-NNN-<task>-predictions.jsonl as OLMES names its files, and "
                             "no metrics.json beside it names the task; rename it")
    return match


def _metrics_file(file: Path) -> dict:
    """The task's task-NNN-<task>-metrics.json beside the predictions, or {} if absent."""
    if not file.name.endswith("-predictions.jsonl"):
        return {}
    path = file.with_name(file.name[: -len("predictions.jsonl")] + "metrics.json")
    if not path.exists():
        return {}
    try:
        data = json.loads(read_utf8(path, LogFormatError))
    except (ValueError, RecursionError) as exc:
        raise LogFormatError(f"{path}: not readable JSON ({exc}); delete it or fix it") from None
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot read it ({exc})") from None
    if not isinstance(data, dict):
        raise LogFormatError(f"{path}: expected a JSON object (OLMES's task metrics), found {type(data).__name__}")
    return data


def _model_name(info: dict) -> str | None:
    config = info.get("model_config")
    if not isinstance(config, dict):
        return None
    model = config.get("model") or config.get("model_path")
    if not model:
        return None
    revision = config.get("revision")
    return f"{model}@{revision}" if revision else str(model)


def _read_file(file: Path, task: str, info: dict, metric: str | None) -> tuple[list[dict], list[str], str]:
    rows, where = [], []
    task_hash, model_hash = info.get("task_hash"), info.get("model_hash")
    try:
        with open(file, encoding="utf-8") as handle:
            lines = [(n, line) for n, line in enumerate(handle, 1) if line.strip()]
    except UnicodeDecodeError:
        raise LogFormatError(f"{file}: {describe_non_utf8(file)}") from None
    except OSError as exc:
        raise LogFormatError(f"{file}: cannot read it ({exc})") from None
    if not lines:
        raise LogFormatError(f"{file}: no predictions in the file")
    expected = info.get("num_instances")
    if isinstance(expected, int) and not isinstance(expected, bool) and expected and expected != len(lines):
        raise LogFormatError(f"{file}: {len(lines)} predictions, but the task's metrics.json counts {expected}; "
                             "the file is truncated or from another run")
    for number, line in lines:
        place = f"{file}:{number}"
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise LogFormatError(f"{place}: not valid JSON ({'nested too deeply' if isinstance(exc, RecursionError) else exc})") from None
        if not isinstance(record, dict):
            raise LogFormatError(f"{place}: expected a JSON object (an OLMES prediction), found {type(record).__name__}")
        missing = [k for k in ("doc_id", "model_output", "metrics", "task_hash") if k not in record]
        if missing:
            raise LogFormatError(f"{place}: no {', '.join(missing)}; is this an OLMES predictions file?")
        for key, expected_hash in (("task_hash", task_hash), ("model_hash", model_hash)):
            if expected_hash is not None and record.get(key) != expected_hash:
                raise LogFormatError(f"{place}: {key} {record.get(key)!r} differs from {expected_hash!r} (the "
                                     "task's metrics.json or the first line); the file mixes runs")
        task_hash, model_hash = record["task_hash"], record.get("model_hash")
        rows.append(_row(record, place, task, metric))
        where.append(place)
    return rows, where, str(model_hash)


def _row(record: dict, place: str, task: str, metric: str | None) -> dict:
    outputs, metrics = record["model_output"], record["metrics"]
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise LogFormatError(f"{place}: model_output should be a non-empty list of objects (one per request)")
    if not isinstance(metrics, dict):
        raise LogFormatError(f"{place}: metrics should be an object of the document's metrics")
    doc_id = record["doc_id"]
    generative = any("continuation" in o for o in outputs)
    n_choices = 0 if generative else len(outputs)
    item_hash = stable_hash({"task_hash": str(record["task_hash"]), "doc_id": str(doc_id),
                             "native_id": json.dumps(record.get("native_id"), sort_keys=True, default=str),
                             "label": json.dumps(record.get("label"), sort_keys=True, default=str),
                             "n_choices": n_choices})
    row = {"task": task, "category": "", "item_id": str(doc_id), "item_hash": item_hash}
    if generative:
        row.update(_generative(record, outputs, metrics, place, metric))
    elif all("sum_logits" in o for o in outputs) and len(outputs) > 1:
        row.update(_multiple_choice(record, outputs, metrics, place))
    else:
        raise LogFormatError(f"{place}: model_output is neither per-choice sum_logits (multiple choice) nor "
                             "generated continuations; such tasks (e.g. perplexity) cannot be imported")
    return row


def _numbers(outputs: list[dict], key: str, place: str, required: bool = True) -> np.ndarray | None:
    values = [o.get(key) for o in outputs]
    if all(v is None for v in values) and not required:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise LogFormatError(f"{place}: model_output {key} {values!r} are not all numbers")
    return np.asarray(values, dtype=np.float64)


def _multiple_choice(record: dict, outputs: list[dict], metrics: dict, place: str) -> dict:
    label = record.get("label")
    k = len(outputs)
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < k:
        raise LogFormatError(f"{place}: label {label!r} is not an index of the {k} choices (OLMES would score it "
                             "as choice 0); right or wrong cannot be told")
    ll = _numbers(outputs, "sum_logits", place)
    check_finite(ll, place)
    tokens = _numbers(outputs, "num_tokens", place)
    chars = _numbers(outputs, "num_chars", place, required=False)
    # MCAccuracy: per token = sum_logits / max(num_tokens, 1); per char = sum_logits / max(len(continuation), 1)
    per_char = ll / np.maximum(chars, 1) if chars is not None else _numbers(outputs, "logits_per_char", place)
    check_finite(per_char, place)
    gold = [label]
    decided = {"correct": argmax_in(ll, gold), "correct_per_token": argmax_in(ll / np.maximum(tokens, 1), gold),
               "correct_norm": argmax_in(per_char, gold)}
    for name, column in MC_CHECKS.items():
        value = metrics.get(name)
        if value is not None and (value not in (0, 1) or bool(value) != decided[column]):
            raise LogFormatError(f"{place}: recomputed {name}={int(decided[column])} from model_output differs from "
                                 f"the file's {name}={value!r} (label {label}); the file may be edited")
    prediction = int(np.argmax(ll))
    if metrics.get("predicted_index_raw") not in (None, prediction):
        raise LogFormatError(f"{place}: predicted_index_raw {metrics['predicted_index_raw']!r} is not the argmax "
                             f"{prediction} of sum_logits; the file may be edited")
    greedy = [o.get("is_greedy") for o in outputs]
    return {"n_choices": k, "gold": str(label), "prediction": prediction, **decided,
            "loglikelihoods": ll.tolist(), "choice_tokens": [int(t) for t in tokens],
            "choice_chars": [int(c) for c in chars] if chars is not None else [],
            "is_greedy": [bool(g) for g in greedy] if all(isinstance(g, bool) for g in greedy) else []}


def _generative(record: dict, outputs: list[dict], metrics: dict, place: str, metric: str | None) -> dict:
    name = metric or next((m for m in GENERATIVE_METRICS if metrics.get(m) is not None), None)
    value = metrics.get(name) if name else None
    if value is None:
        present = sorted(m for m, v in metrics.items() if isinstance(v, (int, float)))
        raise LogFormatError(f"{place}: no {name or 'exact_match'} in metrics; name the 0/1 metric to use with "
                             f"--metric (it has {', '.join(present) or 'none'})")
    if not isinstance(value, (int, float)) or value not in (0, 1):
        raise LogFormatError(f"{place}: metric {name} is {value!r}; only 0/1 metrics can say right or wrong")
    label = record.get("label")
    answers = [str(a) for a in label] if isinstance(label, list) else [str(label)]
    output = str(outputs[0].get("continuation", ""))
    extracted = metrics.get("model_answer")
    return {"n_choices": 0, "gold": json.dumps(answers, ensure_ascii=False), "prediction": -1,
            "correct": bool(value), "correct_norm": bool(value), "correct_per_token": bool(value),
            "output": output, "extracted": output if extracted is None else str(extracted)}


__all__ = ["read_olmes"]
