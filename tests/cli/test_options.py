"""Every command that scores a model offers the same scoring options, and they reach EvalSettings intact."""

from __future__ import annotations

import dataclasses

import pytest
import typer.main

from forgetscope.cli import app
from forgetscope.cli.options import MODEL, SAMPLING, TASKS, VLLM, ScoringOptions, with_groups
from forgetscope.engine.evaluate import EvalSettings

SCORING_COMMANDS = ["eval", "compare", "gate", "noise", "sequence"]


def options_of(name: str) -> dict[str, tuple]:
    """Option name -> (flags, default, help) of one command, as the command line sees it."""
    command = typer.main.get_command(app).commands[name]
    return {p.name: (tuple(sorted(p.opts + p.secondary_opts)), p.default, p.help)
            for p in command.params if p.param_type_name == "option"}


@pytest.mark.parametrize("group", [MODEL, VLLM, TASKS], ids=lambda g: f"{g.name}-options")
def test_every_scoring_command_offers_the_same_group(group):
    seen = {name: {k: v for k, v in options_of(name).items() if k in group.names} for name in SCORING_COMMANDS}
    reference = seen["eval"]
    assert sorted(reference) == sorted(group.names)
    for name, options in seen.items():
        assert options == reference, f"`{name}` differs from `eval` in the {group.name} options"


def test_sampling_options_everywhere_but_noise():
    """noise measures greedy decisions once: it has no sampling options, the others all the same ones."""
    seen = {name: {k: v for k, v in options_of(name).items() if k in SAMPLING.names} for name in SCORING_COMMANDS}
    assert seen.pop("noise") == {}
    for name, options in seen.items():
        assert options == seen["eval"] and sorted(options) == sorted(SAMPLING.names), name


def test_gate_and_sequence_take_the_vllm_engine_options():
    """They had drifted away from eval: `gate --backend vllm` could not set the context length."""
    for name in ("gate", "sequence"):
        flags = {flag for flags, _, _ in options_of(name).values() for flag in flags}
        assert {"--max-model-len", "--gpu-memory-utilization", "--tensor-parallel-size"} <= flags


def test_every_group_option_is_an_eval_setting_or_a_task_option():
    """settings() passes the groups by name: a misnamed option would be dropped silently."""
    from forgetscope.tasks import TaskOptions

    settings = {f.name for f in dataclasses.fields(EvalSettings)}
    assert set(MODEL.names + VLLM.names + SAMPLING.names) <= settings
    from forgetscope.cli.options import CHAT_OPTIONS

    # the chat options become TaskOptions.prompt (ScoringOptions.prompt_style); every other one is a field
    assert set(CHAT_OPTIONS) <= set(TASKS.names) and "prompt" in {f.name for f in dataclasses.fields(TaskOptions)}
    assert set(TASKS.names) - set(CHAT_OPTIONS) <= {f.name for f in dataclasses.fields(TaskOptions)}


def test_settings_come_from_the_options_by_name():
    values = {p.name: p.default for group in (MODEL, VLLM, SAMPLING, TASKS) for p in group.parameters}
    values.update(batch_size=3, dtype="bfloat16", max_model_len=512, temperature=0.7, repeats=2, limit=5)
    settings = ScoringOptions(values).settings(seed=11)
    assert (settings.batch_size, settings.dtype, settings.max_model_len, settings.temperature, settings.repeats,
            settings.seed) == (3, "bfloat16", 512, 0.7, 2, 11)
    # the command line's device is auto (resolved when scoring); the library's default stays cpu
    assert settings == EvalSettings(batch_size=3, dtype="bfloat16", max_model_len=512, temperature=0.7, repeats=2,
                                    seed=11, device="auto")


def test_a_command_cannot_declare_a_group_option_again():
    def command(batch_size: int = 1, *, options: ScoringOptions) -> None:
        """Declares --batch-size itself."""

    with pytest.raises(TypeError, match="batch_size declared twice"):
        with_groups(MODEL)(command)


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "forgetscope.cli", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "compare" in done.stdout and "gate" in done.stdout
