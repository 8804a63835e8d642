"""Forgetting-risk scores and how well they rank the forgotten items, by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from forgetscope.analysis.distances import ChoiceScores
from forgetscope.analysis.risk import (
    BOOTSTRAP_CELLS,
    auroc,
    average_precision,
    delong_interval,
    learning_history,
    logit_interval,
    ranking_bootstrap,
    risk_scores,
    risk_summary,
)


def test_auroc_and_ap_with_a_tie_by_hand():
    risk = np.array([0.9, 0.8, 0.8, 0.1])
    forgotten = np.array([True, True, False, False])
    # pairs (forgotten, kept): (0.9, 0.8) 1, (0.9, 0.1) 1, (0.8, 0.8) ½, (0.8, 0.1) 1 → 3.5 / 4
    assert auroc(risk, forgotten) == 0.875
    # thresholds 0.9: precision 1, recall ½; 0.8 (two items enter together): precision 2/3, recall 1
    assert average_precision(risk, forgotten) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_auroc_is_mann_whitney_u_over_pairs():
    rng = np.random.default_rng(0)
    risk = rng.integers(0, 6, size=80).astype(float)  # many ties
    forgotten = rng.random(80) < 0.3
    u = mannwhitneyu(risk[forgotten], risk[~forgotten]).statistic
    assert auroc(risk, forgotten) == pytest.approx(u / (forgotten.sum() * (~forgotten).sum()))


def test_agrees_with_scikit_learn_where_installed():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    for _ in range(50):
        risk = rng.integers(0, 4, size=30).astype(float)
        forgotten = rng.random(30) < 0.4
        if forgotten.all() or not forgotten.any():
            continue
        assert auroc(risk, forgotten) == pytest.approx(metrics.roc_auc_score(forgotten, risk))
        assert average_precision(risk, forgotten) == pytest.approx(metrics.average_precision_score(forgotten, risk))


def test_all_tied_is_chance_and_one_class_is_undefined():
    forgotten = np.array([True, False, False, False])
    assert auroc(np.ones(4), forgotten) == 0.5
    assert average_precision(np.ones(4), forgotten) == 0.25  # the share of forgotten items
    assert math.isnan(auroc([0.1, 0.2], [False, False]))
    assert math.isnan(average_precision([0.1, 0.2], [False, False]))
    # a NaN risk (no margin) is left out: what remains is a perfect ranking
    assert auroc([np.nan, 0.9, 0.1], [False, True, False]) == 1.0


def test_bootstrap_equals_resampling_items_one_draw_at_a_time():
    rng = np.random.default_rng(2)
    risk = rng.normal(size=40)
    forgotten = rng.random(40) < 0.3 + 0.4 * (risk > 0)
    low_a, high_a, low_p, high_p = ranking_bootstrap(risk, forgotten, n_bootstrap=300, rng=np.random.default_rng(9))
    # the same draws, made into resampled item lists and scored one by one
    picks = np.random.default_rng(9).integers(0, 40, size=(300, 40))
    areas, aps = [], []
    for rows in picks:
        areas.append(auroc(risk[rows], forgotten[rows]))
        aps.append(average_precision(risk[rows], forgotten[rows]))
    areas, aps = np.array(areas), np.array(aps)
    areas = areas[np.isfinite(areas)]
    assert (low_a, high_a) == pytest.approx(tuple(np.percentile(areas, [2.5, 97.5])))
    assert (low_p, high_p) == pytest.approx(tuple(np.percentile(aps, [2.5, 97.5])))
    assert low_a <= auroc(risk, forgotten) <= high_a


def test_perfect_separation_has_a_degenerate_interval():
    risk = np.array([5.0, 4.0, 1.0, 0.0])
    forgotten = np.array([True, True, False, False])
    low_a, high_a, low_p, high_p = ranking_bootstrap(risk, forgotten, n_bootstrap=200, rng=np.random.default_rng(0))
    assert (low_a, high_a, low_p, high_p) == (1.0, 1.0, 1.0, 1.0)


def test_learning_history_by_hand():
    correct = np.array([
        [0, 1, 1, 0, 1],  # one forgetting event; stays right from position 4
        [1, 1, 1, 1, 1],  # never forgotten, known from the start: lateness 0
        [0, 0, 0, 0, 0],  # never learned: lateness T = 5
        [1, 0, 1, 0, 0],  # two events, wrong at the end
        [0, 0, 1, 1, 1],  # learned at position 2
    ])
    events, lateness = learning_history(correct)
    assert events.tolist() == [1, 0, 0, 2, 0]
    assert lateness.tolist() == [4, 0, 5, 5, 2]


def test_risk_scores_from_the_before_checkpoint():
    frame = pd.DataFrame({"item_id": ["a", "b"], "n_choices": [2, 2], "gold": ["0", "1"],
                          "loglikelihoods": [np.log([0.9, 0.1]), np.log([0.6, 0.4])]})
    scores = risk_scores(ChoiceScores.of(frame))
    assert scores["gold_margin"].tolist() == pytest.approx([math.log(9), math.log(0.4 / 0.6)])
    assert scores["risk"].tolist() == pytest.approx([-math.log(9), math.log(1.5)])
    assert scores["entropy"][0] == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))


def test_risk_summary_counts_only_items_right_before():
    margin = np.array([0.1, 2.0, 0.5, 3.0, -1.0, np.nan])
    entropy = np.array([0.6, 0.1, 0.5, 0.05, 0.7, np.nan])
    before = np.array([1, 1, 1, 1, 0, 1], dtype=bool)
    after = np.array([0, 1, 0, 1, 0, 0], dtype=bool)
    out = risk_summary(margin, entropy, before, after, np.zeros(6, dtype=np.int64), ["overall"],
                       n_bootstrap=100, seed=0)
    # right before with a margin: rows 0-3; forgotten: rows 0 and 2 (the two smallest margins)
    assert out["risk_n"][0] == 4 and out["risk_n_forgotten"][0] == 2
    assert out["risk_auroc"][0] == 1.0 and out["risk_ap"][0] == 1.0
    assert out["risk_ap_baseline"][0] == 0.5
    assert out["risk_entropy_auroc"][0] == 1.0


def test_delong_interval_by_hand():
    # forgotten risks 0.9, 0.8; kept 0.8, 0.1. Placements: V10 = (1, 3/4), V01 = (3/4, 1)
    # S10 = S01 = var((1, 3/4)) = 1/32: Var = 1/64 + 1/64 = 1/32; 0.875 ± 1.959964 · 0.176777
    low, high = delong_interval([0.9, 0.8, 0.8, 0.1], [True, True, False, False])
    assert low == pytest.approx(0.875 - 1.959964 * math.sqrt(1 / 32), abs=1e-6)
    assert high == 1.0  # clipped
    assert math.isnan(delong_interval([0.9, 0.1, 0.2], [True, False, False])[0])  # one forgotten item


def test_large_sample_intervals_agree_with_the_bootstrap():
    rng = np.random.default_rng(5)
    risk = rng.normal(size=1500)
    forgotten = rng.random(1500) < 1 / (1 + np.exp(2 - risk))
    boot = ranking_bootstrap(risk, forgotten, n_bootstrap=2000, rng=np.random.default_rng(6))
    delong = delong_interval(risk, forgotten)
    logit = logit_interval(average_precision(risk, forgotten), int(forgotten.sum()))
    assert delong == pytest.approx(boot[:2], abs=0.01)
    assert logit == pytest.approx(boot[2:], abs=0.02)
    # Boyd et al.: expit(logit(AP) ± z / √(n_pos AP (1 − AP))); AP = 1/2 with 16 forgotten: ±1.96 / 2
    assert logit_interval(0.5, 16) == pytest.approx((1 / (1 + math.exp(0.979982)), 1 / (1 + math.exp(-0.979982))))
    assert math.isnan(logit_interval(1.0, 5)[0])


def test_rows_switch_to_large_sample_intervals_past_the_budget():
    n = BOOTSTRAP_CELLS // 100 + 1  # 100 draws of this many items exceed the budget
    rng = np.random.default_rng(7)
    margin = rng.normal(size=n)
    after = rng.random(n) < 1 / (1 + np.exp(-margin))
    group = np.zeros(n, dtype=np.int64)
    big = risk_summary(margin, margin, np.ones(n, bool), after, group, ["overall"], n_bootstrap=100, seed=0)
    small = risk_summary(margin[:500], margin[:500], np.ones(500, bool), after[:500], group[:500], ["overall"],
                         n_bootstrap=100, seed=0)
    assert big["risk_ci_method"][0] == "delong+logit" and small["risk_ci_method"][0] == "bootstrap"
    assert (big["risk_auroc_ci_low"][0], big["risk_auroc_ci_high"][0]) == delong_interval(-margin, ~after)


def test_roc_curve_by_hand_and_its_area_is_the_auroc():
    from forgetscope.analysis.risk import roc_curve

    risk = np.array([0.9, 0.8, 0.8, 0.3, 0.1, np.nan])
    lost = np.array([True, True, False, False, True, True])  # the NaN risk is left out
    fpr, tpr = roc_curve(risk, lost)
    # thresholds 0.9 | 0.8 (one forgotten, one kept: a diagonal step) | 0.3 | 0.1
    assert fpr.tolist() == [0, 0, 0.5, 1.0, 1.0]
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1.0])
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(risk, lost)) == pytest.approx(3.5 / 6)  # pairs: 1 + 1, ½ + 1, 0 + 0
    assert roc_curve([0.1, 0.2], [False, False])[0].size == 0


def test_forgetting_by_risk_bin_by_hand():
    from forgetscope.analysis.risk import forgetting_by_risk_bin

    risk = np.arange(10, dtype=float)
    lost = np.array([0, 0, 0, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    table = forgetting_by_risk_bin(risk, lost, n_bins=5)
    assert table["n"].tolist() == [2] * 5 and table["n_forgotten"].tolist() == [0, 0, 1, 1, 2]
    assert table["forgotten_share"].tolist() == [0, 0, 0.5, 0.5, 1.0]
    assert table[["risk_low", "risk_high"]].values.tolist()[-1] == [8, 9]
    tied = forgetting_by_risk_bin(np.array([1.0, 1, 1, 2]), np.array([1, 0, 0, 1], bool), n_bins=2)
    assert tied["n"].tolist() == [3, 1]  # tied risks share a bin
