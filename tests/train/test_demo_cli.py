"""The README's first command, end to end at quick size: an early-exposure sweep, trained, evaluated, compared."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from forgetscope.cli import app
from forgetscope.train.checkpoints import read_manifest
from tests.helpers import no_model_loads


@pytest.mark.slow
def test_demo_trains_evaluates_and_prints_the_frontier(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--quick", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "frontier" in result.output and "What it shows" in result.output
    frontier = pd.read_csv(tmp_path / "frontier.csv")
    assert list(frontier["run"]) == ["fraction=0.0", "fraction=0.5"]
    assert list(frontier["stages.pretrain.early_exposure.fraction"]) == [0.0, 0.5]
    manifests = {run: read_manifest(tmp_path / "runs" / run) for run in frontier["run"]}
    finals = {run: {c["stage"]: c for c in m["checkpoints"] if c["final"]} for run, m in manifests.items()}
    # compute-matched: both runs see the same facts in total; λ = 0.5 sees half of them in pretraining
    pre0, pre5 = finals["fraction=0.0"]["pretrain"], finals["fraction=0.5"]["pretrain"]
    post0, post5 = finals["fraction=0.0"]["posttrain"], finals["fraction=0.5"]["posttrain"]
    assert "facts" not in pre0["tokens_seen"]
    assert pre5["tokens_seen"]["facts"] * 2 == post0["tokens_seen"]["facts"] == post5["tokens_seen"]["facts"]
    for run, stages in finals.items():
        post, ft = stages["posttrain"], stages["finetune"]
        # fine-tuning on reversal learns reversal and forgets facts (validation loss, per source)
        assert ft["val_loss"]["reverse"] < post["val_loss"]["reverse"]
        assert ft["val_loss"]["facts"] > post["val_loss"]["facts"]
        row = frontier[frontier["run"] == run].iloc[0]
        assert row["target_loss_post"] == pytest.approx(post["val_loss"]["facts"])
        assert row["target_loss_ft"] == pytest.approx(ft["val_loss"]["facts"])
    summary = json.loads((tmp_path / "demo.json").read_text())
    assert summary["quick"] is True and len(summary["frontier"]) == 2 and "overlap" in summary["transitions"]
    # a second run reuses the trained stages and the cached records: no training, no model loading
    no_model_loads(monkeypatch)
    again = runner.invoke(app, ["demo", "--quick", "--output", str(tmp_path)])
    assert again.exit_code == 0, again.output
    assert again.output.count("reusing") == 6 and "tok/s" not in again.output  # 3 stages × 2 runs, no step
    assert json.loads((tmp_path / "demo.json").read_text())["frontier"] == summary["frontier"]
