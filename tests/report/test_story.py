"""The one-sentence summary of a comparison, on hand-made rows."""

from __future__ import annotations

import math

import pytest

from forgetscope.report.story import comparison_sentence, forgetting_is_significant, forgetting_p, format_p


def row(**figures):
    base = {"n": 100, "n_10": 0, "n_01": 0, "forgetting": 0.0, "forgetting_chance": 0.0, "forgetting_true": 0.0,
            "mcnemar_p": 1.0}
    return {**base, **figures}


def test_forgetting_beyond_chance_with_its_binomial_p():
    figures = row(n_10=57, n_01=5, forgetting=0.57, forgetting_chance=0.05, forgetting_true=0.52)
    # P[Bin(100, 0.05) ≥ 57], summed by hand
    p = sum(math.comb(100, j) * 0.05 ** j * 0.95 ** (100 - j) for j in range(57, 101))
    assert forgetting_p(figures) == (pytest.approx(p), "p") and 1e-47 < p < 1e-46
    assert comparison_sentence(figures, "B") == "B forgot 57 of 100 items (F_true 0.52, p < 1e-46) and learned 5."
    assert forgetting_is_significant(figures)


def test_singular_plural_and_nothing_forgotten_or_learned():
    assert comparison_sentence(row(n=40, n_01=3, forgetting_chance=0.01), "ft") == \
        "ft forgot none of the 40 items and learned 3."
    assert comparison_sentence(row(n=1, n_01=1), "B") == "B did not forget the one item and learned 1."
    one = row(n=20, n_10=1, forgetting=0.05, forgetting_chance=0.01, forgetting_true=0.04)
    p = 1 - 0.99 ** 20  # P[Bin(20, 0.01) ≥ 1]
    assert comparison_sentence(one, "B", noun="fact") == \
        f"B forgot 1 of 20 facts (F_true 0.04, p = {p:.2g}) and learned none."
    assert not forgetting_is_significant(one)  # p ≈ 0.18
    assert comparison_sentence(row(n=0), "B") == "B: no paired items to compare."


def test_generative_rows_have_no_chance_term_and_use_mcnemar():
    gen = row(n=30, n_10=2.5, n_01=1, forgetting=2.5 / 30, mcnemar_p=0.62)  # means over repeats
    assert comparison_sentence(gen, "B") == \
        "B forgot 2.5 of 30 items (F 0.08, no chance term, McNemar p = 0.62) and learned 1."
    strong = row(n=100, n_10=20, n_01=1, forgetting=0.2, mcnemar_p=2e-5)
    assert "McNemar p < 1e-4" in comparison_sentence(strong) and forgetting_is_significant(strong)
    assert not forgetting_is_significant(row(n_10=1, n_01=20, mcnemar_p=2e-5))  # learned more than forgot


@pytest.mark.parametrize(("p", "text"), [(1.0, "p = 1"), (0.05, "p = 0.05"), (0.0123, "p = 0.012"),
                                          (1.2e-4, "p = 0.00012"), (9.9e-5, "p < 1e-4"), (3e-12, "p < 1e-11"),
                                          (0.0, "p < 1e-300"), (float("nan"), "p n/a")])
def test_p_formatting(p, text):
    assert format_p(p) == text
