"""Distances between choice distributions against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from forgetscope.analysis.distances import (
    ChoiceScores,
    ScoresError,
    distance_summary,
    entropy,
    flip_share_above,
    gold_margin,
    item_distances,
)
from forgetscope.analysis.pairing import PairingError


def records(lls, gold, n_choices=None, **extra) -> pd.DataFrame:
    n_choices = n_choices if n_choices is not None else [len(x) for x in lls]
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(len(lls))], "n_choices": n_choices, "gold": gold,
                         "loglikelihoods": [np.asarray(x, float) for x in lls], **extra})


def test_two_choice_kl_js_and_margin_by_hand():
    # before p = (0.8, 0.2), after q = (0.5, 0.5), gold = choice 0
    before = ChoiceScores.of(records([np.log([0.8, 0.2])], ["0"]))
    after = ChoiceScores.of(records([np.log([0.5, 0.5])], ["0"]))
    out = item_distances(before, after)
    # KL = 0.8 ln(0.8/0.5) + 0.2 ln(0.2/0.5) = 0.376003 − 0.183258
    assert out["kl"][0] == pytest.approx(0.8 * math.log(1.6) + 0.2 * math.log(0.4))
    assert out["kl"][0] == pytest.approx(0.192745, abs=1e-6)
    # m = (0.65, 0.35): ½ (0.054188 + 0.047155) = 0.050672
    assert out["js"][0] == pytest.approx(0.050672, abs=1e-6)
    assert out["js"][0] == pytest.approx(jensenshannon([0.8, 0.2], [0.5, 0.5]) ** 2)
    # gold margin: ln 0.8 − ln 0.2 = ln 4 before, 0 after
    assert out["margin_before"][0] == pytest.approx(math.log(4))
    assert out["margin_after"][0] == pytest.approx(0.0)
    assert out["margin_change"][0] == pytest.approx(-math.log(4))


def test_scores_need_not_be_normalised():
    # log-likelihoods of continuations do not sum to one: only their differences matter
    shifted = ChoiceScores.of(records([np.log([0.8, 0.2]) - 7.0], ["0"]))
    after = ChoiceScores.of(records([np.log([0.5, 0.5]) - 3.0], ["0"]))
    assert item_distances(shifted, after)["kl"][0] == pytest.approx(0.192745, abs=1e-6)
    assert entropy(shifted)[0] == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))


def test_several_golds_mixed_k_and_generative_rows():
    lls = [np.log([0.5, 0.3, 0.2]), np.log([0.25, 0.25, 0.25, 0.25]), [], np.log([0.6, 0.4])]
    scores = ChoiceScores.of(records(lls, ["1|2", "0", '["42"]', "0|1"], n_choices=[3, 4, 0, 2]))
    margin = gold_margin(scores)
    assert margin[0] == pytest.approx(math.log(0.3 / 0.5))  # best gold 0.3 against the other 0.5
    assert margin[1] == pytest.approx(0.0)
    assert np.isnan(margin[2])  # generative: no margin
    assert np.isnan(margin[3])  # every choice gold: nothing to beat
    assert entropy(scores)[1] == pytest.approx(math.log(4))
    assert np.isnan(entropy(scores)[2])


def test_acc_norm_divides_by_characters():
    frame = records([[-4.0, -3.0]], ["0"], choice_chars=[[8, 2]])
    raw, norm = ChoiceScores.of(frame, "acc"), ChoiceScores.of(frame, "acc_norm")
    assert gold_margin(raw)[0] == pytest.approx(-1.0)  # −4 − (−3)
    assert gold_margin(norm)[0] == pytest.approx(1.0)  # −4/8 − (−3/2)
    assert np.allclose(norm.values, [-0.5, -1.5])


def test_a_choice_whose_probability_underflows_keeps_kl_finite():
    before = ChoiceScores.of(records([[0.0, -1000.0]], ["0"]))
    after = ChoiceScores.of(records([[-1000.0, 0.0]], ["0"]))
    out = item_distances(before, after)
    assert out["kl"][0] == pytest.approx(1000.0)  # Σ p (log p − log q) ≈ 1 · (0 − (−1000))
    assert out["js"][0] == pytest.approx(math.log(2))  # disjoint distributions: the maximum


def test_identical_distributions_are_at_distance_zero():
    scores = ChoiceScores.of(records([np.log([0.1, 0.2, 0.7])], ["2"]))
    out = item_distances(scores, scores)
    assert out["kl"][0] == pytest.approx(0.0, abs=1e-15)
    assert out["js"][0] == pytest.approx(0.0, abs=1e-15)
    assert out["margin_change"][0] == 0.0


@pytest.mark.parametrize("gold, message", [("2", "names a choice the item does not have"),
                                           ("a", "is not a list of choice indices")])
def test_bad_gold_is_refused_with_the_item(gold, message):
    with pytest.raises(ScoresError, match=f"item 'i0'.*{message}") as info:
        ChoiceScores.of(records([[-1.0, -2.0]], [gold]))
    assert isinstance(info.value, PairingError)  # the CLI reports it as one line


def test_empty_gold_means_unknown_margin():
    scores = ChoiceScores.of(records([[-1.0, -2.0]], [""]))
    assert np.isnan(gold_margin(scores)[0])


def test_sides_with_different_choice_counts_are_refused():
    before = ChoiceScores.of(records([[-1.0, -2.0]], ["0"]))
    after = ChoiceScores.of(records([[-1.0, -2.0, -3.0]], ["0"]))
    with pytest.raises(ScoresError, match="row 0: before scored 2 choices, after 3"):
        item_distances(before, after)


def test_rows_select_and_order_the_scores():
    frame = records([[-1.0, -2.0], [-3.0, -1.0, -2.0]], ["0", "1"])
    scores = ChoiceScores.of(frame, rows=np.array([1, 0]))
    assert scores.sizes.tolist() == [3, 2]
    assert scores.values.tolist() == [-3.0, -1.0, -2.0, -1.0, -2.0]
    assert scores.gold.tolist() == [False, True, False, True, False]


def test_flip_share_above_each_kl_decile_by_hand():
    kl = np.arange(1, 11) / 10.0  # 0.1 ... 1.0
    flipped = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1], dtype=bool)  # the three largest KLs flipped
    # the 0th, 10th, ..., 90th percentiles leave 10, 9, ..., 1 items at or above them
    expected = [3 / 10, 3 / 9, 3 / 8, 3 / 7, 3 / 6, 3 / 5, 3 / 4, 1.0, 1.0, 1.0]
    assert flip_share_above(kl, flipped) == pytest.approx(expected)
    assert flip_share_above(np.array([np.nan]), np.array([True])) == [None] * 10


def test_distance_summary_per_group():
    distances = {"kl": np.array([1.0, 3.0, np.nan, 2.0]), "js": np.array([0.1, 0.3, np.nan, 0.2]),
                 "margin_change": np.array([-1.0, 1.0, np.nan, 0.5])}
    group = np.array([0, 0, 0, 1])
    out = distance_summary(distances, np.array([False, True, True, False]), group, 2)
    assert out["kl_mean"].tolist() == pytest.approx([2.0, 2.0])  # the generative row is left out
    assert out["js_mean"].tolist() == pytest.approx([0.2, 0.2])
    assert out["margin_change_mean"].tolist() == pytest.approx([0.0, 0.5])
    assert out["flip_share_by_kl_decile"][0][0] == pytest.approx(0.5)
    assert out["flip_share_by_kl_decile"][1] == [0.0] * 10
