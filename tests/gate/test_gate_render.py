"""The gate's renderings say what was compared: the bound against the threshold, the (adjusted) p against α."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from forgetscope.analysis import compare_records
from forgetscope.gate import decide, parse_config, to_junit_xml, to_markdown

from .conftest import both, pair


def messages(result) -> dict[str, str]:
    """Per group: the failure message, or the system-out text of a passing test case."""
    out = {}
    for case in ET.fromstring(to_junit_xml(result)).iter("testcase"):
        failure = case.find("failure")
        out[case.get("name")] = failure.get("message") if failure is not None else case.find("system-out").text
    return out


def test_prove_below_with_holm_fails_on_the_adjusted_p_and_does_not_misstate_the_bound():
    # "a": 0 of 200 forgotten (F_chance 0): p = 0.98^200 = 0.0176 < 0.05 and the bound of F_true,
    # 1 − 0.05^(1/200) = 0.0149, is below 0.02; Holm over three groups makes its p 3 · 0.0176 = 0.0528 ≥ 0.05
    comparison = compare_records(*both(pair("a", {"11": 200}), pair("b", {"11": 20}), pair("c", {"11": 20})),
                                 n_bootstrap=0)
    holm = decide(comparison, parse_config(None, prove_below=True, holm=True))
    row = holm.decisions.set_index("group").loc["a"]
    assert row.p_value == pytest.approx(0.98 ** 200) and row.p_adjusted == pytest.approx(3 * 0.98 ** 200)
    assert row.forgetting_true_upper == pytest.approx(1 - 0.05 ** (1 / 200)) and row.failed
    message = messages(holm)["a"]
    assert message == ("not shown to forget less than the threshold: prove-below: upper 95% bound of F_true 0.015 "
                       "< 0.020, Holm-adjusted p 0.0528 ≥ α 0.05 (0 of 200 items 1→0, F_true 0.000, "
                       "F_chance 0.000)")
    assert "equivalently" not in to_markdown(holm)  # the unadjusted bound does not decide under Holm
    assert "does not follow from it" in to_markdown(holm)
    # without Holm the bound and the p agree, and the group passes
    plain = decide(comparison, parse_config(None, prove_below=True))
    assert messages(plain)["a"] == ("pass (shown below threshold): prove-below: upper 95% bound of F_true 0.015 "
                                    "< 0.020, p 0.0176 < α 0.05 (0 of 200 items 1→0, F_true 0.000, "
                                    "F_chance 0.000)")
    assert messages(plain)["b"].startswith("not shown to forget less than the threshold: prove-below: upper 95% "
                                           "bound of F_true 0.139 ≥ 0.020, p 0.668 ≥ α 0.05")
    assert "equivalently the upper (1 − α) bound of F_true below the threshold" in to_markdown(plain)
