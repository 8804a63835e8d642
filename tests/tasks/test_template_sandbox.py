"""Jinja templates come from task files: they render sandboxed and cannot reach Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.tasks import TaskError
from forgetscope.tasks.formats import render_template

ROW = {"question": "What is 2 + 2?", "choices": ["3", "4", "5"], "answer": 1}


@pytest.mark.parametrize("template", [
    "{{ cycler.__init__.__globals__.os.makedirs('X') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__ }}",
    "{{ choices.append('6') }}",  # immutable sandbox: no changing the row
    "{{ range(10**9) | list | length }}",
])
def test_template_that_reaches_python_is_a_task_error(template: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TaskError, match="not allowed: .*Jinja sandbox"):
        render_template(template, dict(ROW, choices=list(ROW["choices"])))
    assert not (tmp_path / "X").exists()


def test_sandbox_keeps_ordinary_jinja_working() -> None:
    text = render_template("{{ question | upper }} {% for c in choices %}{{ loop.index }}={{ c }} {% endfor %}", ROW)
    assert text == "WHAT IS 2 + 2? 1=3 2=4 3=5 "
    assert render_template("{{ choices | join(', ') }} / {{ '%s!' % question }}", ROW) == "3, 4, 5 / What is 2 + 2?!"


def test_eval_with_a_malicious_template_runs_nothing_and_exits_2(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps(ROW) + "\n")
    spec = tmp_path / "quiz.yaml"
    target = tmp_path / "PWNED"
    spec.write_text(f"path: {data}\ntemplate: \"{{{{ cycler.__init__.__globals__.os.makedirs('{target}') }}}}\"\n")
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "no-model"), "--task", str(spec),
                                      "--output", str(tmp_path / "res")])
    assert result.exit_code == 2, result.output
    assert not target.exists()
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "not allowed" in lines[0]
    assert "items.jsonl" in lines[0] and "Traceback" not in result.output
