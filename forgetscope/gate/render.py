"""The gate's decisions for CI: a markdown summary, JUnit XML (one test case per group) and JSON.

Each renderer takes a gate.GateResult. When the gate could not decide (bad
input, exit 2), `error_markdown` and `error_junit_xml` still give CI a
summary and a failing (erroring) test case, so a broken gate is never
mistaken for a passing one.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from .config import PROVE_BELOW

SUITE = "forgetscope gate"
CLASSNAME = "forgetscope.gate"


def _number(value, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(float(value), spec)


def _p(value) -> str:
    return _number(value, ".3g")


def _count(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.2f}"


def _reason(row: dict, holm: bool) -> str:
    """One line on why a group passed or failed; each comparison shown is the one its numbers make.

    In mode prove-below the decision is its p (Holm-adjusted with `holm`) against α. The bound of
    F_true is not adjusted: below the threshold it says only that the unadjusted p is below α, so
    with Holm a group can fail with its bound under the threshold, and the line says so.
    """
    side = "<" if row["significant"] else "≥"
    decision = f"{'Holm-adjusted p' if holm else 'p'} {_p(row['p_adjusted'])} {side} α {_number(row['alpha'], 'g')}"
    if row.get("mode") == PROVE_BELOW:
        bound, threshold = row["forgetting_true_upper"], row["max_forgetting"]
        relation = "<" if float(bound) < float(threshold) else "≥"  # NaN (no items): ≥, as it fails
        return (f"prove-below: upper {_confidence(row)} bound of F_true {_number(bound)} "
                f"{relation} {_number(threshold)}, {decision} "
                f"({_count(row['n_10'])} of {row['n']} items 1→0, F_true {_number(row['forgetting_true'])}, "
                f"F_chance {_number(row['forgetting_chance'])})")
    relation = ">" if row["over_threshold"] else "≤"
    text = (f"F_true {_number(row['forgetting_true'])} {relation} {_number(row['max_forgetting'])} "
            f"({_count(row['n_10'])} of {row['n']} items 1→0, F_chance {_number(row['forgetting_chance'])})")
    if row["over_threshold"]:
        text += f"; {decision}"
    return text


def _confidence(row: dict) -> str:
    return f"{(1 - float(row['alpha'])) * 100:g}%"


def to_markdown(result) -> str:
    """A summary for people (and $GITHUB_STEP_SUMMARY): verdict, rule, one table row per group."""
    config, rows = result.config, result.decisions.to_dict("records")
    head = "PASSED" if result.passed else "FAILED"
    lines = [f"## forgetscope gate: {head}", ""]
    who = f"`{result.baseline}` → `{result.candidate}`, " if result.baseline or result.candidate else ""
    correction = f", Holm-adjusted across {len(rows)} gated groups" if config.holm else ""
    modes = {row["mode"] for row in rows}
    exceed_rule = (f"its chance-adjusted forgetting F_true exceeds its threshold and a one-sided binomial test "
                   f"of its 1→0 count says so at level α{correction}")
    bound = ("equivalently the upper (1 − α) bound of F_true below the threshold" if not config.holm else
             "which needs the upper (1 − α) bound of F_true (not adjusted) below the threshold, but does not follow "
             "from it")
    prove_rule = ("it is shown that its chance-adjusted forgetting F_true is below its threshold: a one-sided "
                  f"binomial test at level α{correction}, {bound} (too few items cannot show it, and fail)")
    if modes == {PROVE_BELOW}:
        rule = f"Mode prove-below: a group passes only when {prove_rule}"
    elif PROVE_BELOW in modes:
        rule = (f"A group in mode exceed fails when {exceed_rule}; a group in mode prove-below passes only "
                f"when {prove_rule}")
    else:
        rule = f"A group fails when {exceed_rule}"
    lines += [f"{who}metric `{config.metric}`. {rule}.", ""]
    adjusted = config.holm
    prove = PROVE_BELOW in modes
    header = ["group", "N", "1→0", "0→1", "F", "F chance", "F true", "max F true"]
    header += ["mode", "F true bound", "p (claim)"] if prove else ["p (F true > max)"]
    header += ["p Holm"] if adjusted else []
    header += ["α", "McNemar p", "result"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|"]
    for row in rows:
        verdict = "**FAIL**" if row["failed"] else row["verdict"]
        cells = [row["group"].replace("|", "\\|"), str(row["n"]), _count(row["n_10"]), _count(row["n_01"]),
                 _number(row["forgetting"]), _number(row["forgetting_chance"]), _number(row["forgetting_true"]),
                 _number(row["max_forgetting"])]
        cells += [row["mode"], _number(row["forgetting_true_upper"])] if prove else []
        cells += [_p(row["p_value"])]
        cells += [_p(row["p_adjusted"])] if adjusted else []
        cells += [_number(row["alpha"], "g"), _p(row["mcnemar_p"]), verdict]
        lines.append("| " + " | ".join(cells) + " |")
    failed = result.failed_groups
    lines.append("")
    lines.append(f"{len(failed)} of {len(rows)} gated groups failed: {', '.join(failed)}." if failed
                 else f"All {len(rows)} gated groups passed.")
    if prove:
        lines.append("F true bound: the upper one-sided (1 − α) Clopper–Pearson bound of F, less F_chance; "
                     "p (claim): p of F_true > max (mode exceed) or of F_true < max (mode prove-below).")
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def to_junit_xml(result) -> str:
    """JUnit XML: one <testcase> per gated group; a failing group has a <failure>."""
    rows = result.decisions.to_dict("records")
    failures = sum(bool(r["failed"]) for r in rows)
    suites = ET.Element("testsuites", name=SUITE, tests=str(len(rows)), failures=str(failures), errors="0")
    suite = ET.SubElement(suites, "testsuite", name=SUITE, tests=str(len(rows)), failures=str(failures),
                          errors="0", skipped="0")
    properties = ET.SubElement(suite, "properties")
    for name, value in (("baseline", result.baseline), ("candidate", result.candidate),
                        ("metric", result.config.metric), ("holm", str(result.config.holm).lower()),
                        ("mode", result.config.default.mode)):
        ET.SubElement(properties, "property", name=name, value=str(value))
    for row in rows:
        case = ET.SubElement(suite, "testcase", classname=CLASSNAME, name=row["group"], time="0")
        if row["failed"]:
            proving = row.get("mode") == PROVE_BELOW
            lead = "not shown to forget less than the threshold" if proving else "forgot too much"
            failure = ET.SubElement(case, "failure", message=f"{lead}: {_reason(row, result.config.holm)}",
                                    type="forgetting-not-excluded" if proving else "forgetting")
            failure.text = _details(row)
        else:
            ET.SubElement(case, "system-out").text = f"{row['verdict']}: {_reason(row, result.config.holm)}"
    if result.notes:  # e.g. the items --identical-only left out (after the test cases, as JUnit's schema orders)
        ET.SubElement(suite, "system-out").text = "\n".join(result.notes)
    return _serialise(suites)


def _details(row: dict) -> str:
    return "\n".join([
        f"group: {row['group']}", f"items: {row['n']}, 1→0: {_count(row['n_10'])}, 0→1: {_count(row['n_01'])}",
        f"F: {_number(row['forgetting'])}, F_chance: {_number(row['forgetting_chance'])}, "
        f"F_true: {_number(row['forgetting_true'])}, max: {_number(row['max_forgetting'])}",
        f"mode: {row['mode']}, upper {_confidence(row)} bound of F_true: {_number(row['forgetting_true_upper'])}",
        f"p ({'F_true < max' if row['mode'] == PROVE_BELOW else 'F_true > max'}): {_p(row['p_value'])}, "
        f"adjusted: {_p(row['p_adjusted'])}, alpha: {row['alpha']}",
        f"McNemar p: {_p(row['mcnemar_p'])}, repeats: {row['n_repeats']}",
    ])


def to_json(result) -> dict:
    """JSON-safe dict: verdict, exit code, what was compared, the rule's settings, and every group's figures."""
    groups = []
    for row in result.decisions.to_dict("records"):
        groups.append({key: _json_value(value) for key, value in row.items()})
    config = result.config
    return {
        "passed": result.passed, "exit_code": result.exit_code, "baseline": result.baseline,
        "candidate": result.candidate, "metric": config.metric, "holm": config.holm,
        "default": {"max_forgetting": config.default.max_forgetting, "alpha": config.default.alpha,
                    "mode": config.default.mode},
        "failed": result.failed_groups, "groups": groups, "notes": list(result.notes),
    }


def _json_value(value):
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def error_markdown(message: str) -> str:
    quoted = "\n".join(f"    {line}" for line in message.splitlines())  # every line inside the code block
    return f"## forgetscope gate: ERROR\n\nThe gate could not decide, so it fails closed (exit 2):\n\n{quoted}\n"


def error_junit_xml(message: str) -> str:
    """One erroring test case, so CI shows a gate that could not run as broken, not as passed."""
    suites = ET.Element("testsuites", name=SUITE, tests="1", failures="0", errors="1")
    suite = ET.SubElement(suites, "testsuite", name=SUITE, tests="1", failures="0", errors="1", skipped="0")
    case = ET.SubElement(suite, "testcase", classname=CLASSNAME, name="gate", time="0")
    ET.SubElement(case, "error", message=message, type="bad input").text = message
    return _serialise(suites)


def _serialise(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
