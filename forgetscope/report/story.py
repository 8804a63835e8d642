"""Plain sentences built from a comparison's figures, for the top of a report or a terminal table.

    comparison_sentence({"n": 100, "n_10": 57, "n_01": 5, "forgetting_chance": 0.05,
                         "forgetting_true": 0.52}, "B")
    -> "B forgot 57 of 100 items (F_true 0.52, p < 1e-46) and learned 5."

The p is that of "forgetting beyond chance": the one-sided exact binomial test
of the 1→0 count against the chance rate, P[Binomial(N, F_chance) ≥ n_10]
(the gate's test with threshold 0). Without a chance term (generative tasks,
or every item right before, where F_chance = 0) that test says nothing (any
flip would be p = 0), so the sentence gives McNemar's exact p of the change
instead, and F for F_true. Pure functions: rows are mappings with the
columns of a transition summary.
"""

from __future__ import annotations

import math
from typing import Mapping

from scipy.stats import binom

#: Below this, a p is written as "p < 1e-k".
SMALL_P = 1e-4


def format_p(p: float) -> str:
    """ "p = 0.032", "p = 1", or "p < 1e-11" for p below 1e-4 (the next power of ten above p)."""
    if p is None or not math.isfinite(p):
        return "p n/a"
    if p <= 0:
        return "p < 1e-300"
    if p < SMALL_P:
        return f"p < 1e-{math.floor(-math.log10(p))}"
    text = f"{p:.2g}"
    return f"p = {'1' if text in ('1', '1.0') else text}"


def forgetting_p(row: Mapping) -> tuple[float, str]:
    """(p, name) of the row's forgetting: beyond chance when it has a chance term, else McNemar's p."""
    chance = _float(row.get("forgetting_chance"))
    if chance and chance > 0:
        n, n_10 = _float(row["n"]), _float(row["n_10"])
        return float(binom.sf(math.ceil(n_10) - 1, round(n), min(chance, 1.0))), "p"
    return _float(row.get("mcnemar_p")), "McNemar p"


def forgetting_is_significant(row: Mapping, alpha: float = 0.05) -> bool:
    """Forgetting beyond chance at level alpha (without a chance term: more 1→0 than 0→1, McNemar p < alpha)."""
    p, name = forgetting_p(row)
    if not (p is not None and math.isfinite(p) and p < alpha) or not _float(row.get("n_10")):
        return False
    if name == "p":
        return _float(row.get("forgetting_true")) > 0
    return _float(row["n_10"]) > _float(row.get("n_01"))


def comparison_sentence(row: Mapping, after: str = "B", noun: str = "item") -> str:
    """One sentence on what `after` forgot and learned, from one transition-summary row.

    "B forgot 57 of 100 items (F_true 0.52, p < 1e-11) and learned 5."
    "B forgot none of the 40 items and learned 3." (counts with repeats are means: "2.5 of 30 items")
    """
    n, forgot, learned = _float(row.get("n")), _float(row.get("n_10")), _float(row.get("n_01"))
    if not n:
        return f"{after}: no paired {noun}s to compare."
    total = f"{_count(n)} {_plural(noun, n)}"
    if not forgot:
        head = f"{after} forgot none of the {total}" if n > 1 else f"{after} did not forget the one {noun}"
    else:
        p, name = forgetting_p(row)
        if name == "p":
            figure = f"F_true {_rate(row.get('forgetting_true'))}, {format_p(p)}"
        else:
            figure = f"F {_rate(row.get('forgetting'))}, no chance term, {format_p(p).replace('p', name, 1)}"
        head = f"{after} forgot {_count(forgot)} of {total} ({figure})"
    tail = "learned none" if not learned else f"learned {_count(learned)}"
    return f"{head} and {tail}."


def _float(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _plural(noun: str, n: float) -> str:
    return noun if n == 1 else noun + "s"


def _rate(value) -> str:
    value = _float(value)
    return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.3f}"
