"""Config files of every kind (training run, sweep, task spec, gate): one reader, one checker, one-line errors.

Each error names the file, the line (YAML) and the field; the JSON Schemas in
docs/schemas/ are generated from the same classes and accept what forgetscope
accepts.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
import tomllib
import types
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.configio import ConfigProblem, read_config
from forgetscope.gate.config import GateConfigError, load_config, parse_config
from forgetscope.tasks import TaskError, TaskSpec
from forgetscope.train.config import load_run_config, parse_run_config
from forgetscope.train.fields import ConfigError
from forgetscope.train.sweep import load_sweep_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RUN = (EXAMPLES / "early_exposure.yaml").read_text()
SWEEP = (EXAMPLES / "sweep_early_exposure.yaml").read_text()
GATE = """metric: acc
holm: true
defaults:
  max_forgetting: 0.02
  alpha: 0.05
tasks:
  mmlu: {max_forgetting: 0.03}
categories:
  mmlu:
    "*": {max_forgetting: 0.10}
    abstract_algebra: {alpha: 0.01}
"""


def line_of(text: str, pattern: str) -> int:
    """1-based number of the only line matching `pattern` (counted here, not by the YAML parser)."""
    lines = [i for i, line in enumerate(text.splitlines(), start=1) if re.search(pattern, line)]
    assert len(lines) == 1, (pattern, lines)
    return lines[0]


def test_line_of_says_which_pattern_it_could_not_place():
    """A pattern on no line, or on two, fails the test by naming the pattern and the lines found."""
    with pytest.raises(AssertionError, match=r"\('nothere', \[\]\)"):
        line_of("a: 1\n", "nothere")
    with pytest.raises(AssertionError, match=r"\('a:', \[1, 2\]\)"):
        line_of("a: 1\na: 2\n", "a:")


def error_of(load, path: Path) -> str:
    with pytest.raises((ConfigError, TaskError, GateConfigError)) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- file, line, field

@pytest.mark.parametrize("name, text, fragment, expected", [
    ("run.yaml", RUN.replace("lr: 2.0e-3", "lr: fast"), "lr: fast", "stages[1].lr: expected a number, got 'fast'"),
    ("run.yaml", RUN.replace("steps: 400", "steps: '400'"), "steps: '400'", "stages[1].steps: expected an integer, got '400'"),
    # a check across fields, after validation, still finds its line
    ("run.yaml", RUN.replace("start_from: pretrain ", "start_from: nothere "), "start_from: nothere",
     "stages[1].start_from: 'nothere' is not one of the earlier stages (pretrain)"),
    # a missing key: the line of the mapping that lacks it
    ("run.yaml", RUN.replace("replay: {source: general, fraction: 0.1}", "replay:\n      fraction: 0.1"),
     "replay:$", "stages[1].replay.source: is required"),
    ("run.yaml", RUN.replace("betas: [0.9, 0.95]", "betas: [0.9]"), "betas:", "stages[0].betas: expected 2 values, got 1"),
    ("run.yaml", RUN.replace("betas: [0.9, 0.95]", "betas: [0.9, 1.5]"), "betas:", "stages[0].betas[1]: must be in [0, 1), got 1.5"),
    ("run.yaml", RUN.replace("\nstages:", "\nstagez:"), "stagez:",
     "stagez: unknown field; known: stages, sources, name, seed, seq_len, val_sequences, model, tokenizer, precision, "
     "compile, base_dir; did you mean stages?"),
    ("sweep.yaml", SWEEP.replace("  seed: [0]", "  seed: 0"), "seed: 0", "grid.seed: expected a list, got 0"),
    ("sweep.yaml", SWEEP.replace("n_items: 100", "batch_size: 0"), "batch_size: 0", "eval.batch_size: must be positive, got 0"),
    ("spec.yaml", "path: quiz.jsonl\nchoices: [a, 5]\n", "choices", "choices[1]: expected a string, got 5"),
    ("spec.yaml", "path: quiz.jsonl\nchoices: 5\n", "choices", "choices: 5 is not a string or a list of strings"),
    ("spec.yaml", "path: quiz.jsonl\nfewshot: {k: 2, seed: x}\n", "fewshot", "fewshot.seed: expected an integer, got 'x'"),
    ("spec.yaml", "path: quiz.jsonl\nfewshot: x\n", "fewshot", "fewshot: 'x' is not an integer or a mapping"),
    ("spec.yaml", "path: quiz.jsonl\nkind: mcq\n", "kind",
     "kind: 'mcq' is not one of multiple_choice, mc, generate, generative, generate_until"),
    ("spec.yaml", "path: quiz.jsonl\ntemplate: null\n", "template",
     "template: is null; write a value, or leave the key out for the default"),
    ("spec.yaml", "path: quiz.jsonl\nbase_dir: /etc\n", "base_dir", "base_dir: unknown field; known: name, kind, path"),
    ("gate.yaml", GATE.replace("abstract_algebra: {alpha: 0.01}", "abstract_algebra: {alpha: .nan}"), "abstract_algebra",
     "categories.mmlu.abstract_algebra.alpha: expected a finite number, got nan"),
    ("gate.yaml", GATE.replace("max_forgetting: 0.02", "max_forgetting: 2"), "max_forgetting: 2",
     "defaults.max_forgetting: must be in [0, 1] (e.g. 0.02), got 2"),
])
def test_errors_name_the_file_the_line_and_the_field(tmp_path, name, text, fragment, expected):
    path = tmp_path / name
    path.write_text(text)
    load = {"run": load_run_config, "sweep": load_sweep_config, "spec": TaskSpec.from_yaml, "gate": load_config}
    message = error_of(load[name.split(".")[0]], path)
    line = line_of(text, fragment)
    assert message.startswith(f"{path} line {line}: {expected}"), message


def test_toml_errors_name_the_file_and_the_field(tmp_path):
    text = (EXAMPLES / "midtraining.toml").read_text().replace('kind = "pretrain"', 'kind = "pre"')
    (tmp_path / "run.toml").write_text(text)
    assert error_of(load_run_config, tmp_path / "run.toml") == (
        f"{tmp_path / 'run.toml'}: stages[0].kind: 'pre' is not one of pretrain, posttrain, finetune")
    (tmp_path / "gate.toml").write_text("[defaults]\nalpha = 1\n")
    assert error_of(load_config, tmp_path / "gate.toml") == (
        f"{tmp_path / 'gate.toml'}: defaults.alpha: must be in (0, 1) (e.g. 0.05), got 1")


def test_file_level_problems(tmp_path):
    assert error_of(load_run_config, tmp_path / "none.yaml") == f"{tmp_path / 'none.yaml'}: no such config file; check the path"
    assert error_of(TaskSpec.from_yaml, tmp_path) == f"{tmp_path}: is a directory, not a task spec file; check the path"
    (tmp_path / "gate.json").write_text("{}")
    assert error_of(load_config, tmp_path / "gate.json") == (
        f"{tmp_path / 'gate.json'}: a gate config is a .yaml, .yml or .toml file")
    (tmp_path / "run.yaml").write_text("- 1\n- 2\n")
    assert error_of(load_run_config, tmp_path / "run.yaml").startswith(
        f"{tmp_path / 'run.yaml'} line 1: expected a mapping of fields at the top level (known: stages, sources, name")
    (tmp_path / "spec.yaml").write_text("path: [unclosed\n")
    assert error_of(TaskSpec.from_yaml, tmp_path / "spec.yaml").startswith(f"{tmp_path / 'spec.yaml'} line 2: not valid YAML")
    (tmp_path / "run.toml").write_text("name = \n")
    assert error_of(load_run_config, tmp_path / "run.toml").startswith(f"{tmp_path / 'run.toml'}: not valid TOML (")
    (tmp_path / "gate.yaml").write_text("")  # an empty gate config: the defaults
    assert load_config(tmp_path / "gate.yaml") == parse_config(None)


def test_the_line_of_a_repeated_key_is_the_one_that_counts(tmp_path):
    text = "path: quiz.jsonl\nlimit: 3\nname: q\nlimit: ten\n"
    (tmp_path / "spec.yaml").write_text(text)
    assert error_of(TaskSpec.from_yaml, tmp_path / "spec.yaml") == (
        f"{tmp_path / 'spec.yaml'} line 4: limit: expected an integer, got 'ten'")


def test_a_located_problem_keeps_its_place():
    file = read_config(EXAMPLES / "early_exposure.yaml", ConfigError.of)
    problem = file.locate(ConfigProblem("stages[2].dropout", "too much"))
    assert str(problem) == f"{EXAMPLES / 'early_exposure.yaml'} line {line_of(RUN, 'dropout: 0.1')}: stages[2].dropout: too much"
    assert file.where("stages[9].lr") == f"{EXAMPLES / 'early_exposure.yaml'} line {line_of(RUN, '^stages:')}"


# ---------------------------------------------------------------- what is accepted (unchanged spellings)

def test_training_fields_keep_their_spellings():
    base = yaml.safe_load(RUN)
    stage = base["stages"][0]

    def with_stage(**change):
        return parse_run_config({**base, "stages": [{**stage, **change}] + base["stages"][1:]})

    assert with_stage(steps=4e2).stages[0].steps == 400  # a whole float (YAML `4.0e+2`) is an integer
    assert with_stage(lr="3e-4").stages[0].lr == 3e-4  # YAML 1.1 reads 3e-4 as text
    assert with_stage(lr=1).stages[0].lr == 1.0 and isinstance(with_stage(lr=1).stages[0].lr, float)
    assert with_stage(betas=[0.5, 0.6]).stages[0].betas == (0.5, 0.6)
    for field, value, message in [
        ("steps", True, "stages[0].steps: expected an integer, got True"),
        ("steps", "600", "stages[0].steps: expected an integer, got '600'"),
        ("steps", 2.5, "stages[0].steps: expected an integer, got 2.5"),
        ("lr", True, "stages[0].lr: expected a number, got True"),
        ("betas", {0.9, 0.5}, "stages[0].betas: expected a list of numbers, got {"),
        ("betas", [0.9, 0.9, 0.9], "stages[0].betas: expected 2 values, got 3"),
        ("mixture", {"general": -1}, "stages[0].mixture.general: must be at least 0, got -1"),
        ("mixture", {1: 1.0}, "stages[0].mixture: key 1 is not a string"),
        ("schedule", None, "stages[0].schedule: None is not one of cosine, linear, constant"),
    ]:
        with pytest.raises(ConfigError) as info:
            with_stage(**{field: value})
        assert str(info.value).startswith(message), str(info.value)
        assert info.value.path == message.split(":")[0] and not info.value.where


def test_task_spec_fields_keep_their_spellings(tmp_path):
    spec = TaskSpec.from_dict({"kind": "generate_until", "config": 2020, "split": 1.5, "stop": "\n", "fewshot": 3})
    assert (spec.kind, spec.config, spec.split, spec.stop, spec.fewshot.k) == ("generate", "2020", "1.5", ["\n"], 3)
    for data, message in [({"limit": 2.0}, "limit: expected an integer, got 2.0"),
                          ({"limit": True}, "limit: expected an integer, got True"),
                          ({"ignore_case": "yes"}, "ignore_case: expected true or false, got 'yes'"),
                          ({"fewshot": {"split": 1}}, "fewshot.split: expected a string, got 1"),
                          ({"columns": {"question": 1}}, "columns.question: expected a string, got 1"),
                          ({"name": None}, "name: is null")]:
        with pytest.raises(TaskError, match=f"^task spec: {message}"):
            TaskSpec.from_dict(data)
    # code may still pass None, and dataclasses.replace keeps working
    built = TaskSpec(name=None, path="x.jsonl", base_dir=tmp_path)
    assert dataclasses.replace(built, limit=3).base_dir == tmp_path


def test_gate_fields_keep_their_spellings():
    config = parse_config({"tasks": {2024: {"alpha": 0.1}, "mmlu": None}, "defaults": None, "categories": None})
    assert config.tasks == {"2024": config.tasks["2024"], "mmlu": config.default}
    assert config.tasks["2024"].alpha == 0.1 and config.tasks["2024"].max_forgetting == 0.02
    for data, message in [({"defaults": {"alpha": "0.1"}}, "defaults.alpha: expected a number, got '0.1'"),
                          ({"defaults": {"alpha": True}}, "defaults.alpha: expected a number, got True"),
                          ({"defaults": {"alpha": None}}, "defaults.alpha: is null"),
                          ({"holm": None}, "holm: expected true or false, got None"),
                          ({"categories": {"mmlu": None}}, "categories.mmlu: expected a mapping, got None")]:
        with pytest.raises(GateConfigError, match=f"^gate config: {message}"):
            parse_config(data)
    with pytest.raises(GateConfigError, match=r"^command line: alpha: must be in \(0, 1\) \(e.g. 0.05\), got 2.0$"):
        parse_config(None, alpha=2.0)
    with pytest.raises(GateConfigError, match=r"^command line: metric: 'f1' is not one of acc, acc_norm"):
        parse_config({"metric": "acc"}, metric="f1")


def test_cli_names_the_spec_file_line_and_field(tmp_path):
    (tmp_path / "quiz.jsonl").write_text('{"question": "q", "choices": ["a", "b"], "answer": 0}\n')
    (tmp_path / "spec.yaml").write_text("path: quiz.jsonl\nfewshot:\n  k: 1\n  sampler: last\n")
    result = CliRunner().invoke(app, ["eval", "m", "--task", str(tmp_path / "spec.yaml"), "--output", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output == f"error: {tmp_path / 'spec.yaml'} line 4: fewshot.sampler: 'last' is not one of random, first_n\n"


# ---------------------------------------------------------------- Python 3.10

def test_python_3_10_reads_toml_with_tomli(monkeypatch):
    """Without the standard library's tomllib (Python 3.10) the loader takes `tomli`, declared for that version."""
    fake = types.ModuleType("tomli")
    fake.loads, fake.TOMLDecodeError = tomllib.loads, tomllib.TOMLDecodeError
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` now fails as on 3.10
    monkeypatch.setitem(sys.modules, "tomli", fake)
    spec = importlib.util.spec_from_file_location("configio_without_tomllib", ROOT / "forgetscope" / "configio.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module.tomllib is fake
    assert module.read_config(EXAMPLES / "midtraining.toml", ConfigError.of).data["name"] == "midtraining"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "tomli>=1.1; python_version < '3.11'" in pyproject["project"]["dependencies"]
    assert any(d.startswith("pydantic>=2.7") for d in pyproject["project"]["dependencies"])


# ---------------------------------------------------------------- JSON Schemas for editors

def _schemas_module():
    spec = importlib.util.spec_from_file_location("write_schemas", ROOT / "scripts" / "write_schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_json_schemas_in_docs_are_generated_from_the_config_classes():
    module = _schemas_module()
    built = module.build()
    assert sorted(built) == ["gate.schema.json", "sweep.schema.json", "task.schema.json", "train.schema.json"]
    for name, schema in built.items():
        assert (ROOT / "docs" / "schemas" / name).read_text() == module.render(schema), \
            f"docs/schemas/{name} is out of date: run python scripts/write_schemas.py"


def test_json_schemas_accept_the_examples_and_flag_what_forgetscope_refuses():
    jsonschema = pytest.importorskip("jsonschema")
    schemas = {name.split(".")[0]: json.loads((ROOT / "docs" / "schemas" / name).read_text())
               for name in ("train.schema.json", "sweep.schema.json", "task.schema.json", "gate.schema.json")}
    validators = {}
    for kind, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[kind] = jsonschema.Draft202012Validator(schema)
    good = {"train": [yaml.safe_load(RUN), tomllib.loads((EXAMPLES / "midtraining.toml").read_text())],
            "sweep": [yaml.safe_load(SWEEP), {**yaml.safe_load(SWEEP), "base": yaml.safe_load(RUN)}],
            "task": [yaml.safe_load((ROOT / "tests" / "tasks" / "data" / "quiz.yaml").read_text()),
                     {"path": "x.jsonl", "fewshot": 3, "stop": "\n", "kind": "mc"}],
            "gate": [yaml.safe_load(GATE)]}
    for kind, documents in good.items():
        for document in documents:
            assert not list(validators[kind].iter_errors(document)), kind
    run = yaml.safe_load(RUN)
    bad = {"train": {**run, "stages": [{**run["stages"][0], "schedule": "cosin"}]},
           "sweep": {**yaml.safe_load(SWEEP), "base": {**run, "seq_len": 1}},
           "task": {"path": "x.jsonl", "template": None},
           "gate": {"defaults": {"alpha": 2}}}
    for kind, document in bad.items():
        assert list(validators[kind].iter_errors(document)), kind
