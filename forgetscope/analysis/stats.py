"""Significance and uncertainty of transitions: McNemar, bootstrap, spread over repeats."""

from __future__ import annotations

import zlib

import numpy as np
from scipy.stats import binom


def mcnemar_p(learned, forgotten):
    """Exact two-sided McNemar p-value from the discordant pairs, vectorised.

    learned = n_01 (b), forgotten = n_10 (c). Under "no change" each
    discordant item is equally likely to go either way, so
    p = min(1, 2 · BinomCDF(min(b, c); b + c, 1/2)), and p = 1 without
    discordant items. Equal to scipy.stats.binomtest(b, b + c).pvalue.
    """
    b, c = np.broadcast_arrays(np.asarray(learned, np.float64), np.asarray(forgotten, np.float64))
    n = b + c
    p = np.minimum(1.0, 2.0 * binom.cdf(np.minimum(b, c), n, 0.5))
    return np.where(n > 0, p, 1.0)


def group_rng(seed: int, label: str) -> np.random.Generator:
    """A generator for one group, so a group's interval does not depend on the others."""
    return np.random.default_rng([int(seed), zlib.crc32(label.encode("utf-8"))])


def group_names(labels) -> list[str]:
    """The label group_rng takes for each row of a summary's label columns (a DataFrame; none: "overall")."""
    if not labels.shape[1]:
        return ["overall"] * len(labels)
    return ["\x1f".join(values) for values in zip(*(labels[c].astype(str) for c in labels.columns))]


def bootstrap_draws(
    type_counts: np.ndarray,
    forgetting_share: np.ndarray,
    learning_share: np.ndarray,
    *,
    n_bootstrap: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap samples of forgetting and backward transfer, resampling items.

    Items fall into a few types: with one repeat the four transitions 00, 01,
    10, 11 (shares 1→0 = [0, 0, 1, 0], 0→1 = [0, 1, 0, 0]); with repeats, the
    item's share of repeats that went 1→0 and 0→1. Both figures are means
    over items of those shares, so drawing N items with replacement is
    exactly one multinomial draw of the type counts:
    rng.multinomial(N, counts / N, size=B), all B resamples at once.
    """
    counts = np.asarray(type_counts, dtype=np.int64)
    n = int(counts.sum())
    if n == 0 or n_bootstrap <= 0:
        return np.full(max(int(n_bootstrap), 0), np.nan), np.full(max(int(n_bootstrap), 0), np.nan)
    draws = rng.multinomial(n, counts / n, size=int(n_bootstrap))
    forgetting = draws @ np.asarray(forgetting_share, np.float64) / n
    learning = draws @ np.asarray(learning_share, np.float64) / n
    return forgetting, learning


def bootstrap_means(
    type_counts: np.ndarray, values: np.ndarray, *, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap samples of the mean over items of one per-item value.

    Items of a type share a value, so resampling N items with replacement is
    one multinomial draw of the type counts. Used for one figure at a time
    when items have several repeats: a percentile interval needs only that
    figure's own distribution, and fewer types make fewer draws.
    """
    counts = np.asarray(type_counts, dtype=np.int64)
    n = int(counts.sum())
    if n == 0 or n_bootstrap <= 0:
        return np.full(max(int(n_bootstrap), 0), np.nan)
    return rng.multinomial(n, counts / n, size=int(n_bootstrap)) @ np.asarray(values, np.float64) / n


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along the last axis (2.5 and 97.5 for level 0.95); NaN without samples."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.shape[-1] == 0:
        empty = np.full(samples.shape[:-1], np.nan)
        return empty, empty.copy()
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=-1)
    return low, high


def bootstrap_ci(
    type_counts: np.ndarray,
    forgetting_share: np.ndarray,
    learning_share: np.ndarray,
    *,
    n_bootstrap: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float, float, float]:
    """Percentile intervals of one group: (forgetting low, high, backward low, high)."""
    forgetting, learning = bootstrap_draws(
        type_counts, forgetting_share, learning_share, n_bootstrap=n_bootstrap, rng=rng
    )
    f_low, f_high = percentile_interval(forgetting, level)
    b_low, b_high = percentile_interval(learning, level)
    return float(f_low), float(f_high), float(b_low), float(b_high)


def repeat_mean_std(values: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread over repeats of per-(group, repeat) figures.

    values and present have shape (groups, repeats); only present repeats
    count. The spread is the sample standard deviation (ddof=1) with two or
    more repeats and 0 with one.
    """
    values = np.where(present, values, 0.0)
    count = present.sum(1)
    safe = np.maximum(count, 1)
    mean = values.sum(1) / safe
    squares = np.where(present, (values - mean[:, None]) ** 2, 0.0).sum(1)
    std = np.where(count >= 2, np.sqrt(squares / np.maximum(count - 1, 1)), 0.0)
    return mean, std
