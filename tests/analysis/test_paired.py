"""Paired statistics against hand-computed tables and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import binom, binomtest

from forgetscope.analysis.paired import (
    accuracy_change_ci,
    connor_sample_size,
    forgetting_upper_bound,
    mcnemar_midp,
    minimum_detectable_effect,
    prove_forgetting_below,
)
from forgetscope.analysis.stats import mcnemar_p


@pytest.mark.parametrize(
    "learned, forgotten, expected",
    [
        # 2 · P(X ≤ 2 | 5) − P(X = 2 | 5) = 2 · 16/32 − 10/32
        (2, 3, 22 / 32),
        # 2 · (1 + 13 + 78 + 286)/8192 − 286/8192 = 470/8192
        (3, 10, 470 / 8192),
        (10, 3, 470 / 8192),
        # 2 · 1/16 − 1/16
        (0, 4, 1 / 16),
        (5, 5, 1.0),
        (0, 0, 1.0),
        (0, 1, 0.5),  # 2 · 1/2 − 1/2: one discordant item proves nothing
    ],
)
def test_midp_hand_table(learned, forgotten, expected):
    assert mcnemar_midp(learned, forgotten) == pytest.approx(expected, abs=1e-15)


def test_midp_is_exact_p_minus_point_probability_against_scipy():
    b, c = np.meshgrid(np.arange(0, 25), np.arange(0, 25))
    midp = mcnemar_midp(b, c)
    for bi, ci, got in zip(b.ravel(), c.ravel(), midp.ravel()):
        if bi == ci:
            assert got == pytest.approx(1.0)
            continue
        exact = binomtest(int(bi), int(bi + ci)).pvalue
        assert got == pytest.approx(exact - binom.pmf(min(bi, ci), bi + ci, 0.5), abs=1e-12)
    assert (midp <= mcnemar_p(b, c) + 1e-15).all()  # never more conservative than the exact test


def test_mde_hand_value():
    # N = 100, ψ = 0.2, α = 0.05, power 0.8: z_a = 1.959964, z_b = 0.841621
    # √0.2 · (1.959964 · 10 + 0.841621 · √(100 − 3.841459 + 0.708326)) / (100 + 0.708326)
    # = 0.447214 · (19.59964 + 0.841621 · 9.842097) / 100.708326 = 0.447214 · 27.88296 / 100.708326 = 0.123819
    assert minimum_detectable_effect(100, 0.2) == pytest.approx(0.123819, abs=2e-6)


@pytest.mark.parametrize("n, psi", [(10, 0.5), (100, 0.2), (1000, 0.05), (50_000, 0.01)])
def test_mde_inverts_connors_sample_size(n, psi):
    mde = minimum_detectable_effect(n, psi)
    assert connor_sample_size(mde, psi) == pytest.approx(n, rel=1e-9)
    # and it is the root of Connor's equation found numerically
    root = brentq(lambda d: connor_sample_size(d, psi) - n, 1e-9, math.sqrt(psi) - 1e-12)
    assert mde == pytest.approx(root, rel=1e-8)


def test_mde_undefined_without_discordance_or_items():
    out = minimum_detectable_effect([0, 2, 100, 100], [0.3, 0.3, 0.0, np.nan])
    assert np.isnan(out).all()


def test_mde_has_the_promised_power_by_simulation():
    # N items, discordant share ψ, accuracy change Δ = MDE: a two-sided McNemar z-test rejects ≈ 80 %.
    n, psi = 400, 0.2
    delta = float(minimum_detectable_effect(n, psi))
    rng = np.random.default_rng(3)
    p01, p10 = (psi + delta) / 2, (psi - delta) / 2
    draws = rng.multinomial(n, [p01, p10, 1 - psi], size=20_000)
    b, c = draws[:, 0], draws[:, 1]
    z = (b - c) / np.sqrt(np.maximum(b + c, 1))
    power = np.mean(np.abs(z) > 1.959964)
    assert power == pytest.approx(0.8, abs=0.02)


def test_upper_bound_is_clopper_pearson_against_scipy():
    for x, n in [(0, 10), (2, 100), (7, 50), (50, 50), (13, 1000)]:
        expected = binomtest(x, n).proportion_ci(confidence_level=0.9, method="exact").high
        assert forgetting_upper_bound(x, n, alpha=0.05) == pytest.approx(expected, rel=1e-9)
    # x = 0: 1 − α^(1/N)
    assert forgetting_upper_bound(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100))


def test_prove_below_hand_values_and_scipy():
    # 0 of 100 forgotten, t = 0.05: p = 0.95^100 = 0.00592 < 0.05: proven
    result = prove_forgetting_below(0, 100, 0.05)
    assert result.p_value == pytest.approx(0.95**100)
    assert bool(result.proven)
    # 2 of 100: p = P[Bin(100, 0.05) ≤ 2] = 0.1183 ≥ 0.05: not proven
    result = prove_forgetting_below(2, 100, 0.05)
    assert result.p_value == pytest.approx(binomtest(2, 100, 0.05, alternative="less").pvalue)
    assert result.p_value == pytest.approx(0.95**100 + 100 * 0.05 * 0.95**99 + 4950 * 0.05**2 * 0.95**98)
    assert not bool(result.proven)
    # the chance term moves the tested rate: F_chance 0.03 + t 0.02 = 0.05 again
    with_chance = prove_forgetting_below(2, 100, 0.02, chance=0.03)
    assert with_chance.p_value == pytest.approx(result.p_value)
    assert with_chance.forgetting_true_upper == pytest.approx(result.upper - 0.03)


def test_too_few_items_fail_closed():
    # nothing forgotten of 10 items does not show F < 0.05: 0.95^10 = 0.60
    result = prove_forgetting_below(0, 10, 0.05)
    assert result.p_value == pytest.approx(0.95**10)
    assert not bool(result.proven)
    assert not bool(prove_forgetting_below(0, 0, 0.05).proven)


def test_prove_below_agrees_with_its_bound():
    x, n = np.meshgrid(np.arange(0, 40), [20, 60, 200, 500])
    for t in (0.02, 0.05, 0.1):
        for chance in (0.0, 0.04):
            result = prove_forgetting_below(x, n, t, chance=chance)
            assert np.array_equal(result.proven, result.forgetting_true_upper < t)


def test_accuracy_change_ci_matches_the_normal_approximation():
    # 200 items: 30 learned, 10 forgotten: Δ = 0.1, sd = √((ψ − Δ²)/N) = √(0.19/200) = 0.03082
    before = np.r_[np.zeros(30), np.ones(10), np.ones(100), np.zeros(60)]
    after = np.r_[np.ones(30), np.zeros(10), np.ones(100), np.zeros(60)]
    low, high = accuracy_change_ci(before, after, n_bootstrap=20_000, rng=np.random.default_rng(0))
    sd = math.sqrt(0.19 / 200)
    assert low == pytest.approx(0.1 - 1.959964 * sd, abs=0.006)
    assert high == pytest.approx(0.1 + 1.959964 * sd, abs=0.006)
    again = accuracy_change_ci(before, after, n_bootstrap=20_000, rng=np.random.default_rng(0))
    assert again == (low, high)


def test_accuracy_change_ci_without_change_and_with_repeats():
    same = np.array([1, 0, 1, 1], dtype=bool)
    assert accuracy_change_ci(same, same, rng=np.random.default_rng(0)) == (0.0, 0.0)
    # two items, two repeats each: item 0 goes (1,1) → (0,1): change −1/2; item 1 stays: 0.
    # Means of 2 resampled items take −1/2, −1/4 or 0, each at least once in 2000 draws.
    before = np.array([1, 1, 0, 0], dtype=bool)
    after = np.array([0, 1, 0, 0], dtype=bool)
    item = np.array([0, 0, 1, 1])
    low, high = accuracy_change_ci(before, after, item, n_bootstrap=2000, rng=np.random.default_rng(1), level=0.99)
    assert (low, high) == (-0.5, 0.0)
