"""Distances, risk and paired statistics on the rows of a real comparison, by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from forgetscope.analysis import compare_records
from forgetscope.analysis.item_figures import ITEM_FIGURE_COLUMNS, row_groups
from forgetscope.analysis.paired import minimum_detectable_effect

# quiz (k = 2, gold = choice 0): before and after choice probabilities
QUIZ = {
    "i0": ("even", (0.8, 0.2), (0.2, 0.8)),  # 1→0: KL = 0.6 ln 4, margin ln 4 → −ln 4
    "i1": ("odd", (0.6, 0.4), (0.6, 0.4)),  # 1→1, unmoved
    "i2": ("even", (0.3, 0.7), (0.7, 0.3)),  # 0→1: KL = 0.4 ln(7/3), margin −ln(7/3) → ln(7/3)
    "i3": ("odd", (0.9, 0.1), (0.9, 0.1)),  # 1→1, unmoved
}
GEN = {"g0": (True, False), "g1": (True, True)}  # generative: 1→0, 1→1


def side(which: int, with_scores: bool = True) -> pd.DataFrame:
    rows = []
    for item_id, (category, *probs) in QUIZ.items():
        p = np.array(probs[which])
        row = {"checkpoint": "ab"[which], "task": "quiz", "item_id": item_id, "item_hash": f"h{item_id}",
               "category": category, "n_choices": 2, "repeat": 0, "gold": "0", "correct": bool(p[0] > p[1]),
               "prediction": int(np.argmax(p))}
        if with_scores:
            row["loglikelihoods"] = list(np.log(p))
        rows.append(row)
    for item_id, correct in GEN.items():
        rows.append({"checkpoint": "ab"[which], "task": "gen", "item_id": item_id, "item_hash": f"h{item_id}",
                     "category": "", "n_choices": 0, "repeat": 0, "gold": '["7"]', "correct": correct[which],
                     "loglikelihoods": [] if with_scores else None})
    return pd.DataFrame(rows)


def by_task(table: pd.DataFrame, task: str) -> pd.Series:
    return table[table["task"] == task].iloc[0]


def test_compare_rows_carry_the_new_figures():
    result = compare_records(side(0), side(1), n_bootstrap=200, seed=1)
    quiz, gen, overall = by_task(result.tasks, "quiz"), by_task(result.tasks, "gen"), result.overall.iloc[0]
    kl_i0, kl_i2 = 0.6 * math.log(4), 0.4 * math.log(7 / 3)
    assert quiz.kl_mean == pytest.approx((kl_i0 + kl_i2) / 4)
    assert quiz.margin_change_mean == pytest.approx((-2 * math.log(4) + 2 * math.log(7 / 3)) / 4)
    assert 0 < quiz.js_mean < quiz.kl_mean
    assert overall.kl_mean == pytest.approx(quiz.kl_mean)  # generative items have no distance
    assert math.isnan(gen.kl_mean) and math.isnan(gen.risk_auroc)
    # flips (i0, i2) are the two items with KL > 0: above the 60th percentile every item flipped
    assert quiz.flip_share_by_kl_decile[0] == pytest.approx(0.5)
    assert quiz.flip_share_by_kl_decile[-1] == pytest.approx(1.0)
    # risk among items right before: i0 (margin ln 4, forgotten), i1 (ln 1.5), i3 (ln 9)
    # risk = −margin: i0 ranks below i1, above i3 → AUROC ½; AP: i1 first (wrong flag), then i0 → ½
    assert (quiz.risk_n, quiz.risk_n_forgotten) == (3, 1)
    assert quiz.risk_auroc == 0.5 and quiz.risk_ap == 0.5
    assert quiz.risk_ap_baseline == pytest.approx(1 / 3)
    assert quiz.risk_auroc_ci_low <= 0.5 <= quiz.risk_auroc_ci_high
    assert overall.risk_auroc == 0.5  # the generative 1→0 has no margin and is left out
    # paired statistics: quiz b = c = 1; overall b = 1, c = 2: mid-p = 2 · 4/8 − 3/8
    assert quiz.mcnemar_midp == 1.0
    assert overall.mcnemar_midp == pytest.approx(5 / 8)
    assert quiz.acc_change == 0.0 and overall.acc_change == pytest.approx(-1 / 6)
    assert overall.acc_change_ci_low <= -1 / 6 <= overall.acc_change_ci_high
    assert quiz.mde == pytest.approx(minimum_detectable_effect(4, 0.5))
    # per category: even = i0, i2; a single item right before: AUROC undefined
    even = result.categories[result.categories["category"] == "even"].iloc[0]
    assert even.kl_mean == pytest.approx((kl_i0 + kl_i2) / 2)
    assert math.isnan(even.risk_auroc)


def test_json_rows_have_the_keys_and_null_for_undefined():
    data = compare_records(side(0), side(1), n_bootstrap=50).to_json_dict()
    rows = [data["overall"], data["tasks"]["quiz"], data["tasks"]["gen"], data["categories"]["quiz"]["odd"]]
    for row in rows:
        assert set(ITEM_FIGURE_COLUMNS + ["mcnemar_midp"]) <= set(row)
    assert data["tasks"]["gen"]["kl_mean"] is None
    assert data["tasks"]["gen"]["flip_share_by_kl_decile"] == [None] * 10
    assert data["categories"]["quiz"]["odd"]["kl_mean"] == 0.0
    json.dumps(data, allow_nan=False)  # strict JSON: no NaN anywhere


def test_records_without_loglikelihoods_give_null_distances():
    result = compare_records(side(0, with_scores=False), side(1, with_scores=False), n_bootstrap=50)
    row = result.overall.iloc[0]
    assert math.isnan(row.kl_mean) and math.isnan(row.risk_auroc)
    assert row.mcnemar_midp == pytest.approx(5 / 8)  # the counts still give the paired statistics
    narrow = side(0).drop(columns=["loglikelihoods", "gold"])
    assert math.isnan(compare_records(narrow, side(1), n_bootstrap=0).overall.iloc[0].kl_mean)


def _kl(before_scores, after_scores) -> float:
    p = np.exp(before_scores) / np.exp(before_scores).sum()
    q = np.exp(after_scores) / np.exp(after_scores).sum()
    return float((p * np.log(p / q)).sum())


def test_acc_norm_uses_the_normalised_scores():
    before, after = side(0), side(1)
    for frame in (before, after):  # choice 0 is 4 characters long, choice 1 one: acc_norm divides by them
        frame["choice_chars"] = [[4, 1]] * 4 + [[]] * 2
        frame["correct_norm"] = frame["correct"]
    lengths = np.array([4.0, 1.0])
    expected = np.mean([_kl(np.log(b) / lengths, np.log(a) / lengths) for _, b, a in QUIZ.values()])
    norm = by_task(compare_records(before, after, metric="acc_norm", n_bootstrap=0).tasks, "quiz")
    plain = by_task(compare_records(before, after, metric="acc", n_bootstrap=0).tasks, "quiz")
    assert norm.kl_mean == pytest.approx(expected)
    assert plain.kl_mean == pytest.approx(np.mean([_kl(np.log(b), np.log(a)) for _, b, a in QUIZ.values()]))
    assert norm.kl_mean != pytest.approx(plain.kl_mean)
    # gold margin under acc_norm: ln p_0 / 4 − ln p_1 (i0: ln 0.8 / 4 − ln 0.2 before, ln 0.2 / 4 − ln 0.8 after)
    margin = lambda p: math.log(p[0]) / 4 - math.log(p[1])  # noqa: E731
    assert norm.margin_change_mean == pytest.approx(np.mean([margin(a) - margin(b) for _, b, a in QUIZ.values()]))


def test_repeats_resample_items_with_their_repeats():
    before, after = side(0), side(1)
    second_b, second_a = before.assign(repeat=1), after.assign(repeat=1)
    result = compare_records(pd.concat([before, second_b]), pd.concat([after, second_a]), n_bootstrap=100)
    once = compare_records(before, after, n_bootstrap=100)
    row, single = result.overall.iloc[0], once.overall.iloc[0]
    assert row.kl_mean == pytest.approx(single.kl_mean)  # identical repeats: identical means
    assert row.acc_change == pytest.approx(single.acc_change)
    assert row.mcnemar_midp == pytest.approx(single.mcnemar_midp)
    # items, not rows, are resampled: two identical repeats give the interval of one (rows would draw twice as many)
    assert (row.acc_change_ci_low, row.acc_change_ci_high) == (single.acc_change_ci_low, single.acc_change_ci_high)


def test_row_groups_maps_rows_to_table_rows():
    frame = pd.DataFrame({"task": pd.Categorical(["b", "a", "b", "c"]),
                          "category": pd.Categorical(["", "x", "y", "x"])})
    labels = pd.DataFrame({"task": ["a", "b", "c"], "category": ["x", "y", "x"]})
    assert row_groups(frame, ["task", "category"], labels).tolist() == [-1, 0, 1, 2]
    assert row_groups(frame, [], pd.DataFrame(index=range(1))).tolist() == [0, 0, 0, 0]


def test_row_interval_is_the_paired_bootstrap_of_its_items():
    from forgetscope.analysis.paired import accuracy_change_ci
    from forgetscope.analysis.stats import group_rng

    result = compare_records(side(0), side(1), n_bootstrap=300, seed=4)
    frame = result.paired.frame
    low, high = accuracy_change_ci(frame["before"], frame["after"], frame["item"], n_bootstrap=300,
                                   rng=group_rng(4, "overall\x1faccuracy change"))
    row = result.overall.iloc[0]
    assert (row.acc_change_ci_low, row.acc_change_ci_high) == (low, high)
