"""How much forgetting guessing alone would produce, and how much is possible at all.

A model that guesses uniformly among k choices, independently before and
after, is right with probability 1/k each time; some of its items then flip
1→0 by pure chance. For a group of items with accuracies a_pre and a_post,
uniform guessing on the items the model does not know gives

    F_chance  = (1 - a_pre)(1 - a_post) / (k - 1)      (= BT_chance)
    F_max     = max((k a_pre - 1) / (k - 1), 0)        items truly known before
    BT_max    = max((k a_post - 1) / (k - 1), 0)

and the forgetting beyond chance is F_true = max(F - F_chance, 0).

k is every item's own number of choices, never a global default: a group is
split into subgroups of equal k with weights w_g = n_g / N, the terms above
are computed per subgroup and summed with those weights, and only then is
F_true clipped at zero, once for the whole group.

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
    """Expected forgetting (= backward transfer) of a uniform guesser, per subgroup of equal k."""
    a_pre, a_post, k = np.broadcast_arrays(
        np.asarray(acc_before, float), np.asarray(acc_after, float), np.asarray(n_choices, float)
    )
    guessable = k >= 2
    return np.where(guessable, (1 - a_pre) * (1 - a_post) / np.where(guessable, k - 1, 1), 0.0)


def max_forgetting(accuracy, n_choices):
    """Largest forgetting beyond chance a subgroup of equal k allows (F_max from a_pre,
    BT_max from a_post): the share of items known beyond guessing."""
    acc, k = np.broadcast_arrays(np.asarray(accuracy, float), np.asarray(n_choices, float))
    guessable = k >= 2
    above_chance = np.maximum((k * acc - 1) / np.where(guessable, k - 1, 1), 0.0)
    return np.where(guessable, above_chance, np.where(k == 0, acc, 0.0))


def chance_terms(counts: np.ndarray, n_choices: np.ndarray) -> dict[str, np.ndarray]:
    """F_chance, F_max and BT_max of groups from their per-k transition counts.

    counts has shape (..., K, 4): for each group (leading axes) and each value
    of k (n_choices[K]) the counts n_00, n_01, n_10, n_11. Returns arrays of
    the leading shape: forgetting_chance, forgetting_max, backward_transfer_max.
    """
    counts = np.asarray(counts, dtype=np.float64)
    per_k = counts.sum(-1)
    total = per_k.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(total > 0, per_k / total, 0.0)
        safe = np.where(per_k > 0, per_k, 1.0)
    acc_before = (counts[..., 2] + counts[..., 3]) / safe
    acc_after = (counts[..., 1] + counts[..., 3]) / safe
    k = np.asarray(n_choices, dtype=np.float64)
    return {
        "forgetting_chance": (weight * chance_forgetting(acc_before, acc_after, k)).sum(-1),
        "forgetting_max": (weight * max_forgetting(acc_before, k)).sum(-1),
        "backward_transfer_max": (weight * max_forgetting(acc_after, k)).sum(-1),
    }
