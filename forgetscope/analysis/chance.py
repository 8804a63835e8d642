"""How much forgetting guessing alone would produce, and how much is possible at all.

A model that guesses uniformly among k choices, independently before and
after, is right with probability 1/k each time; some of its items then flip
1→0 by pure chance. For a group of items with accuracies a_pre and a_post,
uniform guessing on the items the model does not know gives

    F_chance  = (1 - a_pre)(1 - a_post) / (k - 1)      (= BT_chance)
    F_max     = max((k a_pre - 1) / (k - 1), 0)        items truly known before
    BT_max    = max((k a_post - 1) / (k - 1), 0)

and the forgetting beyond chance is F_true = max(F - F_chance, 0).

These formulas hold for a group of items that share one guessing model: one
task and one k. Any reported row (a task, a category, overall, a category
across tasks) is therefore split into its (task, k) subgroups, with weights
w_g = n_g / N over the row's own items; each subgroup's a_pre and a_post are
computed on the row's items of it, the terms above are computed per subgroup
and summed with those weights, and only then is F_true clipped at zero, once
for the row. k is every item's own number of choices, never a global default;
tasks are never pooled, since two tasks with the same k but different
accuracies have a different expected number of chance flips than their pool.

Two edge cases, both limits of the formulas:
- generative items (k = 0, free-form answers) cannot be guessed: no chance
  term, and their max term is w_g a_pre (resp. a_post), the k → ∞ limit;
- single-choice items (k = 1) are always right, so they can neither be
  forgotten nor learned: they add 0 to F_chance and 0 to F_max and BT_max.
"""

from __future__ import annotations

import numpy as np

#: Order of the last axis of every transition-count array: before→after.
TRANSITIONS = ("00", "01", "10", "11")


def chance_forgetting(acc_before, acc_after, n_choices):
    """Expected forgetting (= backward transfer) of a uniform guesser, per subgroup of equal task and k."""
    a_pre, a_post, k = np.broadcast_arrays(
        np.asarray(acc_before, float), np.asarray(acc_after, float), np.asarray(n_choices, float)
    )
    guessable = k >= 2
    return np.where(guessable, (1 - a_pre) * (1 - a_post) / np.where(guessable, k - 1, 1), 0.0)


def max_forgetting(accuracy, n_choices):
    """Largest forgetting beyond chance a subgroup of equal task and k allows (F_max from a_pre,
    BT_max from a_post): the share of items known beyond guessing."""
    acc, k = np.broadcast_arrays(np.asarray(accuracy, float), np.asarray(n_choices, float))
    guessable = k >= 2
    above_chance = np.maximum((k * acc - 1) / np.where(guessable, k - 1, 1), 0.0)
    return np.where(guessable, above_chance, np.where(k == 0, acc, 0.0))


def chance_terms(counts: np.ndarray, n_choices: np.ndarray) -> dict[str, np.ndarray]:
    """F_chance, F_max and BT_max of rows from the transition counts of their subgroups.

    counts has shape (..., S, 4): for each row (leading axes) and each of its
    (task, k) subgroups the counts n_00, n_01, n_10, n_11; n_choices (S, or
    broadcastable to (..., S)) is each subgroup's k. Returns arrays of the
    leading shape: forgetting_chance, forgetting_max, backward_transfer_max.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum((-2, -1))[..., None]
    terms = _weighted_terms(counts, np.asarray(n_choices, dtype=np.float64), total)
    return {name: value.sum(-1) for name, value in terms.items()}


def subgroup_chance_terms(counts: np.ndarray, n_choices: np.ndarray, row: np.ndarray,
                          n_rows: int) -> dict[str, np.ndarray]:
    """chance_terms for rows stored sparsely: one entry per (row, task, k) subgroup present.

    counts (S, ..., 4): n_00..n_11 of each subgroup (trailing axes, e.g. repeats,
    are kept apart); n_choices (S,) its k; row (S,) the row it belongs to.
    Returns arrays of shape (n_rows, ...).
    """
    counts = np.asarray(counts, dtype=np.float64)
    row = np.asarray(row, dtype=np.int64)
    totals = _sum_rows(counts.sum(-1), row, n_rows)
    k = np.asarray(n_choices, dtype=np.float64).reshape((-1,) + (1,) * (counts.ndim - 2))
    terms = _weighted_terms(counts, k, totals[row])
    return {name: _sum_rows(value, row, n_rows) for name, value in terms.items()}


def _sum_rows(values: np.ndarray, row: np.ndarray, n_rows: int) -> np.ndarray:
    """Sum `values` (S, ...) into (n_rows, ...) by `row` (S,)."""
    trailing = values.shape[1:]
    width = int(np.prod(trailing, dtype=np.int64))
    index = (row[:, None] * width + np.arange(width)).ravel()
    summed = np.bincount(index, weights=values.reshape(-1), minlength=n_rows * width)
    return summed.reshape((n_rows,) + trailing)


def _weighted_terms(counts: np.ndarray, k: np.ndarray, row_total: np.ndarray) -> dict[str, np.ndarray]:
    """Each subgroup's terms times its weight n_g / N (N = `row_total`, the size of its row)."""
    n = counts.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(row_total > 0, n / np.where(row_total > 0, row_total, 1.0), 0.0)
    safe = np.where(n > 0, n, 1.0)
    acc_before = (counts[..., 2] + counts[..., 3]) / safe
    acc_after = (counts[..., 1] + counts[..., 3]) / safe
    return {
        "forgetting_chance": weight * chance_forgetting(acc_before, acc_after, k),
        "forgetting_max": weight * max_forgetting(acc_before, k),
        "backward_transfer_max": weight * max_forgetting(acc_after, k),
    }
