"""Which training tasks a sweep on Ray runs: shared stages once, before the runs that start from them."""

from __future__ import annotations

from forgetscope.train.sweep_ray import TrainTask, stage_graph


def test_runs_that_share_pretraining_and_posttraining_train_them_in_one_task_first():
    chains = {"lr=1": [("pretrain", "p"), ("posttrain", "q"), ("finetune", "f1")],
              "lr=3": [("pretrain", "p"), ("posttrain", "q"), ("finetune", "f3")]}
    assert stage_graph(chains) == [
        TrainTask("shared posttrain q", "lr=1", "posttrain", []),
        TrainTask("run lr=1", "lr=1", None, ["shared posttrain q"]),
        TrainTask("run lr=3", "lr=3", None, ["shared posttrain q"]),
    ]


def test_a_stage_shared_by_more_runs_than_the_next_is_its_own_task():
    chains = {"a": [("pre", "p"), ("post", "q1"), ("ft", "f1")],
              "b": [("pre", "p"), ("post", "q1"), ("ft", "f2")],
              "c": [("pre", "p"), ("post", "q2"), ("ft", "f3")]}
    assert stage_graph(chains) == [
        TrainTask("shared pre p", "a", "pre", []),
        TrainTask("shared post q1", "a", "post", ["shared pre p"]),
        TrainTask("run a", "a", None, ["shared pre p", "shared post q1"]),
        TrainTask("run b", "b", None, ["shared pre p", "shared post q1"]),
        TrainTask("run c", "c", None, ["shared pre p"]),
    ]


def test_runs_that_share_nothing_train_at_once_and_identical_runs_once():
    apart = {"a": [("pre", "p1")], "b": [("pre", "p2")]}
    assert stage_graph(apart) == [TrainTask("run a", "a", None, []), TrainTask("run b", "b", None, [])]
    same = {"a": [("pre", "p"), ("ft", "f")], "b": [("pre", "p"), ("ft", "f")]}
    assert stage_graph(same) == [TrainTask("shared ft f", "a", "ft", []),
                                 TrainTask("run a", "a", None, ["shared ft f"]),  # only writes its manifest
                                 TrainTask("run b", "b", None, ["shared ft f"])]
