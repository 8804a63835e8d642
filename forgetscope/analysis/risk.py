"""Which items a fine-tune is likely to forget, judged from the "before" checkpoint alone.

Scores per item, computable before any fine-tune runs:

- gold margin: best gold choice score minus best other choice score
  (distances.gold_margin; the scores are those of the metric). A small or
  negative margin means the item is held loosely. As a risk score it is
  taken negated, risk = −margin, so a higher risk means more likely forgotten.
- entropy of the choice distribution softmax(scores), in nats (higher: less sure).
- from a sequence of earlier checkpoints' correctness (oldest first, the
  "before" checkpoint last), after Toneva et al. (ICLR 2019):
  forgetting events, the number of consecutive pairs that went right → wrong;
  learning lateness, the position (0-based) of the checkpoint from which on
  the item stayed right to the end, T (the sequence length) when it is wrong
  at the last one. Items learned late or forgotten before are expected to be
  forgotten again.

How well a score ranks the observed forgetting is measured among the items
right before: positives went 1→0, negatives stayed 1→1.

    AUROC = P(risk of a forgotten item > risk of a kept one) + ½ P(equal)
          = U / (n_pos · n_neg),

U the Mann–Whitney statistic of the positives with average ranks for ties
(scipy.stats.rankdata). 0.5 is a useless score, 1 a perfect one.

    AP = Σ_t (R_t − R_{t−1}) · P_t,

over the distinct risk values t from the highest down, R_t and P_t the
recall and precision of flagging every item with risk ≥ t (tied items enter
together, as scikit-learn's average_precision_score does). A useless score
has an AP near the share of positives (`risk_ap_baseline`).

Bootstrap intervals resample the items with replacement: B draws are B rows
of multinomial item weights, and both figures are computed for all draws at
once from per-distinct-score weight sums (no Python loop over draws); draws
without a positive or a negative are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .distances import ChoiceScores, entropy, gold_margin
from .stats import percentile_interval

#: Columns the per-group summary adds (risk_summary).
RISK_COLUMNS = [
    "risk_n", "risk_n_forgotten", "risk_auroc", "risk_auroc_ci_low", "risk_auroc_ci_high",
    "risk_ap", "risk_ap_ci_low", "risk_ap_ci_high", "risk_ap_baseline",
    "risk_entropy_auroc", "risk_entropy_ap",
]
#: Most bootstrap weights (draws × items) held at once.
_CHUNK_CELLS = 1 << 22


def learning_history(correct) -> tuple[np.ndarray, np.ndarray]:
    """Per item (rows of `correct`, shape (items, T), oldest checkpoint first): forgetting events
    (right → wrong between consecutive checkpoints) and learning lateness (first position from which
    the item stays right; T when wrong at the last)."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise ValueError("correct must have shape (items, checkpoints)")
    n_items, length = correct.shape
    events = (correct[:, :-1] & ~correct[:, 1:]).sum(1) if length > 1 else np.zeros(n_items, np.int64)
    # last wrong position + 1 (0 when never wrong); T when wrong at the end
    wrong = ~correct
    last_wrong = np.where(wrong.any(1), length - 1 - np.argmax(wrong[:, ::-1], axis=1), -1)
    return events.astype(np.int64), (last_wrong + 1).astype(np.int64)


def risk_scores(scores: ChoiceScores) -> pd.DataFrame:
    """Per row of `scores` (one checkpoint): gold_margin, risk (= −gold_margin) and entropy."""
    margin = gold_margin(scores)
    return pd.DataFrame({"gold_margin": margin, "risk": -margin, "entropy": entropy(scores)})


def _labelled(risk, forgotten) -> tuple[np.ndarray, np.ndarray]:
    risk = np.asarray(risk, np.float64)
    forgotten = np.asarray(forgotten, bool)
    if risk.shape != forgotten.shape:
        raise ValueError(f"risk has {risk.shape} values, forgotten {forgotten.shape}")
    known = ~np.isnan(risk)
    return risk[known], forgotten[known]


def auroc(risk, forgotten) -> float:
    """Area under the ROC curve of `risk` for the `forgotten` items (ties: average ranks); NaN
    without both forgotten and kept items. NaN risks are left out."""
    risk, forgotten = _labelled(risk, forgotten)
    n_pos = int(forgotten.sum())
    n_neg = len(forgotten) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(risk)  # average ranks for ties
    u = ranks[forgotten].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def average_precision(risk, forgotten) -> float:
    """Average precision of `risk` for the `forgotten` items, tied risks entering together; NaN without positives."""
    risk, forgotten = _labelled(risk, forgotten)
    if not forgotten.any():
        return float("nan")
    return float(_weighted_figures(risk, forgotten, np.ones((1, len(risk))))[1][0])


def _weighted_figures(risk: np.ndarray, forgotten: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP for each row of item weights (draws, items); NaN where a draw lacks a class."""
    order = np.argsort(risk, kind="stable")
    sorted_risk = risk[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_risk[1:] != sorted_risk[:-1]]))
    w = weights[:, order]
    pos = np.add.reduceat(w * forgotten[order], starts, axis=1)  # (draws, distinct risks), ascending
    neg = np.add.reduceat(w * ~forgotten[order], starts, axis=1)
    total_pos, total_neg = pos.sum(1), neg.sum(1)
    below = np.cumsum(neg, axis=1) - neg  # kept items with a lower risk
    with np.errstate(invalid="ignore", divide="ignore"):
        area = (pos * (below + 0.5 * neg)).sum(1) / (total_pos * total_neg)
        tp = np.cumsum(pos[:, ::-1], axis=1)  # flag every item with risk ≥ t, t from the highest down
        fp = np.cumsum(neg[:, ::-1], axis=1)
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (pos[:, ::-1] * precision).sum(1) / total_pos
    valid = (total_pos > 0) & (total_neg > 0)
    return np.where(valid, area, np.nan), np.where(total_pos > 0, ap, np.nan)


def ranking_bootstrap(risk, forgotten, *, n_bootstrap: int = 1000, rng: np.random.Generator,
                      level: float = 0.95) -> tuple[float, float, float, float]:
    """Percentile intervals (AUROC low, high, AP low, high) from resampling the items."""
    risk, forgotten = _labelled(risk, forgotten)
    n = len(risk)
    n_bootstrap = max(int(n_bootstrap or 0), 0)
    if n == 0 or n_bootstrap == 0 or not forgotten.any() or forgotten.all():
        return (float("nan"),) * 4
    areas, aps = [], []
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_bootstrap, chunk):
        size = min(chunk, n_bootstrap - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)
        area, ap = _weighted_figures(risk, forgotten, weights)
        areas.append(area)
        aps.append(ap)
    area, ap = np.concatenate(areas), np.concatenate(aps)
    out = []
    for samples in (area, ap):
        samples = samples[np.isfinite(samples)]
        low, high = percentile_interval(samples, level)
        out += [float(low), float(high)]
    return tuple(out)


def risk_summary(margin_before: np.ndarray, entropy_before: np.ndarray, before: np.ndarray, after: np.ndarray,
                 group: np.ndarray, names: list[str], *, n_bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    """RISK_COLUMNS per group (`group` codes each row's group, −1: in none; `names` label the groups and
    seed their bootstrap generators), among the rows right before with a known margin."""
    from .stats import group_rng

    group = np.asarray(group, np.int64)
    right = np.asarray(before, bool) & (group >= 0)
    forgotten = ~np.asarray(after, bool)
    out = {name: np.full(len(names), np.nan) for name in RISK_COLUMNS}
    rows = np.flatnonzero(right & np.isfinite(margin_before))
    order = rows[np.argsort(group[rows], kind="stable")]
    bounds = np.searchsorted(group[order], np.arange(len(names) + 1))
    for g, name in enumerate(names):
        at = order[bounds[g]:bounds[g + 1]]
        risk, lost = -margin_before[at], forgotten[at]
        out["risk_n"][g], out["risk_n_forgotten"][g] = len(at), int(lost.sum())
        if not len(at):
            continue
        out["risk_ap_baseline"][g] = lost.mean()
        out["risk_auroc"][g], out["risk_ap"][g] = auroc(risk, lost), average_precision(risk, lost)
        out["risk_entropy_auroc"][g] = auroc(entropy_before[at], lost)
        out["risk_entropy_ap"][g] = average_precision(entropy_before[at], lost)
        (out["risk_auroc_ci_low"][g], out["risk_auroc_ci_high"][g], out["risk_ap_ci_low"][g],
         out["risk_ap_ci_high"][g]) = ranking_bootstrap(risk, lost, n_bootstrap=n_bootstrap,
                                                        rng=group_rng(seed, name + "\x1frisk"))
    return out
