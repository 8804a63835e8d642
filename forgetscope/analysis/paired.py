"""Paired statistics beyond the exact McNemar p: mid-p, a bootstrap of the accuracy change,
the smallest change a comparison could detect, and an equivalence test for forgetting.

Notation: N paired items, b = n_01 (learned), c = n_10 (forgotten), the
discordant share ψ = (b + c) / N, and the accuracy change Δ = (b − c) / N.

mid-p McNemar (Fagerland, Lydersen and Laake, BMC Med Res Methodol 2013).
    The exact test conditions on b + c and treats b as Binomial(b + c, 1/2);
    its two-sided p is 2 · P(X ≤ min(b, c)), capped at 1. The mid-p counts the
    observed table only half: p_mid = 2 · P(X ≤ min(b, c)) − P(X = min(b, c)),
    which is never above 1 (it is exactly 1 when b = c). It keeps the level
    close to nominal where the exact test is conservative (few discordant items).

Minimum detectable effect (MDE).
    Connor's sample size for McNemar's test (Biometrics 43, 1987),
        N = (z_{1−α/2} √ψ + z_{power} √(ψ − Δ²))² / Δ²,
    solved for Δ with N and ψ fixed (a quadratic in Δ; the root with
    Δ √N ≥ z_{1−α/2} √ψ):
        MDE = √ψ · (z_a √N + z_b √(N − z_a² + z_b²)) / (N + z_b²),
    z_a = z_{1−α/2}, z_b = z_{power}. It is the |accuracy change| a two-sided
    test at level α would detect with the given power, for this N and this
    discordance. Null when ψ = 0 (no discordance to scale it by) or N is too
    small for the root to exist (N < z_a² − z_b², about 3 items). An MDE above
    ψ cannot be reached at all: no split of the ψ·N discordant items would do.

Equivalence test (prove forgetting below a threshold t).
    H0: F_true ≥ t against H1: F_true < t, one-sided at level α, with the
    chance term F_chance taken as known (as `forgetting_true` and the gate
    take it): with c of N items forgotten and r = min(F_chance + t, 1),
    p = P[Binomial(N, r) ≤ c]; the claim is proven when p < α. Equivalently
    the upper one-sided (1 − α) Clopper–Pearson bound U of F satisfies
    U − F_chance < t: `forgetting_true_upper` = max(U − F_chance, 0). A
    comparison on few items has a wide bound and so fails to prove anything:
    it fails closed instead of passing for lack of evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import beta, binom, norm

from .stats import bootstrap_means, percentile_interval


def mcnemar_midp(learned, forgotten) -> np.ndarray:
    """Mid-p McNemar: 2 · P(X ≤ min(b, c)) − P(X = min(b, c)), X ~ Binomial(b + c, 1/2); 1 without discordant items.

    learned = b = n_01, forgotten = c = n_10 (integer counts, broadcast together).
    """
    b, c = np.broadcast_arrays(np.asarray(learned, np.float64), np.asarray(forgotten, np.float64))
    n = b + c
    low = np.minimum(b, c)
    p = 2.0 * binom.cdf(low, n, 0.5) - binom.pmf(low, n, 0.5)
    return np.where((n > 0) & (b != c), np.clip(p, 0.0, 1.0), 1.0)  # b = c: exactly 1, free of rounding


def minimum_detectable_effect(n, discordant_share, *, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Smallest |accuracy change| a two-sided McNemar test at `alpha` detects with `power`,
    for N items with a discordant share ψ (Connor 1987, solved for the effect; see the module doc).

    NaN where ψ = 0 or N is too small for a solution.
    """
    n, psi = np.broadcast_arrays(np.asarray(n, np.float64), np.asarray(discordant_share, np.float64))
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt(n - z_a**2 + z_b**2)
        effect = np.sqrt(psi) * (z_a * np.sqrt(n) + z_b * spread) / (n + z_b**2)
        # the root is valid only where Δ √N ≥ z_a √ψ (the squared equation has a spurious second root)
        valid = (n > 0) & (psi > 0) & np.isfinite(effect) & (effect * np.sqrt(n) >= z_a * np.sqrt(psi) * (1 - 1e-12))
    return np.where(valid, effect, np.nan)


def connor_sample_size(effect, discordant_share, *, alpha: float = 0.05, power: float = 0.8) -> np.ndarray:
    """Connor's (1987) number of pairs for McNemar's test to detect an accuracy change `effect`
    with discordant share ψ: (z_a √ψ + z_b √(ψ − Δ²))² / Δ² (not rounded up)."""
    delta, psi = np.broadcast_arrays(np.asarray(effect, np.float64), np.asarray(discordant_share, np.float64))
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (z_a * np.sqrt(psi) + z_b * np.sqrt(psi - delta**2)) ** 2 / delta**2


def accuracy_change_ci(
    before, after, item=None, *, n_bootstrap: int = 1000, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """Paired bootstrap percentile interval of acc_after − acc_before.

    Items are resampled with replacement, each keeping both its answers (that
    is what makes it paired). `item` (codes) groups the rows of one item's
    repeats: an item's change is its mean over its repeats. Items with the
    same change resample alike, so one draw is one multinomial draw of the
    counts of the distinct per-item changes (a handful: −1, 0, +1 without
    repeats), all `n_bootstrap` draws at once (stats.bootstrap_means).
    """
    change = np.asarray(after, np.float64) - np.asarray(before, np.float64)
    if item is not None and len(change):
        item = np.asarray(item, np.int64)
        rows = np.bincount(item)
        present = rows > 0
        change = np.bincount(item, weights=change)[present] / rows[present]
    values, counts = np.unique(change, return_counts=True)
    return accuracy_change_interval(counts, values, n_bootstrap=n_bootstrap, rng=rng, level=level)


def accuracy_change_interval(counts, changes, *, n_bootstrap: int = 1000, rng: np.random.Generator,
                             level: float = 0.95) -> tuple[float, float]:
    """accuracy_change_ci from the item counts of each distinct per-item change (`changes`)."""
    draws = bootstrap_means(np.asarray(counts), np.asarray(changes, np.float64), n_bootstrap=n_bootstrap, rng=rng)
    low, high = percentile_interval(draws, level)
    return float(low), float(high)


@dataclass(frozen=True)
class Equivalence:
    """Outcome of `prove_forgetting_below` (arrays broadcast over the inputs)."""

    upper: np.ndarray
    """Upper one-sided (1 − α) Clopper–Pearson bound of F."""
    forgetting_true_upper: np.ndarray
    """max(upper − F_chance, 0): the bound of F_true."""
    p_value: np.ndarray
    """P[Binomial(N, min(F_chance + t, 1)) ≤ n_10]: small when F_true is clearly below t."""
    proven: np.ndarray
    """p_value < alpha (equivalently forgetting_true_upper < t): F_true < t is shown."""


def forgetting_upper_bound(forgotten, n, *, alpha: float = 0.05) -> np.ndarray:
    """Upper one-sided (1 − α) Clopper–Pearson bound of F = n_10 / N: the r solving
    P[Binomial(N, r) ≤ n_10] = α, i.e. the (1 − α) quantile of Beta(n_10 + 1, N − n_10); 1 when n_10 = N."""
    x, n = np.broadcast_arrays(np.asarray(forgotten, np.float64), np.asarray(n, np.float64))
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1 - alpha, x + 1, np.maximum(n - x, 1e-300))
    return np.where(x >= n, 1.0, bound)


def prove_forgetting_below(
    forgotten, n, threshold, *, chance=0.0, alpha: float = 0.05
) -> Equivalence:
    """One-sided test that chance-adjusted forgetting is below `threshold` (see the module doc).

    forgotten (n_10) and n are integer counts; chance is the row's F_chance
    (0 tests raw forgetting, and is conservative for F_true). No items: not proven.
    """
    x, n, t, chance = np.broadcast_arrays(np.asarray(forgotten, np.float64), np.asarray(n, np.float64),
                                          np.asarray(threshold, np.float64), np.asarray(chance, np.float64))
    upper = forgetting_upper_bound(x, n, alpha=alpha)
    rate = np.minimum(chance + t, 1.0)
    p_value = np.where(n > 0, binom.cdf(x, n, rate), 1.0)
    true_upper = np.maximum(upper - chance, 0.0)
    return Equivalence(upper, true_upper, p_value, (n > 0) & (p_value < alpha))
