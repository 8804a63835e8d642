"""`--task lmeval:NAME`: items built by lm-evaluation-harness's own task registry.

Local task YAMLs over local JSONL (`dataset_path: json`), written per test
module, so nothing is downloaded. The items must be what lm-eval builds: the
contexts (description and few-shot included), the continuations (target
delimiter + choice) and the gold, checked against lm-eval's objects, against a
hand-written prompt, and against a real lm-eval `--log_samples` run (the
committed fixture of the importer tests, whose tasks are rebuilt here).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forgetscope.tasks import TaskError, TaskOptions, load_task
from forgetscope.tasks.lmeval import LmevalOptions, load_lmeval_task

ROOT = Path(__file__).parents[2]
IMPORT_DATA = ROOT / "tests" / "importers" / "data"

POOL = ["red", "a small river", "seven", "the old stone bridge", "blue", "Paris", "a cat", "forty-two"]

QUIZ_YAML = """task: fs_quiz
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}/test.jsonl
    train: {data}/train.jsonl
test_split: test
fewshot_split: train
description: "Riddles.\\n\\n"
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""

VARIANTS = {
    # same data, other readings of it; `include` takes everything else from fs_quiz.yaml
    "fs_zero": "num_fewshot: 0\ntag: fs_tagged\n",
    "fs_text_gold": 'doc_to_target: "{{choices[answer]}}"\n',
    "fs_multi_gold": 'doc_to_target: "{{golds}}"\n',
    "fs_colon": 'target_delimiter: ": "\ntag: fs_tagged\n',
    # winogrande-like: one context per option, the same continuation, gold from doc_to_text
    "fs_wino": 'doc_to_text: "{{answer % 2}}"\ndoc_to_choice: "{{options}}"\ndoc_to_target: "{{rest}}"\n',
    "fs_gen": "output_type: generate_until\ndoc_to_target: \"{{choices[answer]}}\"\n"
              "generation_kwargs:\n  until: [\"\\n\"]\nmetric_list:\n  - metric: exact_match\n",
    "fs_bad_gold": 'doc_to_target: \'{{answer + 4 if question.endswith("3?") else answer}}\'\n',
}

GROUP_YAML = "group: fs_group\ntask:\n  - fs_quiz\n  - fs_text_gold\naggregate_metric_list:\n  - metric: acc\n"


def _rows(n: int, offset: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        choices = rng.sample(POOL, 4)
        answer = rng.randrange(4)
        rows.append({"question": f"Which answer belongs to riddle number {i + offset}?", "choices": choices,
                     "answer": answer, "golds": sorted({answer, (answer + 1) % 4}),
                     "options": [f"The riddle {i + offset} is about {c}" for c in choices[:2]],
                     "rest": "and nothing else.", "cat": "even" if i % 2 == 0 else "odd"})
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    """fs_quiz (12 test docs, 6 train docs for few-shot), its variants, and the group fs_group."""
    root = tmp_path_factory.mktemp("lmeval_tasks")
    data = root / "data"
    data.mkdir()
    _write(data / "test.jsonl", _rows(12, 0, seed=0))
    _write(data / "train.jsonl", _rows(6, 100, seed=1))
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "fs_quiz.yaml").write_text(QUIZ_YAML.format(data=data))
    for name, extra in VARIANTS.items():
        (tasks / f"{name}.yaml").write_text(f"include: fs_quiz.yaml\ntask: {name}\n{extra}")
    (tasks / "fs_group.yaml").write_text(GROUP_YAML)
    return tasks


def _test_rows(task_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (task_dir.parent / "data" / "test.jsonl").read_text().splitlines()]


def _load(task_dir: Path, name: str, **options) -> object:
    return load_lmeval_task(f"lmeval:{name}", LmevalOptions(include_path=(str(task_dir),), **options))


def _lm_eval_requests(task_dir: Path, name: str, num_fewshot: int, seed: int = 1234) -> dict[int, list]:
    """lm-eval's own requests per doc_id, built the way lm_eval.simple_evaluate builds them."""
    from unittest import mock

    from lm_eval.tasks import TaskManager
    from tqdm import tqdm

    with mock.patch.object(tqdm, "monitor_interval", 0):  # no monitor thread left for later tests
        lm_task = TaskManager(include_path=str(task_dir), include_defaults=False).load(name)["tasks"][name]
        lm_task.set_config(key="num_fewshot", value=num_fewshot)
        lm_task.set_fewshot_seed(seed=seed)
        lm_task.build_all_requests()
    out: dict[int, list] = {}
    for instance in sorted(lm_task.instances, key=lambda i: (i.doc_id, i.idx)):
        out.setdefault(instance.doc_id, []).append(tuple(instance.arguments))
    return out


@pytest.mark.lmeval
def test_zero_shot_prompt_is_the_yaml_rendered(task_dir):
    task = _load(task_dir, "fs_quiz")
    rows = _test_rows(task_dir)
    assert task.name == "fs_quiz" and [i.item_id for i in task.items] == [str(n) for n in range(12)]
    for item, row in zip(task.items, rows):
        assert item.contexts == (f"Riddles.\n\nQuestion: {row['question']}\nAnswer:",)
        assert item.choices == tuple(row["choices"])
        assert item.continuations == tuple(" " + c for c in row["choices"])
        assert item.gold == (row["answer"],)


@pytest.mark.lmeval
def test_few_shot_items_equal_lm_evals_requests(task_dir):
    task = _load(task_dir, "fs_quiz", num_fewshot=3)
    theirs = _lm_eval_requests(task_dir, "fs_quiz", 3)
    assert [item.requests() for item in task.items] == [theirs[d] for d in sorted(theirs)]
    first = task.items[0].context
    assert first.startswith("Riddles.\n\nQuestion: Which answer belongs to riddle number 10")  # a train doc
    assert first.count("Question:") == 4 and first.endswith("riddle number 0?\nAnswer:")


@pytest.mark.lmeval
def test_fewshot_seed_changes_the_prompt_and_so_the_hash(task_dir):
    default = _load(task_dir, "fs_quiz", num_fewshot=2)
    again = _load(task_dir, "fs_quiz", num_fewshot=2)
    other = _load(task_dir, "fs_quiz", num_fewshot=2, fewshot_seed=7)
    assert [i.item_hash for i in default.items] == [i.item_hash for i in again.items]
    theirs = _lm_eval_requests(task_dir, "fs_quiz", 2, seed=7)
    assert [item.requests() for item in other.items] == [theirs[d] for d in sorted(theirs)]
    for a, b in zip(default.items, other.items):
        assert (a.context == b.context) == (a.item_hash == b.item_hash)
    assert any(a.context != b.context for a, b in zip(default.items, other.items))
    zero = _load(task_dir, "fs_quiz")
    assert all(a.item_hash != z.item_hash for a, z in zip(default.items, zero.items))


@pytest.mark.lmeval
def test_yaml_num_fewshot_zero_wins_over_the_option(task_dir):
    """As lm-eval: a task that fixes num_fewshot: 0 ignores --num-fewshot."""
    task = _load(task_dir, "fs_zero", num_fewshot=3)
    assert all(item.context.count("Question:") == 1 for item in task.items)


@pytest.mark.lmeval
def test_text_gold_multiple_golds_and_delimiter(task_dir):
    base = _load(task_dir, "fs_quiz").items
    text = _load(task_dir, "fs_text_gold").items
    assert [i.gold for i in text] == [i.gold for i in base]
    assert [i.item_hash for i in text] != [i.item_hash for i in base]  # target differs: "a cat" vs 2
    multi = _load(task_dir, "fs_multi_gold").items
    assert [i.gold for i in multi] == [tuple(row["golds"]) for row in _test_rows(task_dir)]
    assert all(len(i.gold) == 2 for i in multi)
    colon = _load(task_dir, "fs_colon").items
    assert colon[0].continuations == tuple(": " + c for c in colon[0].choices)


@pytest.mark.lmeval
def test_multiple_input_task_has_one_context_per_option(task_dir):
    task = _load(task_dir, "fs_wino")
    theirs = _lm_eval_requests(task_dir, "fs_wino", 0)
    item = task.items[0]
    assert len(item.contexts) == 2 and item.continuations == (" and nothing else.",) * 2
    assert item.contexts == tuple("Riddles.\n\n" + option for option in item.choices)
    assert [i.requests() for i in task.items] == [theirs[d] for d in sorted(theirs)]
    rows = _test_rows(task_dir)
    assert [i.gold for i in task.items] == [(r["answer"] % 2,) for r in rows]  # doc_to_text is the gold


@pytest.mark.lmeval
def test_building_leaves_no_thread_behind(task_dir):
    """lm-eval's progress bars would start tqdm's monitor thread, which keeps the CLI from its fast exit."""
    import threading

    before = set(threading.enumerate())
    _load(task_dir, "fs_quiz", num_fewshot=1)
    assert set(threading.enumerate()) <= before


@pytest.mark.lmeval
def test_group_items_carry_their_subtask(task_dir):
    task = _load(task_dir, "fs_group", limit=5)
    assert task.name == "fs_group" and len(task) == 10
    assert {i.category for i in task.items} == {"fs_quiz", "fs_text_gold"}
    assert task.items[0].item_id == "fs_quiz/0" and task.items[-1].item_id == "fs_text_gold/4"


@pytest.mark.lmeval
def test_a_yaml_path_names_the_task(task_dir):
    by_path = load_lmeval_task(f"lmeval:{task_dir / 'fs_text_gold.yaml'}")  # it includes fs_quiz.yaml
    by_name = _load(task_dir, "fs_text_gold")
    assert by_path.name == "fs_text_gold" and [i.item_hash for i in by_path.items] == [i.item_hash for i in by_name.items]


@pytest.mark.lmeval
def test_limit_as_lm_eval_reads_it(task_dir):
    assert len(_load(task_dir, "fs_quiz", limit=5)) == 5
    assert len(_load(task_dir, "fs_quiz", limit=0.25)) == 3  # ceil(12 * 0.25)
    assert len(_load(task_dir, "fs_quiz", limit=0.3)) == 4


@pytest.mark.lmeval
@pytest.mark.parametrize("limit", [1.5, 0, -2])
def test_a_bad_limit_is_refused_as_for_every_task(task_dir, limit):
    """--limit 1.5 is neither a whole number of items nor a fraction: refused, as for a data-file task
    (lm-eval itself would score int(1.5) = 1 document)."""
    with pytest.raises(TaskError) as theirs:
        load_task("lmeval:fs_quiz", options=TaskOptions(limit=limit, include_path=(str(task_dir),)))
    with pytest.raises(TaskError) as ours:
        load_task(str(ROOT / "tests" / "tasks" / "data" / "mc.jsonl"), options=TaskOptions(limit=limit))
    assert str(theirs.value) == str(ours.value) == (f"--limit {limit}: give a whole number of items (at least 1) "
                                                    "or a fraction between 0 and 1")


@pytest.mark.lmeval
def test_task_options_route_through_load_task(task_dir):
    options = TaskOptions(num_fewshot=1, fewshot_seed=3, limit=4, name="mine", include_path=(str(task_dir),))
    task = load_task("lmeval:fs_quiz", options=options)
    theirs = _lm_eval_requests(task_dir, "fs_quiz", 1, seed=3)
    assert task.name == "mine" and [i.requests() for i in task.items] == [theirs[d] for d in range(4)]
    with pytest.raises(TaskError, match=r"--template, --target-delimiter do\(es\) not apply to lm-eval tasks"):
        load_task("lmeval:fs_quiz", options=TaskOptions(template="{q}", target_delimiter=":"))


@pytest.mark.lmeval
@pytest.mark.parametrize("name,message", [
    ("fs_gen", r"output_type 'generate_until'; only multiple_choice tasks"),
    ("fs_bad_gold", r"lm-eval task 'fs_bad_gold', doc 3: gold \d+ is not an index of the 4 choices"),
    ("fs_quizz", r"no task, group or tag 'fs_quizz' .*did you mean fs_quiz"),
    ("", r"name the lm-eval task after the colon"),
    ("fs_tagged", r"'fs_tagged' is an lm-eval tag of 2 tasks; name them one by one "
                  r"\(--task lmeval:fs_colon --task lmeval:fs_zero\)"),
])
def test_refusals_are_one_line(task_dir, name, message):
    with pytest.raises(TaskError, match=message) as info:
        _load(task_dir, name)
    assert "\n" not in str(info.value)


def test_missing_include_path(tmp_path):
    with pytest.raises(TaskError, match=r"nowhere: include path not found"):
        load_lmeval_task("lmeval:x", LmevalOptions(include_path=(str(tmp_path / "nowhere"),)))


@pytest.mark.lmeval
def test_items_hash_like_an_imported_lm_eval_run(tmp_path):
    """The importer fixture's tasks rebuilt here: same contexts, and the same item hashes, as lm-eval logged."""
    from forgetscope.importers import read_lmeval

    tasks = _fixture_tasks(tmp_path)
    task = load_lmeval_task("lmeval:quiz", LmevalOptions(include_path=(str(tasks),)))
    imported = read_lmeval(IMPORT_DATA / "lmeval" / "model_a").records
    imported = imported[imported.task == "quiz"].set_index("item_id")
    assert len(task) == len(imported) == 32
    for item in task.items:
        row = imported.loc[item.item_id]
        assert item.item_hash == row.item_hash and item.category == row.category
        assert item.context == row.prompt and list(item.choices) == list(row.choices)
        assert "|".join(map(str, item.gold)) == row.gold


def _fixture_tasks(root: Path) -> Path:
    """The task folder tests/importers/data/make_fixtures.py gave lm-eval (quiz = quiz_even + quiz_odd)."""
    sys.path.insert(0, str(IMPORT_DATA))
    try:
        import make_fixtures
    finally:
        sys.path.remove(str(IMPORT_DATA))
    tasks = root / "tasks"
    tasks.mkdir()
    rows = [json.loads(line) for line in (IMPORT_DATA / "items" / "quiz.jsonl").read_text().splitlines()]
    for category in ("quiz_even", "quiz_odd"):
        data = root / f"{category}.jsonl"
        make_fixtures.write_jsonl(data, [r for r in rows if r["category"] == category])
        (tasks / f"{category}.yaml").write_text(make_fixtures.MC_YAML.format(name=category, data=data))
    (tasks / "quiz.yaml").write_text(make_fixtures.GROUP_YAML)
    return tasks


@pytest.mark.lmeval
@pytest.mark.slow
def test_forgetscope_scores_equal_lm_evals_logged_decisions(tmp_path, tiny_llama_dir):
    """The fixture's lm-eval run was on tiny_llama_dir: scoring lmeval:quiz here gives its acc/acc_norm per item,
    and `compare` pairs the two record sets item for item (same ids, same hashes)."""
    from forgetscope.analysis import compare_records
    from forgetscope.engine.evaluate import Checkpoint, evaluate
    from forgetscope.importers import read_lmeval

    task = load_lmeval_task("lmeval:quiz", LmevalOptions(include_path=(str(_fixture_tasks(tmp_path)),)))
    ours = evaluate(Checkpoint(str(tiny_llama_dir), name="A"), [task], tmp_path / "out")
    theirs = read_lmeval(IMPORT_DATA / "lmeval" / "model_a", checkpoint="lm-eval").records
    theirs = theirs[theirs.task == "quiz"]
    merged = ours.merge(theirs, on=["task", "item_id"], suffixes=("", "_lm"))
    assert len(merged) == 32 and (merged.item_hash == merged.item_hash_lm).all()
    assert (merged.correct == merged.correct_lm).all() and (merged.correct_norm == merged.correct_norm_lm).all()
    comparison = compare_records(theirs, ours)
    row = comparison.tasks.iloc[0]
    assert row["n"] == 32 and row["n_10"] == 0 and row["n_01"] == 0 and comparison.dropped.empty


@pytest.mark.lmeval
def test_cli_eval_with_include_path(tmp_path, task_dir, tiny_llama_dir):
    from forgetscope.cli import app

    result = CliRunner().invoke(app, ["eval", str(tiny_llama_dir), "--task", "lmeval:fs_quiz", "--include-path",
                                      str(task_dir), "--num-fewshot", "2", "--limit", "4", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "fs_quiz: n=4" in result.output
    bad = CliRunner().invoke(app, ["eval", str(tiny_llama_dir), "--task", "lmeval:fs_gen", "--include-path",
                                   str(task_dir), "-o", str(tmp_path)])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and bad.output.startswith("error: task 'lmeval:fs_gen'")
    stray = CliRunner().invoke(app, ["eval", str(tiny_llama_dir), "--task", str(ROOT / "tests/tasks/data/mc.jsonl"),
                                     "--include-path", str(task_dir), "-o", str(tmp_path)])
    assert stray.exit_code == 2 and "--include-path applies to lmeval: tasks only" in stray.output


def test_without_lm_eval_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval now raises ImportError
    monkeypatch.setitem(sys.modules, "lm_eval.tasks", None)
    with pytest.raises(TaskError, match=r"lm-evaluation-harness, which is not installed .*pip install 'forgetscope\[lmeval\]'"):
        load_task("lmeval:arc_easy")


@pytest.mark.lmeval
@pytest.mark.slow
def test_few_shot_decisions_equal_a_live_lm_eval_run(tmp_path, task_dir, tiny_llama_dir):
    """lm_eval itself, 3-shot with a description, on the tiny model; forgetscope on lmeval:fs_quiz, 3-shot:
    the same items (hashes) and the same acc / acc_norm on every one."""
    import os
    import subprocess

    from forgetscope.engine.evaluate import Checkpoint, evaluate
    from forgetscope.importers import read_lmeval

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                           f"pretrained={tiny_llama_dir},dtype=float32", "--device", "cpu", "--batch_size", "8",
                           "--tasks", "fs_quiz", "--include_path", str(task_dir), "--num_fewshot", "3",
                           "--log_samples", "--output_path", str(tmp_path / "lm")],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = read_lmeval(tmp_path / "lm", checkpoint="lm-eval").records
    task = _load(task_dir, "fs_quiz", num_fewshot=3)
    ours = evaluate(Checkpoint(str(tiny_llama_dir), name="forgetscope"), [task], tmp_path / "out")
    merged = ours.merge(theirs, on=["task", "item_id"], suffixes=("", "_lm"))
    assert len(merged) == len(ours) == len(theirs) == 12
    assert (merged.item_hash == merged.item_hash_lm).all() and (merged.prompt == merged.prompt_lm).all()
    assert (merged.correct == merged.correct_lm).all() and (merged.correct_norm == merged.correct_norm_lm).all()
    assert merged.correct.nunique() == 2 or merged.correct_norm.nunique() == 2  # not all alike: decisions matter
