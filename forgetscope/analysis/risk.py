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

Intervals (95 %). The bootstrap resamples the items with replacement: B
draws are B columns of item counts, and both figures are computed
for all draws at once from per-distinct-score weight sums (no Python loop over
draws); draws without a positive or a negative are left out. Its cost grows
with draws × items, so a comparison row uses it up to BOOTSTRAP_CELLS
(about 500 items at 1,000 draws) and the large-sample intervals beyond,
where normal theory is accurate: for AUROC DeLong's (DeLong, DeLong and
Clarke-Pearson, Biometrics 1988; the default of R's pROC),

    Var(AUROC) = S10 / n_pos + S01 / n_neg,

S10 and S01 the sample variances of the per-item placement values
V10(x) = share of kept items ranked below x (ties ½) and V01(y) = share of
forgotten items ranked above y, computed from midranks; AUROC ± 1.96 √Var,
clipped to [0, 1]. For AP the logit interval of Boyd, Eng and Page (ECML
PKDD 2013): expit(logit(AP) ± 1.96 / √(n_pos · AP · (1 − AP))), undefined
when AP is 0 or 1. `risk_ci_method` says which a row got.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm, rankdata

from .distances import ChoiceScores, entropy, gold_margin
from .stats import percentile_interval

#: Columns the per-group summary adds (risk_summary).
RISK_COLUMNS = [
    "risk_n", "risk_n_forgotten", "risk_auroc", "risk_auroc_ci_low", "risk_auroc_ci_high",
    "risk_ap", "risk_ap_ci_low", "risk_ap_ci_high", "risk_ap_baseline",
    "risk_entropy_auroc", "risk_entropy_ap", "risk_ci_method",
]
#: Most bootstrap weights (draws × items) held at once.
_CHUNK_CELLS = 1 << 22
#: A comparison row is bootstrapped up to this many draws × items; beyond, large-sample intervals.
BOOTSTRAP_CELLS = 1 << 19


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
    return float(_weighted_figures(risk, forgotten, np.ones((len(risk), 1)))[1][0])


def _weighted_figures(risk: np.ndarray, forgotten: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP for each column of item weights (items, draws); NaN where a draw lacks a class.

    Items are sorted by risk once; tied risks are summed into one level, so
    they count ½ against each other (AUROC) and enter together (AP).
    """
    order = np.argsort(risk, kind="stable")
    sorted_risk = risk[order]
    w = weights[order]  # (items, draws): sums along axis 0 run over contiguous rows
    lost = forgotten[order]
    pos = np.where(lost[:, None], w, 0.0)
    neg = w - pos
    distinct = np.concatenate([[True], sorted_risk[1:] != sorted_risk[:-1]])
    if not distinct.all():
        starts = np.flatnonzero(distinct)
        pos, neg = np.add.reduceat(pos, starts, axis=0), np.add.reduceat(neg, starts, axis=0)
    total_pos, total_neg = pos.sum(0), neg.sum(0)
    below = np.cumsum(neg, axis=0)  # kept items with a lower risk, and half the tied ones
    below -= 0.5 * neg
    tp = np.cumsum(pos[::-1], axis=0)  # flag every item with risk ≥ t, t from the highest down
    flagged = tp + np.cumsum(neg[::-1], axis=0)
    precision = np.divide(tp, flagged, out=np.zeros_like(tp), where=flagged > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        area = np.einsum("ij,ij->j", pos, below) / (total_pos * total_neg)
        ap = np.einsum("ij,ij->j", pos[::-1], precision) / total_pos
    return np.where((total_pos > 0) & (total_neg > 0), area, np.nan), np.where(total_pos > 0, ap, np.nan)


def roc_curve(risk, forgotten) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) of flagging every item with risk ≥ t, for t from +∞ down
    through each distinct risk (tied items enter together: one diagonal step), starting at (0, 0) and
    ending at (1, 1). The trapezoid area under it is `auroc` (ties count ½). Empty arrays without both
    forgotten and kept items; NaN risks are left out."""
    risk, forgotten = _labelled(risk, forgotten)
    n_pos = int(forgotten.sum())
    n_neg = len(forgotten) - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-risk, kind="stable")
    sorted_risk, lost = risk[order], forgotten[order]
    last_of_level = np.concatenate([sorted_risk[1:] != sorted_risk[:-1], [True]])
    tp = np.cumsum(lost)[last_of_level]
    fp = np.cumsum(~lost)[last_of_level]
    return np.concatenate([[0.0], fp / n_neg]), np.concatenate([[0.0], tp / n_pos])


def forgetting_by_risk_bin(risk, forgotten, n_bins: int = 10) -> pd.DataFrame:
    """The items split into `n_bins` bins of equal count by risk (lowest first; tied risks share a bin),
    and per bin: n, n_forgotten, the forgotten share and the bin's risk range. NaN risks are left out."""
    risk, forgotten = _labelled(risk, forgotten)
    columns = ["bin", "n", "n_forgotten", "forgotten_share", "risk_low", "risk_high"]
    if not len(risk):
        return pd.DataFrame(columns=columns)
    ranks = rankdata(risk, method="min") - 1  # tied risks: one rank, so one bin
    bins = np.minimum(ranks * n_bins // len(risk), n_bins - 1).astype(np.int64)
    present = np.unique(bins)
    n = np.bincount(bins, minlength=n_bins)[present]
    lost = np.bincount(bins, weights=forgotten.astype(np.float64), minlength=n_bins)[present]
    low = np.array([risk[bins == b].min() for b in present])
    high = np.array([risk[bins == b].max() for b in present])
    return pd.DataFrame({"bin": present, "n": n, "n_forgotten": lost.astype(np.int64), "forgotten_share": lost / n,
                         "risk_low": low, "risk_high": high}, columns=columns)


def bootstrap_weights(n_items: int, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """(items, draws) counts: how often each item is drawn in each of `n_draws` resamples of n_items
    items with replacement (uniform indices, counted with one bincount)."""
    picks = rng.integers(0, n_items, size=(n_draws, n_items))
    picks += (np.arange(n_draws) * n_items)[:, None]
    return np.bincount(picks.ravel(), minlength=n_draws * n_items).reshape(n_draws, n_items).T.astype(np.float64)


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
        area, ap = _weighted_figures(risk, forgotten, bootstrap_weights(n, min(chunk, n_bootstrap - start), rng))
        areas.append(area)
        aps.append(ap)
    out = []
    for samples in (np.concatenate(areas), np.concatenate(aps)):
        low, high = percentile_interval(samples[np.isfinite(samples)], level)
        out += [float(low), float(high)]
    return tuple(out)


def delong_interval(risk, forgotten, level: float = 0.95) -> tuple[float, float]:
    """DeLong's normal interval of the AUROC (placement values from midranks), clipped to [0, 1];
    NaN without two forgotten and two kept items."""
    risk, forgotten = _labelled(risk, forgotten)
    n_pos = int(forgotten.sum())
    n_neg = len(forgotten) - n_pos
    if n_pos < 2 or n_neg < 2:
        return float("nan"), float("nan")
    ranks = rankdata(risk)
    pos_risk, neg_risk = risk[forgotten], risk[~forgotten]
    v10 = (ranks[forgotten] - rankdata(pos_risk)) / n_neg  # kept items below each forgotten one
    v01 = 1.0 - (ranks[~forgotten] - rankdata(neg_risk)) / n_pos  # forgotten items above each kept one
    area = v10.mean()
    spread = math.sqrt(v10.var(ddof=1) / n_pos + v01.var(ddof=1) / n_neg)
    z = float(norm.ppf(0.5 + level / 2))
    return max(area - z * spread, 0.0), min(area + z * spread, 1.0)


def logit_interval(ap: float, n_forgotten: int, level: float = 0.95) -> tuple[float, float]:
    """Boyd et al.'s (2013) logit interval of an average precision; NaN when AP is 0 or 1 or nothing was forgotten."""
    if not (0.0 < ap < 1.0) or n_forgotten < 1:
        return float("nan"), float("nan")
    eta = math.log(ap / (1 - ap))
    tau = 1.0 / math.sqrt(n_forgotten * ap * (1 - ap))
    z = float(norm.ppf(0.5 + level / 2))
    return float(expit(eta - z * tau)), float(expit(eta + z * tau))


def risk_summary(margin_before: np.ndarray, entropy_before: np.ndarray, before: np.ndarray, after: np.ndarray,
                 group: np.ndarray, names: list[str], *, n_bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    """RISK_COLUMNS per group (`group` codes each row's group, −1: in none; `names` label the groups and
    seed their bootstrap generators), among the rows right before with a known margin."""
    from .stats import group_rng

    group = np.asarray(group, np.int64)
    right = np.asarray(before, bool) & (group >= 0)
    forgotten = ~np.asarray(after, bool)
    out = {name: np.full(len(names), np.nan) for name in RISK_COLUMNS if name != "risk_ci_method"}
    out["risk_ci_method"] = np.full(len(names), None, dtype=object)
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
        if n_bootstrap <= 0:
            continue
        if n_bootstrap * len(at) <= BOOTSTRAP_CELLS:
            intervals = ranking_bootstrap(risk, lost, n_bootstrap=n_bootstrap, rng=group_rng(seed, name + "\x1frisk"))
            out["risk_ci_method"][g] = "bootstrap"
        else:
            intervals = delong_interval(risk, lost) + logit_interval(out["risk_ap"][g], int(lost.sum()))
            out["risk_ci_method"][g] = "delong+logit"
        (out["risk_auroc_ci_low"][g], out["risk_auroc_ci_high"][g], out["risk_ap_ci_low"][g],
         out["risk_ap_ci_high"][g]) = intervals
    return out


#: Columns of rank_items, in order (the history columns only with a history).
RANK_COLUMNS = ["task", "category", "item_id", "correct", "gold_margin", "risk", "entropy"]
HISTORY_COLUMNS = ["forgetting_events", "learning_lateness"]


def _first_repeat(records: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, item_id): the lowest repeat (scoring multiple-choice items is deterministic)."""
    if "repeat" not in records.columns:
        return records.reset_index(drop=True)
    ordered = records.sort_values("repeat", kind="stable")
    return ordered.drop_duplicates(["task", "item_id"]).sort_index().reset_index(drop=True)


def rank_items(records: pd.DataFrame, metric: str = "acc", history: list[pd.DataFrame] | None = None) -> pd.DataFrame:
    """The items of one checkpoint's records ranked by forgetting risk: right items first, highest risk first.

    Per item (its lowest repeat): correct (under `metric`), gold_margin, risk = −gold_margin and
    entropy; with `history` (earlier checkpoints' records, oldest first) also forgetting_events and
    learning_lateness over history + this checkpoint. Items without a margin (generative) come last.
    Every history checkpoint must hold every item (ValueError naming the first missing one).
    """
    from ..records.schema import metric_column

    rows = _first_repeat(records)
    scores = risk_scores(ChoiceScores.of(rows, metric))
    column = metric_column(metric)
    out = pd.DataFrame({
        "task": rows["task"].astype(str).to_numpy(),
        "category": rows["category"].astype(str).to_numpy() if "category" in rows.columns else "",
        "item_id": rows["item_id"].astype(str).to_numpy(),
        "correct": rows[column].to_numpy(dtype=bool),
    })
    for name in ("gold_margin", "risk", "entropy"):
        out[name] = scores[name].to_numpy()
    columns = list(RANK_COLUMNS)
    if history:
        correct = np.empty((len(out), len(history) + 1), dtype=bool)
        keys = pd.MultiIndex.from_arrays([out["task"], out["item_id"]])
        for position, earlier in enumerate(history):
            earlier = _first_repeat(earlier)
            index = pd.MultiIndex.from_arrays([earlier["task"].astype(str), earlier["item_id"].astype(str)])
            found = index.get_indexer(keys)
            if (found < 0).any():
                missing = int(np.flatnonzero(found < 0)[0])
                raise ValueError(f"history checkpoint #{position + 1} has no record of task {out['task'][missing]!r} "
                                 f"item {out['item_id'][missing]!r}; evaluate every checkpoint on the same items")
            correct[:, position] = earlier[column].to_numpy(dtype=bool)[found]
        correct[:, -1] = out["correct"].to_numpy()
        out["forgetting_events"], out["learning_lateness"] = learning_history(correct)
        columns += HISTORY_COLUMNS
    order = np.lexsort((-np.nan_to_num(out["risk"].to_numpy(), nan=-np.inf), ~out["correct"].to_numpy()))
    return out[columns].iloc[order].reset_index(drop=True)
