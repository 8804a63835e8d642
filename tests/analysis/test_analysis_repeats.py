"""Several repeats (seeds) per item: means, spreads, and items stable across seeds."""

from __future__ import annotations

import numpy as np
import pytest

from forgetscope.analysis import PairingError, compare_records, pair_records, transition_items

IDS = ["q1", "q2", "q3", "q4"]


def two_seeds(pair, extra=()):
    return pair(
        [
            # seed 0: q1 10, q2 11, q3 01, q4 00 -> F = 1/4, BT = 1/4
            {"task": "gen", "k": 0, "ids": IDS, "repeat": 0, "before": [1, 1, 0, 0], "after": [0, 1, 1, 0]},
            # seed 1: q1 10, q2 10, q3 00, q4 00 -> F = 1/2, BT = 0
            {"task": "gen", "k": 0, "ids": IDS, "repeat": 1, "before": [1, 1, 0, 0], "after": [0, 0, 0, 0]},
            *extra,
        ]
    )


def test_mean_std_and_all_repeat_counts(pair):
    row = compare_records(*two_seeds(pair), n_bootstrap=200).tasks.iloc[0]
    assert row.n == 4 and row.n_repeats == 2
    assert row.forgetting == pytest.approx(0.375)
    assert row.forgetting_std == pytest.approx(0.25 / np.sqrt(2))  # sample std, ddof=1
    assert row.backward_transfer == pytest.approx(0.125)
    assert row.backward_transfer_std == pytest.approx(0.25 / np.sqrt(2))
    assert row.acc_after == pytest.approx(0.25) and row.acc_after_std == pytest.approx(0.5 / np.sqrt(2))
    assert (row.n_00, row.n_01, row.n_10, row.n_11) == (1.5, 0.5, 1.5, 0.5)
    # q1 went 1->0 in both seeds, q4 0->0 in both; q2 and q3 changed their story
    assert (row.n_00_all_repeats, row.n_01_all_repeats, row.n_10_all_repeats, row.n_11_all_repeats) == (1, 0, 1, 0)
    # p per seed: seed 0 b=1, c=1 -> 1; seed 1 b=0, c=2 -> 0.5; reported: the largest
    assert row.mcnemar_p == pytest.approx(1.0)
    assert row.forgetting_ci_low <= row.forgetting <= row.forgetting_ci_high


def test_items_listed_with_repeats(pair):
    paired = pair_records(*two_seeds(pair))
    every = transition_items(paired, "1to0")
    assert every.item_id.tolist() == ["q1"]
    assert every.repeats_with_transition.tolist() == [2] and every.n_repeats.tolist() == [2]
    some = transition_items(paired, "1to0", min_repeats=1)
    assert some.item_id.tolist() == ["q1", "q2"]
    assert some.repeats_with_transition.tolist() == [2, 1]
    assert transition_items(paired, "0to0", task="gen").item_id.tolist() == ["q4"]
    with pytest.raises(ValueError, match="'nope' is not among"):
        transition_items(paired, "1to0", task="nope")
    with pytest.raises(ValueError, match="unknown transition"):
        transition_items(paired, "2to1")


def test_single_repeat_task_counts_in_every_seed_of_overall(pair):
    # mc ran once (deterministic scoring): 1 of 2 forgotten, in every seed
    before, after = two_seeds(pair, [{"task": "mc", "k": 4, "before": [1, 0], "after": [0, 0]}])
    result = compare_records(before, after, n_bootstrap=200)
    overall = result.overall.iloc[0]
    # seed 0: (1 + 1)/6, seed 1: (2 + 1)/6 -> mean 5/12
    assert overall.n == 6 and overall.n_repeats == 2
    assert overall.forgetting == pytest.approx(5 / 12)
    assert overall.forgetting_ci_low <= overall.forgetting <= overall.forgetting_ci_high
    mc = result.tasks[result.tasks.task == "mc"].iloc[0]
    assert mc.n_repeats == 1 and mc.forgetting == pytest.approx(0.5) and mc.forgetting_std == 0.0


def test_only_common_repeats_are_paired(pair):
    before, after = two_seeds(pair)
    paired = pair_records(before, after[after.repeat == 0])
    assert sorted(paired.frame.repeat.unique()) == [0]
    assert any("paired only the repeats both sides ran [0]" in note for note in paired.notes)
    result = compare_records(before, after[after.repeat == 0], n_bootstrap=0)
    assert result.tasks.iloc[0].forgetting == pytest.approx(0.25)
    assert result.to_json_dict()["notes"] == result.notes


def test_no_common_repeat_is_an_error(pair):
    before, after = two_seeds(pair)
    with pytest.raises(PairingError, match="no repeat in common"):
        pair_records(before[before.repeat == 0], after[after.repeat == 1])
