"""Stage plans: budgets, early-exposure accounting, midtraining, and the hashes that decide sharing."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from forgetscope.train.config import parse_run_config
from forgetscope.train.fields import ConfigError
from forgetscope.train.plan import resolve_plans
from forgetscope.train.sweep import set_path

RUN = {
    "seed": 1,
    "seq_len": 16,
    "model": {"hidden": 32, "layers": 1, "heads": 2, "context": 32},
    "sources": {name: {"type": "synthetic", "docs": 10} for name in ("general", "arithmetic", "reverse")},
    "stages": [
        {"name": "pretrain", "kind": "pretrain", "mixture": {"general": 1}, "steps": 20, "batch_size": 8,
         "checkpoint_every": 5,
         "early_exposure": {"source": "arithmetic", "fraction": 0.5, "mode": "compute_matched"}},
        {"name": "posttrain", "kind": "posttrain", "mixture": {"arithmetic": 1}, "steps": 10, "batch_size": 4,
         "replay": {"source": "general", "fraction": 0.25}},
        {"name": "finetune", "kind": "finetune", "mixture": {"reverse": 1}, "steps": 6, "batch_size": 4, "lr": 1e-3},
    ],
}
ROWS = {"general": 500, "arithmetic": 100, "reverse": 50}
FPS = {"general": "g", "arithmetic": "a", "reverse": "r"}


def plans_for(changes: dict | None = None, rows: dict | None = None):
    data = copy.deepcopy(RUN)
    for path, value in (changes or {}).items():
        set_path(data, path, value)
    return resolve_plans(parse_run_config(data), rows or ROWS, FPS, "tok", "init")


def target_rows(plan, source: str = "arithmetic") -> np.ndarray:
    return plan.rows[plan.slots == plan.names.index(source)]


def test_compute_matched_uses_every_target_example_exactly_once() -> None:
    pre, post, _ = plans_for()
    # T = post-training steps × batch × (1 − replay) = 10·4·0.75 = 30; E = round(0.5·30) = 15
    assert pre.fixed == {"arithmetic": 15} and post.fixed == {"arithmetic": 15}
    assert pre.steps == 20 + 2  # ceil(15 / 8) extra steps carry the moved sequences
    assert post.steps == 5  # ceil(10 · 15 / 30): the post-training budget shrinks by what moved
    early, late = target_rows(pre), target_rows(post)
    assert len(early) == 15 and len(late) == 15
    assert len(set(early.tolist())) == 15 and len(set(late.tolist())) == 15  # each once within a stage
    assert not set(early.tolist()) & set(late.tolist())  # and never in both
    pool = pre.pool
    assert pool["pool_size"] == 30 and pool["target_total"] == 30 and post.pool["start"] == 15
    # the union is exactly the pool: the first 30 rows of the seeded permutation of the source
    from forgetscope.train.mixture import seed_from

    order = np.random.Generator(np.random.PCG64(seed_from(1, "pool", "arithmetic"))).permutation(100)
    assert sorted(early.tolist() + late.tolist()) == sorted(order[:30].tolist())
    # general fills pretraining's 22·8 slots around the 15 moved sequences; replay fills post-training's 5·4
    assert pre.sequences_seen() == {"arithmetic": 15, "general": 22 * 8 - 15}
    assert post.sequences_seen() == {"arithmetic": 15, "general": 5}
    # λ = 0 sees the same 30 target sequences, all in post-training: the same target budget, and the
    # same compute up to whole batches (160 + 40 sequences vs 176 + 20)
    base_pre, base_post, _ = plans_for({"stages.pretrain.early_exposure.fraction": 0.0})
    assert base_pre.steps == 20 and base_post.steps == 10 and base_pre.fixed == {"arithmetic": 0}
    assert base_post.sequences_seen() == {"arithmetic": 30, "general": 10}


def test_additive_keeps_post_training_and_adds_fresh_examples() -> None:
    pre, post, _ = plans_for({"stages.pretrain.early_exposure.mode": "additive"})
    assert pre.fixed == {"arithmetic": 15} and post.fixed == {"arithmetic": 30} and post.steps == 10
    early, late = set(target_rows(pre).tolist()), set(target_rows(post).tolist())
    assert len(early) == 15 and len(late) == 30 and not early & late


def test_without_replay_whole_batches_move() -> None:
    pre, post, _ = plans_for({"stages.posttrain.replay": None, "stages.pretrain.early_exposure.fraction": 0.3})
    # T = 40 sequences in 10 batches of 4; λ·T = 12 = 3 whole batches
    assert pre.fixed == {"arithmetic": 12} and post.fixed == {"arithmetic": 28} and post.steps == 7
    assert post.sequences_seen() == {"arithmetic": 28}


def test_pool_larger_than_the_source_is_an_error_naming_its_docs() -> None:
    with pytest.raises(ConfigError, match=r"sources\.arithmetic\.docs: early exposure needs 30 sequences"):
        plans_for(rows={**ROWS, "arithmetic": 20})


def test_midtraining_changes_the_mixture_at_the_start_step() -> None:
    pre, *_ = plans_for({"stages.pretrain.early_exposure": None,
                         "stages.pretrain.midtraining": {"source": "reverse", "weight": 0.25, "start": 0.5}})
    reverse = pre.names.index("reverse")
    per_step = (pre.slots == reverse).sum(1)
    assert per_step[:10].tolist() == [0] * 10 and per_step[10:].tolist() == [2] * 10  # 0.25 of 8 from step 10


def test_tokens_budget_and_checkpoint_steps() -> None:
    pre, *_ = plans_for({"stages.pretrain.early_exposure": None, "stages.pretrain.steps": None,
                         "stages.pretrain.tokens": 8 * 16 * 7 + 5})
    assert pre.steps == 7 and pre.checkpoint_steps == [5, 7]


def test_start_from_an_intermediate_checkpoint_must_exist() -> None:
    _, post, _ = plans_for({"stages.posttrain.start_from": "pretrain/step-10"})
    assert post.parent == ("pretrain", 10)
    with pytest.raises(ConfigError, match=r"stages\[1\]\.start_from: 'pretrain/step-7' is not one of "
                                          r"pretrain/step-5, pretrain/step-10, pretrain/step-15, pretrain/step-20"):
        plans_for({"stages.posttrain.start_from": "pretrain/step-7"})


def test_hashes_change_exactly_where_the_inputs_do() -> None:
    base = [p.hash for p in plans_for()]
    assert base == [p.hash for p in plans_for()]  # deterministic
    lr = [p.hash for p in plans_for({"stages.finetune.lr": 3e-3})]
    assert lr[:2] == base[:2] and lr[2] != base[2]  # fine-tuning LR: only fine-tuning retrains
    replay = [p.hash for p in plans_for({"stages.posttrain.replay.fraction": 0.5})]
    assert replay != base and replay[0] != base[0]  # λ·T changed, so the pretraining data changed too
    no_exposure = {"stages.pretrain.early_exposure.fraction": 0.0}
    shared = [p.hash for p in plans_for({**no_exposure, "stages.posttrain.replay.fraction": 0.5})]
    assert shared[0] == plans_for(no_exposure)[0].hash  # λ = 0: pretraining does not depend on post-training
    additive = plans_for({**no_exposure, "stages.pretrain.early_exposure.mode": "additive"})
    assert additive[0].hash == plans_for(no_exposure)[0].hash
    assert all(a != b for a, b in zip(base, [p.hash for p in plans_for({"seed": 2})]))
    start = [p.hash for p in plans_for({"stages.posttrain.start_from": "pretrain/step-10"})]
    assert start[0] == base[0] and start[1] != base[1] and start[2] != base[2]
