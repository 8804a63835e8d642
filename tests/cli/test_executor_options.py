"""--executor, --ray-address and --ray-workers: one option group, the same in every command that takes it,
refused in one line before anything runs; a lost Ray worker is exit code 1, bad input 2."""

from __future__ import annotations

import inspect
import typing

import typer.main
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.cli.common import exit_code, input_errors
from forgetscope.cli.options import EXECUTOR, EXECUTOR_PANEL, ExecutorChoice, ScoringOptions
from forgetscope.engine.executor import ExecutorError, WorkerLostError

runner = CliRunner()
EXECUTOR_COMMANDS = ["eval", "compare", "sequence", "sweep"]


def _params(name: str) -> dict:
    return {p.name: p for p in typer.main.get_command(app).commands[name].params if p.param_type_name == "option"}


def test_eval_compare_sequence_and_sweep_take_the_same_executor_options_in_their_panel():
    seen = {}
    for name in EXECUTOR_COMMANDS:
        params = _params(name)
        assert set(EXECUTOR.names) <= set(params), name
        seen[name] = {k: (tuple(params[k].opts), params[k].default, params[k].help, params[k].rich_help_panel)
                      for k in EXECUTOR.names}
    assert seen["eval"]["executor"] == (("--executor",), "local", seen["eval"]["executor"][2], EXECUTOR_PANEL)
    for name, options in seen.items():
        assert options == seen["eval"], f"`{name}` differs from `eval` in the executor options"


def test_commands_that_score_alone_have_no_executor_options():
    for name in ("gate", "noise", "risk", "train"):
        assert not set(EXECUTOR.names) & set(_params(name)), name


def test_output_of_the_cluster_commands_keeps_a_url_as_text():
    """A Path would turn s3://bucket/results into s3:/bucket/results."""
    from forgetscope.cli import report, scoring

    for command in (scoring.eval_command, scoring.compare, report.sequence):
        output = inspect.signature(command).parameters["output"]
        assert typing.get_args(output.annotation)[0] is str and output.default == "forgetscope-results", command


def test_executor_choice_comes_from_the_group_and_defaults_to_local():
    assert ScoringOptions({"executor": "ray", "ray_address": "auto", "ray_workers": 2}).executor() == \
        ExecutorChoice("ray", "auto", 2)
    assert ScoringOptions({"batch_size": 4}).executor() == ExecutorChoice("local", None, None)


def test_a_lost_worker_exits_1_and_bad_executor_options_2():
    errors = input_errors()
    assert ExecutorError in errors and WorkerLostError in errors
    assert exit_code(WorkerLostError("unit lost its worker 4 times")) == 1
    assert exit_code(ExecutorError("unknown executor")) == 2


def test_sweep_refuses_bad_executor_options_before_reading_its_config(tmp_path):
    missing = str(tmp_path / "no-such-sweep.yaml")
    for args, fragment in ((["--ray-workers", "2"], "--ray-address and --ray-workers are options of --executor ray"),
                           (["--executor", "dask"], "unknown executor 'dask'; choose one of: local, ray")):
        result = runner.invoke(app, ["sweep", missing, *args])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines == [f"error: {fragment}"], lines
