"""Gate decisions on constructed records, checked against hand calculations."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from forgetscope.analysis import compare_records
from forgetscope.gate import GateError, decide, forgetting_p_value, holm_adjust, parse_config

from .conftest import FORGETFUL, SMALL, STEADY, both, pair, side


def binomial_tail(k: int, n: int, rate: float) -> float:
    """P[Binomial(n, rate) ≥ k], summed by hand."""
    return sum(math.comb(n, j) * rate ** j * (1 - rate) ** (n - j) for j in range(k, n + 1))


def compare(*pairs, metric="acc"):
    return compare_records(*both(*pairs), metric=metric, n_bootstrap=0)


def test_binomial_p_is_the_upper_tail_at_chance_plus_threshold():
    # F_chance of SMALL: (1 − 0.9)(1 − 0.8)/(4 − 1); tested rate F_chance + 0.02
    chance = 0.1 * 0.2 / 3
    assert float(forgetting_p_value(2, 20, chance, 0.02)) == pytest.approx(binomial_tail(2, 20, chance + 0.02))
    assert float(forgetting_p_value(0, 20, chance, 0.02)) == 1.0  # nothing forgotten: no evidence
    assert float(forgetting_p_value(3, 10, 0.0, 0.0)) == 0.0  # rate 0: any forgetting is beyond it
    assert float(forgetting_p_value(5, 10, 0.9, 0.5)) == 1.0  # rate capped at 1


def test_pass_fail_and_over_threshold_but_not_significant():
    result = decide(compare(pair("quiz", FORGETFUL), pair("small", SMALL), pair("steady", STEADY)))
    table = result.decisions.set_index("group")
    quiz, small, steady = table.loc["quiz"], table.loc["small"], table.loc["steady"]
    # quiz: F = 0.30, F_chance = 0.1 · 0.4 / 3, F_true = 0.30 − 0.01333
    assert quiz.forgetting_true == pytest.approx(0.3 - 0.1 * 0.4 / 3)
    assert quiz.p_value == pytest.approx(binomial_tail(30, 100, 0.1 * 0.4 / 3 + 0.02), rel=1e-6)
    assert quiz.failed and quiz.verdict == "fail"
    # small: over the threshold, yet 2 of 20 is not evidence at α = 0.05
    assert small.forgetting_true == pytest.approx(0.1 - 0.1 * 0.2 / 3)
    assert small.p_value == pytest.approx(binomial_tail(2, 20, 0.1 * 0.2 / 3 + 0.02)) == pytest.approx(0.0985, abs=1e-4)
    assert small.over_threshold and not small.significant and not small.failed
    assert small.verdict == "pass (over threshold, not significant)"
    assert steady.forgetting_true == 0 and steady.p_value == 1.0 and steady.verdict == "pass"
    assert not result.passed and result.exit_code == 1 and result.failed_groups == ["quiz"]
    assert quiz.mcnemar_p == pytest.approx(2 * 0.5 ** 30)  # reported for information
    assert decide(compare(pair("small", SMALL), pair("steady", STEADY))).exit_code == 0


def test_thresholds_per_task_and_alpha_change_the_decision():
    comparison = compare(pair("quiz", FORGETFUL), pair("small", SMALL))
    lenient = parse_config({"tasks": {"quiz": {"max_forgetting": 0.3}}})
    table = decide(comparison, lenient).decisions.set_index("group")
    assert not table.loc["quiz"].over_threshold and table.loc["quiz"].max_forgetting == 0.3
    loose_alpha = parse_config(None, alpha=0.1)  # small's p ≈ 0.098 < 0.1
    assert decide(comparison, loose_alpha).decisions.set_index("group").loc["small"].failed


def test_holm_adjusts_across_gated_tasks():
    comparison = compare(pair("small", SMALL), pair("steady", STEADY), pair("quiz", FORGETFUL))
    plain = decide(comparison, parse_config(None, alpha=0.15)).decisions.set_index("group")
    holm = decide(comparison, parse_config(None, alpha=0.15, holm=True)).decisions.set_index("group")
    p = plain.p_value
    # Holm over 3: the smallest p × 3, the next max(that, p × 2), the largest max(previous, p × 1)
    assert holm.loc["quiz"].p_adjusted == pytest.approx(min(1, 3 * p["quiz"]))
    assert holm.loc["small"].p_adjusted == pytest.approx(max(3 * p["quiz"], 2 * p["small"]))
    assert holm.loc["steady"].p_adjusted == 1.0
    assert plain.loc["small"].failed and not holm.loc["small"].failed  # 0.098 < 0.15, but 0.197 is not
    assert holm_adjust([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])


def test_generative_tasks_have_no_chance_term():
    result = decide(compare(pair("gen", {"11": 90, "10": 10}, k=0)))
    row = result.decisions.iloc[0]
    assert row.forgetting_chance == 0 and row.forgetting_true == pytest.approx(0.1)
    assert row.p_value == pytest.approx(binomial_tail(10, 100, 0.02)) and row.failed


def test_configured_categories_are_gated_as_extra_groups():
    before, after = both(pair("mmlu", FORGETFUL, category="algebra"),
                         pair("mmlu", STEADY, category="history", start=100))
    comparison = compare_records(before, after, n_bootstrap=0)
    config = parse_config({"categories": {"mmlu": {"algebra": {"max_forgetting": 0.5}, "history": {}}}})
    table = decide(comparison, config).decisions.set_index("group")
    assert list(table.index) == ["mmlu", "mmlu/algebra", "mmlu/history"]
    assert table.loc["mmlu/algebra"].scope == "category" and not table.loc["mmlu/algebra"].failed
    assert table.loc["mmlu"].failed  # 30 of 200 forgotten overall
    assert decide(comparison).decisions["group"].tolist() == ["mmlu"]  # categories only when configured
    everything = parse_config({"categories": {"mmlu": {"*": {}}}})
    assert decide(comparison, everything).decisions["group"].tolist() == ["mmlu", "mmlu/algebra", "mmlu/history"]


def test_repeats_use_the_largest_p_over_seeds():
    # seed 0 forgets 30 of 100, seed 1 only 2: significant in one seed only → not a failure
    seed0 = pair("quiz", FORGETFUL)
    seed1 = pair("quiz", {"11": 88, "10": 2, "00": 10}, repeat=1)
    before = pd.concat([seed0[0], seed1[0]], ignore_index=True)
    after = pd.concat([seed0[1], seed1[1]], ignore_index=True)
    row = decide(compare_records(before, after, n_bootstrap=0)).decisions.iloc[0]
    chance1 = 0.1 * 0.12 / 3
    assert row.n_repeats == 2 and row.n_10 == pytest.approx(16)
    assert row.p_value == pytest.approx(binomial_tail(2, 100, chance1 + 0.02))
    assert row.over_threshold and not row.failed


def test_fail_closed_when_something_configured_or_selected_was_not_compared():
    comparison = compare(pair("quiz", FORGETFUL))
    with pytest.raises(GateError, match="arc"):
        decide(comparison, tasks=["arc"])
    with pytest.raises(GateError, match="names task.*mmlu"):
        decide(comparison, parse_config({"tasks": {"mmlu": {"alpha": 0.01}}}))
    with pytest.raises(GateError, match="category 'algebra' of task 'quiz'.*no categories"):
        decide(comparison, parse_config({"categories": {"quiz": {"algebra": {}}}}))
    # with --task, configured tasks outside the selection are simply not gated
    only = decide(compare(pair("quiz", FORGETFUL), pair("steady", STEADY)),
                  parse_config({"tasks": {"mmlu": {}}}), tasks=["steady"])
    assert only.decisions["group"].tolist() == ["steady"] and only.passed


def test_mismatched_items_never_reach_the_gate():
    from forgetscope.analysis import ItemMismatchError

    before = side("before", "quiz", FORGETFUL)
    after = side("after", "quiz", FORGETFUL).iloc[:-1]
    with pytest.raises(ItemMismatchError):
        compare_records(before, after)


# ---------------------------------------------------------------------------- prove-below (equivalence mode)

def binomial_head(k: int, n: int, rate: float) -> float:
    """P[Binomial(n, rate) ≤ k], summed by hand."""
    return sum(math.comb(n, j) * rate ** j * (1 - rate) ** (n - j) for j in range(0, k + 1))


def test_prove_below_fails_closed_on_too_few_items_and_passes_with_enough():
    comparison = compare(pair("few", {"11": 20}), pair("many", {"11": 1995, "10": 5}))
    result = decide(comparison, parse_config(None, prove_below=True))
    table = result.decisions.set_index("group")
    few, many = table.loc["few"], table.loc["many"]
    # 20 items, none forgotten (F_chance 0: every item right before): P[Bin(20, 0.02) ≤ 0] = 0.98^20
    assert few["mode"] == "prove-below" and few.forgetting_true == 0
    assert few.p_value == pytest.approx(0.98 ** 20) == pytest.approx(0.6676, abs=1e-4)
    # the upper 95 % Clopper–Pearson bound with 0 of 20 solves (1 − U)^20 = 0.05
    assert few.forgetting_true_upper == pytest.approx(1 - 0.05 ** (1 / 20)) == pytest.approx(0.1391, abs=1e-4)
    assert few.failed and few.verdict == "fail (not shown below threshold)"
    # 2000 items, 5 forgotten: P[Bin(2000, 0.02) ≤ 5] is tiny, the bound well under 0.02
    assert many.p_value == pytest.approx(binomial_head(5, 2000, 0.02), rel=1e-9)
    assert many.p_value < 1e-9 and many.forgetting_true_upper < 0.02
    assert not many.failed and many.verdict == "pass (shown below threshold)"
    assert result.failed_groups == ["few"] and result.exit_code == 1
    # the default mode passes the same 20 items: nothing forgotten is no evidence of forgetting
    assert decide(comparison).passed


def test_prove_below_agrees_with_scipy_binomtest_and_its_exact_interval():
    from scipy.stats import binomtest

    comparison = compare(pair("a", {"11": 380, "10": 3, "00": 17}), pair("b", {"11": 90, "10": 4, "01": 2, "00": 4}))
    table = decide(comparison, parse_config(None, prove_below=True, max_forgetting=0.05)).decisions.set_index("group")
    for group in ("a", "b"):
        row = table.loc[group]
        n_10, n, chance = int(row.n_10), int(row.n), float(row.forgetting_chance)
        test = binomtest(n_10, n, chance + 0.05, alternative="less")
        assert row.p_value == pytest.approx(test.pvalue, rel=1e-9)
        upper = binomtest(n_10, n, 0.5, alternative="less").proportion_ci(0.95, method="exact").high
        assert row.forgetting_true_upper == pytest.approx(max(upper - chance, 0), rel=1e-9)
        assert row.failed == (not test.pvalue < 0.05) == (not upper - chance < 0.05)
    assert not table.loc["a"].failed and table.loc["b"].failed  # 3 of 400 shown below; 4 of 100 not


def test_prove_below_per_task_in_the_config_and_command_line_default():
    comparison = compare(pair("few", {"11": 20}), pair("steady", STEADY))
    config = parse_config({"tasks": {"few": {"prove_below": True}}})
    table = decide(comparison, config).decisions.set_index("group")
    assert table.loc["few", "mode"] == "prove-below" and table.loc["few"].failed
    assert table.loc["steady", "mode"] == "exceed" and not table.loc["steady"].failed
    # the command line sets the default, not a task's own entry
    off = parse_config({"tasks": {"few": {"prove_below": False}}}, prove_below=True)
    assert off.for_task("few").mode == "exceed" and off.for_task("steady").mode == "prove-below"
    with pytest.raises(Exception, match="prove_below"):
        parse_config({"defaults": {"prove_below": "yes"}})


def test_prove_below_with_repeats_takes_the_worst_seed():
    # seed 0: 0 of 300 forgotten (proven below 0.02); seed 1: 6 of 300 (F = 0.02: not proven)
    before = pd.concat([side("before", "t", {"11": 300}, repeat=0), side("before", "t", {"11": 294, "10": 6}, repeat=1)])
    after = pd.concat([side("after", "t", {"11": 300}, repeat=0), side("after", "t", {"11": 294, "10": 6}, repeat=1)])
    row = decide(compare_records(before, after, n_bootstrap=0), parse_config(None, prove_below=True)).decisions.iloc[0]
    assert row.n_repeats == 2
    assert row.p_value == pytest.approx(binomial_head(6, 300, 0.02), rel=1e-9)
    assert row.forgetting_true_upper > 0.02 and row.failed
