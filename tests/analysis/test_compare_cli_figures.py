"""`forgetscope compare` writes the per-item figures to its JSON and refuses broken scores in one line."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.records.store import save_records

from test_item_figures import side  # the same records (tests/analysis is on sys.path, as pytest puts it)


def test_cli_compare_writes_the_figures_and_keeps_the_table(tmp_path):
    a = save_records(side(0), tmp_path / "a.parquet")
    b = save_records(side(1), tmp_path / "b.parquet")
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["compare", str(a), str(b), "--json", str(out), "--n-bootstrap", "100"])
    assert result.exit_code == 0, result.output
    assert "kl" not in result.output.lower() and "risk" not in result.output.lower()
    data = json.loads(out.read_text())
    quiz = data["tasks"]["quiz"]
    assert quiz["kl_mean"] == pytest.approx((0.6 * math.log(4) + 0.4 * math.log(7 / 3)) / 4)
    assert quiz["risk_auroc"] == 0.5 and quiz["mcnemar_midp"] == 1.0
    assert data["overall"]["acc_change"] == pytest.approx(-1 / 6)
    from forgetscope.report.story import comparison_sentence

    # one plain sentence above the table, from the overall row
    sentence = comparison_sentence(data["overall"], "B")
    lines = result.output.splitlines()
    assert sentence.startswith("B forgot ") and sentence in lines
    assert lines.index(sentence) < next(i for i, line in enumerate(lines) if "A = " in line)


def test_cli_compare_refuses_a_broken_gold_in_one_line(tmp_path):
    broken = side(1)
    broken.loc[0, "gold"] = "5"
    a = save_records(side(0), tmp_path / "a.parquet")
    b = save_records(broken, tmp_path / "b.parquet")
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 2
    assert "error:" in result.output and "item 'i0'" in result.output and "Traceback" not in result.output
