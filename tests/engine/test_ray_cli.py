"""`--executor ray` through the command line, on the test Ray cluster (conftest.py): the figures of a
local run, one error line with exit code 2 for a broken checkpoint, bad executor options."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

pytest.importorskip("ray")

from forgetscope.cli import app  # noqa: E402

from tests.helpers import write_quiz  # noqa: E402

from .conftest import REPO, env_for  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]
runner = CliRunner()


@pytest.fixture
def items_file(tmp_path):
    return write_quiz(tmp_path / "quiz.jsonl", 12)


def test_compare_on_ray_prints_the_figures_of_a_local_compare(cluster, trace, tmp_path, items_file, tiny_llama_dir,
                                                              tiny_llama_dir_b):
    common = [str(tiny_llama_dir), str(tiny_llama_dir_b), "--task", str(items_file), "--n-bootstrap", "50"]
    local = runner.invoke(app, ["compare", *common, "-o", str(tmp_path / "local"), "--json", str(tmp_path / "a.json")])
    assert local.exit_code == 0, local.output
    remote = runner.invoke(app, ["compare", *common, "-o", "file://" + str(tmp_path / "ray"), "--json",
                                 str(tmp_path / "b.json"), "--executor", "ray", "--ray-address", cluster[0]])
    assert remote.exit_code == 0, remote.output
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())
    assert "where the units ran" in remote.output and "pid" in remote.output
    assert len(list((tmp_path / "ray" / "orders").glob("*.json"))) == 1  # the order, recorded at the URL


def test_a_broken_checkpoint_on_ray_is_one_error_line_and_exit_code_2(cluster, trace, tmp_path, items_file,
                                                                      nan_llama_dir):
    result = subprocess.run(
        [sys.executable, "-m", "forgetscope.cli", "eval", str(nan_llama_dir), "--task", str(items_file),
         "-o", str(tmp_path), "--executor", "ray", "--ray-address", cluster[0]],
        env=env_for(trace), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: checkpoint") and "non-finite" in errors[0], errors
    tags = [p.name.split(".")[0] for p in trace.glob("*.start")]
    assert len(tags) == len(set(tags)) == 1  # one unit (12 items), tried once


@pytest.mark.parametrize("args,fragment", [
    (["--ray-address", "auto"], "--ray-address and --ray-workers are options of --executor ray"),
    (["--executor", "dask"], "unknown executor 'dask'; choose one of: local, ray"),
    (["--executor", "ray", "--ray-workers", "0"], "--ray-workers must be at least 1"),
])
def test_bad_executor_options_are_one_clear_line(tmp_path, items_file, tiny_llama_dir, args, fragment):
    result = runner.invoke(app, ["eval", str(tiny_llama_dir), "--task", str(items_file), "-o", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output


def test_sequence_on_ray_gives_the_tables_of_a_local_sequence(cluster, trace, tmp_path, items_file, tiny_llama_dir,
                                                              tiny_gpt2_dir,
                                                              tiny_llama_dir_b):
    common = ["sequence", str(tiny_llama_dir), str(tiny_llama_dir_b), str(tiny_gpt2_dir), "--task", str(items_file),
              "--n-bootstrap", "20"]
    local = runner.invoke(app, [*common, "-o", str(tmp_path / "local"), "--json", str(tmp_path / "a.json")])
    assert local.exit_code == 0, local.output
    remote = runner.invoke(app, [*common, "-o", str(tmp_path / "ray"), "--json", str(tmp_path / "b.json"),
                                 "--executor", "ray", "--ray-address", cluster[0], "--ray-workers", "2"])
    assert remote.exit_code == 0, remote.output
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())
    starts = list(trace.glob("*.start"))
    assert len(starts) == 3  # three checkpoints of one unit each
