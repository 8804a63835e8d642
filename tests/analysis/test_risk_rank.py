"""`forgetscope risk`: the items of one checkpoint ranked by forgetting risk."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from forgetscope.analysis.risk import rank_items
from forgetscope.cli import app
from forgetscope.records.store import save_records
from test_item_figures import side  # the same records (tests/analysis is on sys.path, as pytest puts it)


def test_right_items_come_first_lowest_margin_first():
    ranked = rank_items(side(0))
    # right before: i1 (margin ln 1.5), i0 (ln 4), i3 (ln 9), then the generative items (no margin), then wrong i2
    assert ranked["item_id"].tolist() == ["i1", "i0", "i3", "g0", "g1", "i2"]
    assert ranked["risk"][0] == pytest.approx(-math.log(1.5))
    assert math.isnan(ranked["gold_margin"][3])


def test_history_gives_forgetting_events_and_lateness():
    # i0 is right, wrong, right over (side 0, side 1, side 0): one forgetting event, stays right from position 2
    ranked = rank_items(side(0), history=[side(0), side(1)]).set_index("item_id")
    assert ranked.loc["i0", "forgetting_events"] == 1 and ranked.loc["i0", "learning_lateness"] == 2
    assert ranked.loc["i1", "forgetting_events"] == 0 and ranked.loc["i1", "learning_lateness"] == 0
    # i2 is wrong, right, wrong: one forgetting event, and wrong at the end: lateness T = 3
    assert ranked.loc["i2", "forgetting_events"] == 1 and ranked.loc["i2", "learning_lateness"] == 3


def test_a_history_checkpoint_missing_items_is_refused():
    partial = side(0).iloc[:3]
    with pytest.raises(ValueError, match="history checkpoint #1 has no record of task 'quiz' item 'i3'"):
        rank_items(side(0), history=[partial])


def test_repeats_use_the_first_repeat():
    both = pd.concat([side(0).assign(repeat=1), side(1).assign(repeat=0)])
    assert rank_items(both)["item_id"].tolist() == rank_items(side(1))["item_id"].tolist()


def test_cli_lists_and_writes_the_ranking(tmp_path):
    records = save_records(side(0), tmp_path / "a.parquet")
    out = tmp_path / "risk.csv"
    result = CliRunner().invoke(app, ["risk", str(records), "--history", str(records), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 of 6 items right" in result.output
    assert result.output.index("i1") < result.output.index("i0") < result.output.index("i3")
    written = pd.read_csv(out)
    assert written["item_id"].tolist() == ["i1", "i0", "i3", "g0", "g1", "i2"]
    assert list(written.columns)[-2:] == ["forgetting_events", "learning_lateness"]
    bad = CliRunner().invoke(app, ["risk", str(records), "--metric", "nope"])
    assert bad.exit_code == 2 and "error: unknown metric" in bad.output
