"""The README's first command, end to end at quick size: train, fine-tune, evaluate, compare."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app


@pytest.mark.slow
def test_demo_shows_real_forgetting_and_learning(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--quick", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "compare.json").read_text())
    overall = figures["overall"]
    assert overall["n_10"] > 0 and overall["n_01"] > 0  # real 1→0 and 0→1 transitions
    assert figures["tasks"]["synth_facts_mc"]["n_10"] >= 5
    assert figures["tasks"]["synth_reverse_mc"]["n_01"] >= 5
    assert f"{overall['n_10']} were forgotten" in result.output
    # a second run reuses the checkpoints and the cached records: no training, no model loading
    monkeypatch.setattr("forgetscope.backends.create_backend", lambda *a, **k: pytest.fail("model loaded"))
    again = runner.invoke(app, ["demo", "--quick", "--output", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert "reusing checkpoints" in again.output
    assert json.loads((tmp_path / "compare.json").read_text())["overall"] == overall
