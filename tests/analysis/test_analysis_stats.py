"""McNemar, bootstrap intervals and the spread over repeats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from forgetscope.analysis import compare_records, transition_summary, pair_records
from forgetscope.analysis.stats import group_rng, mcnemar_p, repeat_mean_std


def test_mcnemar_known_table():
    # b = 1, c = 9: 2 * P(X <= 1 | 10, 1/2) = 2 * 11/1024
    assert mcnemar_p(1, 9) == pytest.approx(0.021484375)
    assert mcnemar_p(9, 1) == pytest.approx(0.021484375)
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 5) == 1.0


def test_mcnemar_equals_scipy_binomtest():
    b = np.array([0, 1, 3, 7, 20, 0])
    c = np.array([4, 9, 3, 2, 45, 1])
    expected = [binomtest(int(x), int(x + y), 0.5).pvalue for x, y in zip(b, c)]
    np.testing.assert_allclose(mcnemar_p(b, c), expected, rtol=1e-12)


def test_mcnemar_in_the_summary(pair):
    before, after = pair([{"task": "t", "k": 4, "before": [0] + [1] * 9 + [0] * 5, "after": [1] + [0] * 9 + [0] * 5}])
    row = compare_records(before, after, n_bootstrap=0).tasks.iloc[0]
    assert (row.n_01, row.n_10) == (1, 9)
    assert row.mcnemar_p == pytest.approx(0.021484375)


def _table(pair):
    return pair(
        [
            {"task": "a", "k": 4, "before": [1] * 30 + [0] * 20, "after": [1] * 20 + [0] * 25 + [1] * 5},
            {"task": "b", "k": 2, "before": [1, 0, 1, 1], "after": [0, 0, 1, 1]},
        ]
    )


def test_bootstrap_interval_contains_estimate_and_is_seeded(pair):
    paired = pair_records(*_table(pair))
    first = transition_summary(paired, ["task"], n_bootstrap=500, seed=3)
    again = transition_summary(paired, ["task"], n_bootstrap=500, seed=3)
    other = transition_summary(paired, ["task"], n_bootstrap=500, seed=4)
    ci = ["forgetting_ci_low", "forgetting_ci_high", "backward_transfer_ci_low", "backward_transfer_ci_high"]
    np.testing.assert_array_equal(first[ci].to_numpy(), again[ci].to_numpy())
    assert not np.array_equal(first[ci].to_numpy(), other[ci].to_numpy())
    for row in first.itertuples():
        assert row.forgetting_ci_low <= row.forgetting <= row.forgetting_ci_high
        assert row.backward_transfer_ci_low <= row.backward_transfer <= row.backward_transfer_ci_high
    a = first[first.task == "a"].iloc[0]
    assert a.forgetting_ci_low < a.forgetting < a.forgetting_ci_high  # 10 of 50 forgotten: a real spread


def test_bootstrap_is_a_multinomial_draw_of_the_four_counts(pair):
    paired = pair_records(*_table(pair))
    row = transition_summary(paired, None, n_bootstrap=300, seed=7).iloc[0]
    counts = np.array([row.n_00, row.n_01, row.n_10, row.n_11])
    n = counts.sum()
    draws = group_rng(7, "overall").multinomial(n, counts / n, size=300)
    assert row.forgetting_ci_low == pytest.approx(np.percentile(draws[:, 2] / n, 2.5))
    assert row.forgetting_ci_high == pytest.approx(np.percentile(draws[:, 2] / n, 97.5))
    assert row.backward_transfer_ci_high == pytest.approx(np.percentile(draws[:, 1] / n, 97.5))


def test_a_tasks_interval_does_not_depend_on_the_other_tasks(pair):
    before, after = _table(pair)
    alone = compare_records(before[before.task == "a"], after[after.task == "a"], n_bootstrap=200).tasks
    together = compare_records(before, after, n_bootstrap=200).tasks
    assert alone.iloc[0].forgetting_ci_low == together[together.task == "a"].iloc[0].forgetting_ci_low


def test_repeat_mean_std_uses_sample_std():
    values = np.array([[0.25, 0.5], [0.4, 0.0]])
    present = np.array([[True, True], [True, False]])
    mean, std = repeat_mean_std(values, present)
    np.testing.assert_allclose(mean, [0.375, 0.4])
    np.testing.assert_allclose(std, [0.25 / np.sqrt(2), 0.0])
