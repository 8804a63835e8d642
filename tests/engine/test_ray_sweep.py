"""A sweep on a real local Ray cluster: shared stages trained once, every stage checkpoint evaluated by
the Ray executor, the frontier computed from the stored rows as a local sweep computes it."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

pytest.importorskip("ray")

from forgetscope.records.store import load_records  # noqa: E402
from forgetscope.train.sweep import EvalConfig, SweepConfig, run_sweep  # noqa: E402
from forgetscope.train.sweep_ray import run_sweep_on_ray  # noqa: E402

from ..helpers import no_model_loads  # noqa: E402
from ..train.test_sweep import base_run  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_a_sweep_on_ray_trains_shared_stages_once_and_evaluates_every_stage(cluster, trace, tiny_tokenizer_dir,
                                                                             tmp_path, monkeypatch):
    sweep = SweepConfig(base=base_run(tiny_tokenizer_dir), grid={"stages.finetune.lr": [1e-3, 3e-3]},
                        eval=EvalConfig(n_items=8, batch_size=16))
    result = run_sweep_on_ray(copy.deepcopy(sweep), tmp_path, address=cluster[0], workers=2, device="cpu",
                              log=None, plot=False)
    first, second = (r.name for r in result.runs)
    assert result.trained == {first: ["pretrain", "posttrain", "finetune"], second: ["finetune"]}
    assert len(list((tmp_path / "stages").glob("pretrain-*"))) == 1
    assert len(list((tmp_path / "stages").glob("finetune-*"))) == 2
    records = load_records([tmp_path / "results"])
    # pretrain, posttrain (shared) and two finetunes, four tasks of 8 items: each row once
    assert records["checkpoint"].nunique() == 4 and len(records) == 4 * 4 * 8
    assert {r.worker for r in result.units} and sum(r.items for r in result.units) == 4 * 4 * 8
    frontier = pd.read_csv(tmp_path / "frontier.csv")
    assert list(frontier["run"]) == [first, second] and frontier["target_acc_ft"].notna().all()
    # a local sweep over the same directory finds everything trained and scored: the same frontier
    no_model_loads(monkeypatch)
    local = run_sweep(copy.deepcopy(sweep), tmp_path, device="cpu", log=None, plot=False)
    assert local.trained == {first: [], second: []}
    pd.testing.assert_frame_equal(local.frontier.reset_index(drop=True), result.frontier.reset_index(drop=True))
