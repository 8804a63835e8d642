"""Sweeps: grid expansion, stage sharing by hash, evaluation, the frontier table and plot."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from forgetscope.train.fields import ConfigError
from forgetscope.train.sweep import EvalConfig, SweepConfig, expand, set_path
from tests.helpers import no_model_loads


def base_run(tokenizer_dir: Path | str = "tok") -> dict:
    return {
        "seed": 0, "seq_len": 32, "val_sequences": 4,
        "model": {"hidden": 32, "layers": 2, "heads": 2, "context": 64},
        "tokenizer": {"path": str(tokenizer_dir)},
        "sources": {"general": {"type": "synthetic", "docs": 200},
                    "facts": {"type": "synthetic", "docs": 300, "options": {"n_countries": 6, "n_people": 3}},
                    "reverse": {"type": "synthetic", "docs": 150}},
        "stages": [
            {"name": "pretrain", "kind": "pretrain", "mixture": {"general": 1}, "steps": 8, "batch_size": 8,
             "lr": 3e-3, "early_exposure": {"source": "facts", "fraction": 0.25}},
            {"name": "posttrain", "kind": "posttrain", "mixture": {"facts": 1}, "steps": 8, "batch_size": 8, "lr": 3e-3},
            {"name": "finetune", "kind": "finetune", "mixture": {"reverse": 1}, "steps": 4, "batch_size": 8, "lr": 1e-3},
        ],
    }


def test_set_path_addresses_stages_by_name_or_index() -> None:
    data = base_run()
    set_path(data, "stages.finetune.lr", 0.5)
    set_path(data, "stages.1.replay.fraction", 0.1)  # creates the missing mapping
    set_path(data, "seed", 7)
    assert data["stages"][2]["lr"] == 0.5 and data["stages"][1]["replay"] == {"fraction": 0.1} and data["seed"] == 7
    with pytest.raises(ConfigError, match=r"grid\.stages\.midtrain\.lr: stages has no element 'midtrain' "
                                          r"\(names: pretrain, posttrain, finetune\)"):
        set_path(data, "stages.midtrain.lr", 1.0)


def test_expand_is_the_cartesian_product_with_readable_names() -> None:
    sweep = SweepConfig(base=base_run(), grid={"stages.pretrain.early_exposure.fraction": [0.0, 0.5],
                                               "stages.finetune.lr": [1e-3, 3e-3], "seed": [0]})
    runs = expand(sweep)
    assert [r.name for r in runs] == ["fraction=0.0_lr=0.001_seed=0", "fraction=0.0_lr=0.003_seed=0",
                                      "fraction=0.5_lr=0.001_seed=0", "fraction=0.5_lr=0.003_seed=0"]
    assert runs[3].config.stage("pretrain").early_exposure.fraction == 0.5 and runs[3].config.stage("finetune").lr == 3e-3
    assert runs[0].config.name == runs[0].name
    bad = SweepConfig(base=base_run(), grid={"stages.posttrain.replay.fraction": [0.1]})
    with pytest.raises(ConfigError, match=r"stages\[1\]\.replay\.source: is required \(in run fraction=0\.1\)"):
        expand(bad)
    with pytest.raises(ConfigError, match=r"grid\.seed: needs a non-empty list"):
        expand(SweepConfig(base=base_run(), grid={"seed": []}))


@pytest.mark.slow
def test_sweep_shares_stages_evaluates_and_writes_the_frontier(tiny_tokenizer_dir: Path, tmp_path: Path,
                                                                monkeypatch) -> None:
    import pandas as pd

    from forgetscope.analysis import compare_records
    from forgetscope.train.sweep import run_sweep

    sweep = SweepConfig(base=base_run(tiny_tokenizer_dir), grid={"stages.finetune.lr": [1e-3, 3e-3]},
                        eval=EvalConfig(n_items=12, batch_size=16))
    result = run_sweep(copy.deepcopy(sweep), tmp_path, device="cpu", log=None)
    first, second = (r.name for r in result.runs)
    # two runs that differ only in fine-tuning LR train pretraining and post-training once
    assert result.trained == {first: ["pretrain", "posttrain", "finetune"], second: ["finetune"]}
    assert len(list((tmp_path / "stages").glob("pretrain-*"))) == 1
    assert len(list((tmp_path / "stages").glob("finetune-*"))) == 2
    frontier = pd.read_csv(tmp_path / "frontier.csv")
    assert list(frontier["run"]) == [first, second] and (tmp_path / "frontier.png").stat().st_size > 1000
    # default tasks: the post-training source's (facts) and the fine-tuning source's (reverse)
    evaluation = result.evaluations[first]
    assert evaluation["target_tasks"] == ["synth_facts_mc", "synth_facts_gen"]
    assert evaluation["downstream_tasks"] == ["synth_reverse_mc", "synth_reverse_gen"]
    for run, row in zip(result.runs, frontier.itertuples()):
        ev = result.evaluations[run.name]
        post, ft = ev["post"], ev["finetune"]
        target = ev["target_tasks"]
        assert row.target_acc_post == pytest.approx(post[post["task"].isin(target)]["correct"].mean())
        assert row.target_acc_ft == pytest.approx(ft[ft["task"].isin(target)]["correct"].mean())
        comparison = compare_records(post[post["task"].isin(target)], ft[ft["task"].isin(target)], n_bootstrap=0)
        assert row.F_true == pytest.approx(comparison.overall["forgetting_true"].iloc[0])
        assert row.n_forgotten == comparison.overall["n_10"].iloc[0]
    assert frontier["target_acc_post"].nunique() == 1  # the shared post-trained checkpoint, evaluated once
    # a second sweep reuses everything: no training, no model loaded
    no_model_loads(monkeypatch)
    again = run_sweep(copy.deepcopy(sweep), tmp_path, device="cpu", log=None, plot=False)
    assert again.trained == {first: [], second: []}
    pd.testing.assert_frame_equal(again.frontier.reset_index(drop=True), result.frontier.reset_index(drop=True))
