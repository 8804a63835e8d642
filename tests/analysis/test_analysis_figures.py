"""Transition figures against tables computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forgetscope.analysis import compare_records, pair_records, transition_summary
from forgetscope.analysis.chance import chance_forgetting, max_forgetting


def one_row(frame, **where):
    for column, value in where.items():
        frame = frame[frame[column] == value]
    assert len(frame) == 1
    return frame.iloc[0]


def test_mixed_k_in_one_task_uses_each_items_own_k(pair):
    before, after = pair(
        [
            # 4 items, k=2: transitions 11, 10, 01, 00 -> a_pre = a_post = 1/2
            {"task": "mix", "k": 2, "before": [1, 1, 0, 0], "after": [1, 0, 1, 0]},
            # 6 items, k=4: 11, 11, 10, 10, 00, 01 -> a_pre = 4/6, a_post = 3/6
            {"task": "mix", "k": 4, "before": [1, 1, 1, 1, 0, 0], "after": [1, 1, 0, 0, 0, 1]},
        ]
    )
    row = one_row(compare_records(before, after).tasks, task="mix")
    # N = 10: n_00 = 2, n_01 = 2, n_10 = 3, n_11 = 3
    assert (row.n, row.n_00, row.n_01, row.n_10, row.n_11) == (10, 2, 2, 3, 3)
    assert row.forgetting == pytest.approx(0.3)
    assert row.backward_transfer == pytest.approx(0.2)
    assert row.acc_before == pytest.approx(0.6) and row.acc_after == pytest.approx(0.5)
    # F_chance = 0.4 * (1/2)(1/2)/1 + 0.6 * (1/3)(1/2)/3 = 0.1 + 1/30 = 2/15
    # (a global k = 4 would give (0.4)(0.5)/3 = 1/15: a different number)
    assert row.forgetting_chance == pytest.approx(2 / 15)
    assert row.forgetting_true == pytest.approx(0.3 - 2 / 15)
    assert row.backward_transfer_true == pytest.approx(0.2 - 2 / 15)
    # F_max = 0.4 * max(2*0.5-1, 0)/1 + 0.6 * (4*(2/3)-1)/3 = 0 + 0.6 * 5/9 = 1/3
    assert row.forgetting_max == pytest.approx(1 / 3)
    # BT_max = 0.4 * 0 + 0.6 * (4*0.5-1)/3 = 0.2
    assert row.backward_transfer_max == pytest.approx(0.2)
    # McNemar b = 2, c = 3: 2 * P(X <= 2 | 5, 1/2) = 2 * 16/32 = 1
    assert row.mcnemar_p == pytest.approx(1.0)


def test_forgetting_below_chance_clips_to_zero(pair):
    # k = 4, 8 items: before 11000000, after 01000000 -> F = 1/8, a_pre = 1/4, a_post = 1/8
    before, after = pair([{"task": "t", "k": 4, "before": [1, 1, 0, 0, 0, 0, 0, 0], "after": [0, 1, 0, 0, 0, 0, 0, 0]}])
    row = one_row(compare_records(before, after).tasks, task="t")
    assert row.forgetting == pytest.approx(1 / 8)
    # F_chance = (3/4)(7/8)/3 = 7/32 > 1/8
    assert row.forgetting_chance == pytest.approx(7 / 32)
    assert row.forgetting_true == 0.0
    assert row.backward_transfer_true == 0.0
    assert row.forgetting_max == 0.0  # (4 * 1/4 - 1)/3 = 0: nothing known beyond guessing


def test_perfect_model(pair):
    before, after = pair([{"task": "t", "k": 4, "before": [1] * 5, "after": [1] * 5}])
    row = one_row(compare_records(before, after).tasks, task="t")
    assert (row.forgetting, row.backward_transfer, row.forgetting_chance) == (0.0, 0.0, 0.0)
    assert (row.forgetting_max, row.backward_transfer_max) == (1.0, 1.0)
    assert row.mcnemar_p == 1.0
    assert (row.forgetting_ci_low, row.forgetting_ci_high) == (0.0, 0.0)


def test_all_wrong_model(pair):
    before, after = pair([{"task": "t", "k": 4, "before": [0] * 6, "after": [0] * 6}])
    row = one_row(compare_records(before, after).tasks, task="t")
    assert (row.acc_before, row.acc_after, row.forgetting) == (0.0, 0.0, 0.0)
    assert row.forgetting_chance == pytest.approx(1 / 3)  # (1)(1)/(4-1)
    assert (row.forgetting_true, row.backward_transfer_true) == (0.0, 0.0)
    assert (row.forgetting_max, row.backward_transfer_max) == (0.0, 0.0)


def test_generative_items_have_no_chance_term(pair):
    # k = 0: 11, 10, 10, 01 -> F = 1/2, BT = 1/4, a_pre = 3/4, a_post = 1/2
    before, after = pair([{"task": "gen", "k": 0, "before": [1, 1, 1, 0], "after": [1, 0, 0, 1]}])
    row = one_row(compare_records(before, after).tasks, task="gen")
    assert row.forgetting_chance == 0.0
    assert row.forgetting_true == pytest.approx(0.5)
    assert row.backward_transfer_true == pytest.approx(0.25)
    assert row.forgetting_max == pytest.approx(0.75)  # the k -> infinity limit: a_pre
    assert row.backward_transfer_max == pytest.approx(0.5)


def test_single_choice_items_add_nothing_to_chance_or_max(pair):
    before, after = pair(
        [
            {"task": "t", "k": 1, "before": [1, 1], "after": [1, 1]},
            {"task": "t", "k": 0, "before": [1, 1], "after": [0, 1]},
        ]
    )
    row = one_row(compare_records(before, after).tasks, task="t")
    assert row.forgetting == pytest.approx(0.25)
    assert row.forgetting_chance == 0.0
    assert row.forgetting_max == pytest.approx(0.5)  # 0.5 * a_pre(k=0) + 0.5 * 0 (k=1)
    assert row.backward_transfer_max == pytest.approx(0.25)  # 0.5 * 1/2 + 0


def test_chance_helpers_match_the_formulas():
    assert chance_forgetting(0.5, 0.5, 2) == pytest.approx(0.25)
    assert chance_forgetting(2 / 3, 0.5, 4) == pytest.approx(1 / 18)
    np.testing.assert_allclose(chance_forgetting([0.2, 0.2, 0.2], [0.1, 0.1, 0.1], [0, 1, 5]), [0, 0, 0.8 * 0.9 / 4])
    np.testing.assert_allclose(max_forgetting([0.1, 0.7, 0.7, 0.7], [4, 4, 0, 1]), [0, (2.8 - 1) / 3, 0.7, 0])


def test_overall_and_categories_aggregate_items_not_tasks(pair):
    before, after = pair(
        [
            # big: 10 items, k=2, 5 of 10 forgotten -> F = 1/2
            {"task": "big", "k": 2, "category": "a", "before": [1] * 10, "after": [1] * 5 + [0] * 5},
            # small: 2 items, k=4, none forgotten -> F = 0
            {"task": "small", "k": 4, "category": "a", "before": [1, 1], "after": [1, 1]},
        ]
    )
    result = compare_records(before, after)
    assert result.tasks["forgetting"].mean() == pytest.approx(0.25)
    overall = result.overall.iloc[0]
    assert overall.n == 12
    assert overall.forgetting == pytest.approx(5 / 12)  # not the mean of tasks, 1/4
    # (task, k) subgroups: (big, 2) (w=10/12, a_pre=1, a_post=1/2), (small, 4) (w=2/12, a=1, 1)
    assert overall.forgetting_chance == 0.0
    assert overall.forgetting_max == pytest.approx(1.0)
    assert overall.backward_transfer_max == pytest.approx(10 / 12 * 0.0 + 2 / 12 * 1.0)
    by_category = transition_summary(result.paired, ["category"], n_bootstrap=0)
    assert one_row(by_category, category="a").forgetting == pytest.approx(5 / 12)


def test_categories_only_for_tasks_that_have_them(pair):
    before, after = pair(
        [
            {"task": "mmlu", "k": 4, "category": "law", "before": [1, 0], "after": [0, 0]},
            {"task": "mmlu", "k": 4, "category": "math", "before": [1, 1, 1], "after": [1, 1, 1]},
            {"task": "gsm", "k": 0, "before": [1], "after": [0]},
        ]
    )
    result = compare_records(before, after, n_bootstrap=50)
    assert list(zip(result.categories.task, result.categories.category)) == [("mmlu", "law"), ("mmlu", "math")]
    assert one_row(result.categories, category="law").forgetting == pytest.approx(0.5)
    assert list(result.tasks.task) == ["gsm", "mmlu"]


def test_metric_switch_reads_correct_norm(pair):
    block = {"task": "t", "k": 4, "before": [1, 1, 1, 1], "after": [1, 1, 1, 1],
             "before_norm": [1, 1, 1, 1], "after_norm": [0, 0, 1, 1]}
    before, after = pair([block])
    assert compare_records(before, after).overall.iloc[0].forgetting == 0.0
    norm = compare_records(before, after, metric="acc_norm")
    assert norm.overall.iloc[0].forgetting == pytest.approx(0.5)
    assert norm.to_json_dict()["metric"] == "acc_norm"
    assert pair_records(before, after, metric="acc_norm").frame["after"].tolist() == [False, False, True, True]


def test_json_dict_keys_and_safe_values(pair):
    import json

    before, after = pair([{"task": "t", "k": 4, "category": "c", "before": [1, 0], "after": [0, 1]}])
    data = compare_records(before, after, n_bootstrap=0).to_json_dict()
    first = ["n", "acc_before", "acc_after", "n_00", "n_01", "n_10", "n_11", "forgetting",
             "backward_transfer", "forgetting_chance", "forgetting_true", "backward_transfer_true",
             "forgetting_max", "backward_transfer_max", "mcnemar_p"]
    assert list(data["tasks"]["t"])[: len(first)] == first
    assert list(data["overall"])[: len(first)] == first
    assert data["categories"]["t"]["c"]["n"] == 2
    assert data["tasks"]["t"]["forgetting_ci_low"] is None  # no bootstrap: None, never NaN
    assert isinstance(data["tasks"]["t"]["n_10"], int)
    assert isinstance(data["overall"]["n"], int) and isinstance(data["overall"]["n_repeats"], int)
    json.dumps(data, allow_nan=False)
    assert math.isclose(data["overall"]["forgetting"], 0.5)
