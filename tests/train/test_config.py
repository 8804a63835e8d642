"""Run configs: YAML/TOML loading, typed fields, and one-line errors that name the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.train.config import RunConfig, load_run_config, parse_run_config
from forgetscope.train.fields import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BASE = {
    "name": "t",
    "seq_len": 32,
    "model": {"hidden": 32, "layers": 2, "heads": 2, "context": 64},
    "sources": {"general": {"type": "synthetic", "docs": 100}, "arithmetic": {"type": "synthetic", "docs": 100}},
    "stages": [
        {"name": "pretrain", "kind": "pretrain", "mixture": {"general": 1}, "steps": 10},
        {"name": "posttrain", "kind": "posttrain", "mixture": {"arithmetic": 1}, "steps": 5, "schedule": "linear"},
    ],
}


def with_change(path: str, value) -> dict:
    data = copy.deepcopy(BASE)
    from forgetscope.train.sweep import set_path

    set_path(data, path, value)
    return data


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_run_config(data)
    return str(info.value)


def test_parses_types_and_defaults() -> None:
    config = parse_run_config(copy.deepcopy(BASE))
    assert isinstance(config, RunConfig)
    post = config.stage("posttrain")
    assert post.schedule == "linear" and post.betas == (0.9, 0.95) and post.batch_size == 16
    assert config.model.hidden == 32 and config.model.arch == "llama"
    # YAML 1.1 reads 3e-4 (no dot) as a string; a float field accepts it
    assert parse_run_config(with_change("stages.pretrain.lr", "3e-4")).stages[0].lr == 3e-4


@pytest.mark.parametrize("path, value, expected", [
    ("stages.posttrain.schedule", "cosin", "stages[1].schedule: 'cosin' is not one of cosine, linear, constant"),
    ("stages.pretrain.kind", "pre", "stages[0].kind: 'pre' is not one of pretrain, posttrain, finetune"),
    ("model.arch", "gpt3", "model.arch: 'gpt3' is not one of llama, gpt2"),
    ("stages.pretrain.lrr", 0.1, "stages[0].lrr: unknown field; known: name, kind, mixture"),
    ("stages.pretrain.mixture", {"web": 1.0}, "stages[0].mixture.web: 'web' is not one of general, arithmetic"),
    ("stages.pretrain.steps", "ten", "stages[0].steps: expected an integer, got 'ten'"),
    ("stages.pretrain.betas", [0.9], "stages[0].betas: expected 2 values, got 1"),
    ("model.heads", 3, "model.heads: 3 does not divide model.hidden (32)"),
    ("seq_len", 128, "seq_len: 128 exceeds model.context (64)"),
    ("sources.general.type", "csv", "sources.general.type: 'csv' is not one of synthetic, text, jsonl, hf"),
    ("sources.general.path", "poems", "sources.general.path: 'poems' is not one of general, facts, arithmetic, reverse"),
    ("stages.posttrain.start_from", "finetune", "stages[1].start_from: 'finetune' is not one of the earlier stages (pretrain)"),
    ("stages.posttrain.start_from", "pretrain/400", "stages[1].start_from: 'pretrain/400': write STAGE or STAGE/step-N"),
    ("stages.posttrain.replay", {"source": "general", "fraction": 1.0}, "stages[1].replay.fraction: must be in [0, 1), got 1.0"),
    ("stages.posttrain.replay", {"fraction": 0.1}, "stages[1].replay.source: is required"),
    ("stages.pretrain.early_exposure", {"source": "arithmetic", "fraction": 1.0},
     "stages[0].early_exposure.fraction: must be in [0, 1), got 1.0"),
    ("stages.pretrain.early_exposure", {"source": "general", "fraction": 0.5},
     "stages[0].early_exposure.source: 'general' is also in this stage's mixture"),
    ("stages.pretrain.early_exposure", {"source": "arithmetic", "fraction": 0.5, "mode": "matched"},
     "stages[0].early_exposure.mode: 'matched' is not one of compute_matched, additive"),
    ("stages.pretrain.midtraining", {"source": "arithmetic", "weight": 0.3, "start": 0.5, "start_step": 3},
     "stages[0].midtraining.start: give exactly one of start and start_step"),
    ("stages.pretrain.midtraining", {"source": "arithmetic", "weight": 0.3, "start": 0.5, "shape": "ramp"},
     "stages[0].midtraining.shape: 'ramp' is not one of step, linear"),
])
def test_errors_name_the_field_and_the_allowed_values(path, value, expected) -> None:
    assert error_of(with_change(path, value)).startswith(expected)


def test_structural_errors() -> None:
    data = copy.deepcopy(BASE)
    del data["stages"][0]["kind"]
    assert error_of(data) == "stages[0].kind: is required"
    data = with_change("stages.posttrain.name", "pretrain")
    assert error_of(data).startswith("stages[0].name: 'pretrain' is used by more than one stage")
    data = with_change("stages.pretrain.tokens", 1000)
    assert error_of(data) == "stages[0].steps: give exactly one of steps and tokens"


def test_early_exposure_target_defaults_to_next_posttrain_stage() -> None:
    data = with_change("stages.pretrain.early_exposure", {"source": "arithmetic", "fraction": 0.5})
    assert parse_run_config(data).stages[0].early_exposure.target_stage == "posttrain"
    data["stages"][1]["kind"] = "finetune"
    assert "no later posttrain stage" in error_of(data)


def test_yaml_and_toml_give_the_same_config(tmp_path: Path) -> None:
    import tomllib  # noqa: F401 - stdlib on 3.11

    (tmp_path / "run.yaml").write_text(yaml.safe_dump(BASE))
    toml = """name = "t"\nseq_len = 32\n[model]\nhidden = 32\nlayers = 2\nheads = 2\ncontext = 64
[sources.general]\ntype = "synthetic"\ndocs = 100\n[sources.arithmetic]\ntype = "synthetic"\ndocs = 100
[[stages]]\nname = "pretrain"\nkind = "pretrain"\nmixture = { general = 1 }\nsteps = 10
[[stages]]\nname = "posttrain"\nkind = "posttrain"\nmixture = { arithmetic = 1 }\nsteps = 5\nschedule = "linear"\n"""
    (tmp_path / "run.toml").write_text(toml)
    assert load_run_config(tmp_path / "run.yaml") == load_run_config(tmp_path / "run.toml")
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(ConfigError, match="a config is a .yaml, .yml or .toml file"):
        load_run_config(tmp_path / "run.json")


def test_examples_parse() -> None:
    from forgetscope.train.sweep import expand, load_sweep_config

    for name in ("early_exposure.yaml", "midtraining.toml"):
        load_run_config(EXAMPLES / name)
    runs = expand(load_sweep_config(EXAMPLES / "sweep_early_exposure.yaml"))
    assert len(runs) == 3 * 2 * 2 * 2
    assert runs[1].config.stage("finetune").lr == 3e-3 and runs[1].config.stage("pretrain").early_exposure.fraction == 0


def test_cli_reports_config_errors_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    text = yaml.safe_dump(with_change("stages.posttrain.schedule", "cosin"))
    line = text.splitlines().index("  schedule: cosin") + 1
    (tmp_path / "bad.yaml").write_text(text)
    result = CliRunner().invoke(app, ["train", str(tmp_path / "bad.yaml"), "--output", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert result.output == (f"error: {tmp_path / 'bad.yaml'} line {line}: "
                             "stages[1].schedule: 'cosin' is not one of cosine, linear, constant\n")
    assert not (tmp_path / "run").exists()
