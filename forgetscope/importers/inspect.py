"""Inspect AI eval logs (`.eval` and `.json`) → records.

Inspect writes one log per task run (`<time>_<task>_<id>.eval`, or `.json`
with `--log-format json`); each holds the run's header (task, model, status)
and its samples. The logs are read with Inspect's own reader
(`inspect_ai.log.read_eval_log`, the optional extra `forgetscope[inspect]`).

- task is the log's task name; item_id the sample id; repeat the epoch - 1.
- item_hash hashes the sample's input, choices and target and the first
  prompt the model saw (the messages before its first answer: system prompt
  and the solver's template included), so two imports of the same items pair,
  and a differently prompted run does not.
- right or wrong is the sample's score from the one scorer (or the one named
  with --metric): C / I (and N, no answer, as wrong) or a 0/1 number. Partial
  (P) and other values cannot say right or wrong and are refused, as are
  samples that errored and logs of runs that did not finish.
- multiple choice (samples with choices): the gold indices come from the
  target letters and the prediction from the scorer's answer letter. Inspect
  decides by generated text, not log-likelihoods, so acc, acc_norm and
  acc_per_token are the same decision.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..tasks.base import stable_hash
from .common import ImportedRun, LogFormatError, build_records

INSTALL_HINT = "pip install 'forgetscope[inspect]'"
JSON_LOG_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}T.+\.json$")
"""Inspect's default name of a JSON log, <ISO time>_<task>_<id>.json (a directory's other .json files,
such as Inspect's own logs.json listing, are not logs); every .eval file is a log."""
CORRECT_VALUES = {"C": True, "I": False, "N": False}


def read_inspect(path: Path | str, *, checkpoint: str | None = None, metric: str | None = None) -> ImportedRun:
    """Read an Inspect log file, or every log under a directory, as one checkpoint's records."""
    read_eval_log = _reader()
    files = _log_files(Path(path))
    rows, where, models, seen, versions = [], [], {}, {}, set()
    for file in files:
        log = _read(read_eval_log, file)
        task = str(log.eval.task)
        if task in seen:
            raise LogFormatError(f"{file}: task {task!r} also in {seen[task]}; two runs are mixed here, import one "
                                 "run's logs (or one file) at a time")
        seen[task] = file
        models.setdefault(str(log.eval.model), file)
        versions.add(str((log.eval.packages or {}).get("inspect_ai", "")))
        file_rows, file_where = _rows(log, file, task, metric)
        rows += file_rows
        where += file_where
    if len(models) > 1:
        first, second = list(models.items())[:2]
        raise LogFormatError(f"{second[1]}: model {second[0]!r}, but {first[1]} is of {first[0]!r}; import one "
                             "model's logs at a time")
    _check_unique(rows, where)
    name = checkpoint or next(iter(models))
    settings = {"source": "inspect", "metric": metric, "inspect_version": sorted(versions)}
    return ImportedRun(name, "inspect", build_records(rows, "inspect", name, settings), files)


def _reader():
    try:
        from inspect_ai.log import read_eval_log
    except ImportError as exc:
        raise LogFormatError(f"reading Inspect logs needs inspect_ai, which is not installed ({exc}); "
                             f"{INSTALL_HINT}") from None
    return read_eval_log


def _log_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise LogFormatError(f"{path}: no such file or directory")
    files = sorted(p for p in path.rglob("*") if p.is_file()
                   and (p.suffix == ".eval" or JSON_LOG_NAME.match(p.name)))
    if not files:
        raise LogFormatError(f"{path}: no Inspect logs (*.eval, or <time>_<task>_<id>.json); give the log "
                             "directory of `inspect eval` (--log-dir) or one log file")
    return files


def _read(read_eval_log, file: Path) -> Any:
    try:
        log = read_eval_log(str(file))
    except Exception as exc:  # a zip or JSON error, a schema mismatch, ...: the file is not a readable log
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise LogFormatError(f"{file}: not a readable Inspect eval log ({type(exc).__name__}: {text})") from None
    if log.status != "success":
        raise LogFormatError(f"{file}: the run's status is {log.status!r}, not 'success'; its samples are "
                             "incomplete, so re-run it (or `inspect eval-retry` it) and import the finished log")
    if not log.samples:
        raise LogFormatError(f"{file}: the log holds no samples; run inspect with sample logging on "
                             "(the default; not --no-log-samples)")
    return log


def _rows(log: Any, file: Path, task: str, metric: str | None) -> tuple[list[dict], list[str]]:
    rows, where = [], []
    for index, sample in enumerate(log.samples):
        place = f"{file} sample {sample.id!r}" + (f" epoch {sample.epoch}" if sample.epoch != 1 else "")
        if sample.error is not None:
            message = " ".join(str(getattr(sample.error, "message", sample.error)).split())[:120]
            raise LogFormatError(f"{place}: the sample failed ({message}); right or wrong cannot be told: re-run it")
        scorer, score = _score(sample.scores or {}, metric, place)
        correct = _correct(score.value, scorer, place)
        prompt = _first_prompt(sample.messages or [])
        choices = [str(c) for c in (sample.choices or [])]
        targets = sample.target if isinstance(sample.target, list) else [sample.target]
        targets = [str(t) for t in targets]
        row = {"task": task, "category": "", "item_id": str(sample.id), "repeat": int(sample.epoch) - 1,
               "prompt": "\n\n".join(text for _, text in prompt), "correct": correct, "correct_norm": correct,
               "correct_per_token": correct,
               "item_hash": stable_hash({"input": _input(sample.input), "choices": choices, "target": targets,
                                         "prompt": prompt}),
               "output": str(sample.output.completion if sample.output else ""),
               "extracted": "" if score.answer is None else str(score.answer)}
        if choices:
            gold = _gold(targets, choices, place)
            row.update(n_choices=len(choices), gold="|".join(map(str, gold)), choices=choices,
                       prediction=_letter_index(score.answer, len(choices)))
        else:
            row.update(n_choices=0, gold=json.dumps(targets, ensure_ascii=False), prediction=-1)
        rows.append(row)
        where.append(place)
    return rows, where


def _score(scores: dict, metric: str | None, place: str) -> tuple[str, Any]:
    if metric is not None:
        if metric not in scores:
            raise LogFormatError(f"{place}: no score {metric!r}; it has {', '.join(scores) or 'none'}")
        return metric, scores[metric]
    if len(scores) != 1:
        names = ", ".join(scores) or "none"
        raise LogFormatError(f"{place}: {'no scores' if not scores else 'several scorers (' + names + ')'}; "
                             + ("score the log first (`inspect score`)" if not scores
                                else "name the one that says right or wrong with --metric"))
    return next(iter(scores.items()))


def _correct(value: Any, scorer: str, place: str) -> bool:
    """A score value as right/wrong: C/I/N, a bool, or a 0/1 number; anything else is refused."""
    if isinstance(value, str) and value in CORRECT_VALUES:
        return CORRECT_VALUES[value]
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise LogFormatError(f"{place}: score {scorer} is {value} (not finite); right or wrong cannot be told")
        if value in (0, 1):
            return value == 1
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise LogFormatError(f"{place}: score {scorer} is {shown}; only C/I (or N) and 0/1 scores say right or wrong"
                         + (" (P is partial credit)" if value == "P" else ""))


def _first_prompt(messages: list) -> list[list[str]]:
    """(role, text) of the messages before the model's first answer: what it was asked."""
    prompt = []
    for message in messages:
        if message.role == "assistant":
            break
        prompt.append([str(message.role), str(message.text)])
    return prompt


def _input(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return [[str(getattr(m, "role", "")), str(getattr(m, "text", m))] for m in value]


def _gold(targets: list[str], choices: list[str], place: str) -> list[int]:
    """Target letters (A, B, ...) as choice indices; a target may also be a choice's text."""
    gold = []
    for target in targets:
        index = _letter_index(target, len(choices))
        if index < 0 and target in choices:
            index = choices.index(target)
        if index < 0:
            raise LogFormatError(f"{place}: target {target!r} is neither a letter of the {len(choices)} choices "
                                 "nor one of their texts")
        gold.append(index)
    return gold


def _letter_index(answer: Any, n: int) -> int:
    text = "" if answer is None else str(answer).strip()
    if len(text) == 1 and text.isalpha() and text.isupper() and ord(text) - ord("A") < n:
        return ord(text) - ord("A")
    return -1


def _check_unique(rows: list[dict], where: list[str]) -> None:
    seen: dict[tuple, str] = {}
    for row, place in zip(rows, where):
        key = (row["task"], row["item_id"], row["repeat"])
        if key in seen:
            raise LogFormatError(f"{place}: sample {key[1]!r} (epoch {key[2] + 1}) of task {key[0]!r} appears again "
                                 f"(first at {seen[key]}); sample ids must be unique")
        seen[key] = place


__all__ = ["read_inspect"]
