"""`forgetscope gate` end to end: exit codes, CI outputs, config files, failing closed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from forgetscope.cli import app

from .conftest import FORGETFUL, SMALL, STEADY, both, pair, side

runner = CliRunner()


def gate(baseline, candidate, *args, env=None):
    return runner.invoke(app, ["gate", "--baseline", str(baseline), "--candidate", str(candidate), *map(str, args)],
                         env=env)


def test_exit_0_when_nothing_forgot_too_much(records_dirs):
    baseline, candidate = records_dirs(*both(pair("small", SMALL), pair("steady", STEADY)))
    result = gate(baseline, candidate)
    assert result.exit_code == 0, result.output
    assert "## forgetscope gate: PASSED" in result.output
    assert "| small | 20 | 2 | 0 |" in result.output and "pass (over threshold, not significant)" in result.output


def test_exit_1_and_ci_outputs_when_a_task_forgot_too_much(tmp_path, records_dirs):
    baseline, candidate = records_dirs(*both(pair("quiz", FORGETFUL), pair("small", SMALL), pair("steady", STEADY)))
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    result = gate(baseline, candidate, "--junit", tmp_path / "gate.xml", "--markdown", tmp_path / "gate.md",
                  "--json", tmp_path / "gate.json", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 1, result.output

    # markdown: verdict, one row per task, which failed
    markdown = (tmp_path / "gate.md").read_text()
    assert markdown.startswith("## forgetscope gate: FAILED")
    quiz_row = next(line for line in markdown.splitlines() if line.startswith("| quiz |"))
    cells = [c.strip() for c in quiz_row.strip("|").split("|")]
    assert cells[:8] == ["quiz", "100", "30", "0", "0.300", "0.013", "0.287", "0.020"] and cells[-1] == "**FAIL**"
    assert "1 of 3 gated groups failed: quiz." in markdown
    # appended to GitHub's step summary, after what was there
    assert summary.read_text() == "earlier step\n" + markdown + "\n"

    # JUnit: one test case per task, a failure only for quiz
    suite = ET.parse(tmp_path / "gate.xml").getroot()
    assert suite.tag == "testsuites" and suite.get("tests") == "3" and suite.get("failures") == "1"
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert sorted(cases) == ["quiz", "small", "steady"]
    failure = cases["quiz"].find("failure")
    assert failure is not None and "F_true 0.287 > 0.020" in failure.get("message")
    assert "1→0: 30" in failure.text
    assert cases["small"].find("failure") is None and cases["steady"].find("failure") is None
    assert "not significant" in cases["small"].find("system-out").text
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["baseline"] == str(baseline) and properties["metric"] == "acc"

    # JSON: the same decisions
    figures = json.loads((tmp_path / "gate.json").read_text())
    assert figures["passed"] is False and figures["exit_code"] == 1 and figures["failed"] == ["quiz"]
    quiz = next(g for g in figures["groups"] if g["group"] == "quiz")
    assert quiz["n_10"] == 30 and quiz["failed"] is True and quiz["forgetting_true"] == pytest.approx(0.3 - 0.04 / 3)


def test_thresholds_from_the_command_line(records_dirs):
    baseline, candidate = records_dirs(*both(pair("quiz", FORGETFUL), pair("small", SMALL), pair("steady", STEADY)))
    assert gate(baseline, candidate).exit_code == 1
    assert gate(baseline, candidate, "--max-forgetting", "0.3").exit_code == 0  # quiz: F_true 0.287
    assert gate(baseline, candidate, "--task", "small", "--task", "steady").exit_code == 0  # quiz not gated
    assert gate(baseline, candidate, "--task", "small", "--alpha", "0.1").exit_code == 1  # small: p 0.098
    # Holm over small and steady: 2 × 0.098 ≥ 0.15
    assert gate(baseline, candidate, "--task", "small", "--task", "steady", "--alpha", "0.15").exit_code == 1
    assert gate(baseline, candidate, "--task", "small", "--task", "steady", "--alpha", "0.15",
                "--holm").exit_code == 0


@pytest.mark.parametrize("suffix,text", [
    (".yaml", "holm: false\ndefaults:\n  max_forgetting: 0.02\ntasks:\n  quiz:\n    max_forgetting: 0.3\n"),
    (".toml", "holm = false\n[defaults]\nmax_forgetting = 0.02\n[tasks.quiz]\nmax_forgetting = 0.3\n"),
])
def test_config_file_per_task(tmp_path, records_dirs, suffix, text):
    baseline, candidate = records_dirs(*both(pair("quiz", FORGETFUL), pair("steady", STEADY)))
    config = tmp_path / f"gate{suffix}"
    config.write_text(text)
    result = gate(baseline, candidate, "--config", config)
    assert result.exit_code == 0, result.output
    assert "| quiz | 100 | 30 | 0 | 0.300 | 0.013 | 0.287 | 0.300 |" in result.output


def test_category_groups_from_config(tmp_path, records_dirs):
    baseline, candidate = records_dirs(*both(pair("mmlu", STEADY, category="history"),
                                             pair("mmlu", SMALL, category="algebra", start=100)))
    config = tmp_path / "gate.yaml"
    config.write_text("categories:\n  mmlu:\n    algebra: {alpha: 0.2}\n")
    result = gate(baseline, candidate, "--config", config, "--junit", tmp_path / "g.xml")
    assert result.exit_code == 1, result.output  # algebra: p 0.098 < 0.2
    names = [c.get("name") for c in ET.parse(tmp_path / "g.xml").getroot().iter("testcase")]
    assert names == ["mmlu", "mmlu/algebra"]


@pytest.mark.parametrize("text,fragment", [
    ("defaults:\n  max_forgeting: 0.1\n",
     "gate.yaml line 2: defaults.max_forgeting: unknown field; known: max_forgetting, alpha, prove_below; did you mean max_forgetting?"),
    ("defaults:\n  alpha: 2\n", "gate.yaml line 2: defaults.alpha: must be in (0, 1) (e.g. 0.05), got 2"),
    ("holm: maybe\n", "gate.yaml line 1: holm: expected true or false, got 'maybe'"),
    ("metric: f1\n", "gate.yaml line 1: metric: 'f1' is not one of acc, acc_norm"),
    ("tasks:\n  quiz: 0.1\n", "tasks.quiz: expected a mapping"),
    ("tasks:\n  arc: {alpha: 0.01}\n", "names task(s) arc that were not compared"),
    ("gates: 1\n", "gate.yaml line 1: gates: unknown field; known: metric, holm, defaults, tasks, categories"),
])
def test_bad_config_is_exit_2_naming_the_field(tmp_path, records_dirs, text, fragment):
    baseline, candidate = records_dirs(*pair("quiz", STEADY))
    config = tmp_path / "gate.yaml"
    config.write_text(text)
    result = gate(baseline, candidate, "--config", config)
    assert result.exit_code == 2 and fragment in result.output, result.output


def test_fail_closed_on_bad_input(tmp_path, records_dirs):
    baseline, candidate = records_dirs(*pair("quiz", FORGETFUL))
    # a task that is not there
    missing = gate(baseline, candidate, "--task", "arc", "--junit", tmp_path / "err.xml",
                   "--markdown", tmp_path / "err.md")
    assert missing.exit_code == 2 and "no records for task(s) arc" in missing.output
    error = ET.parse(tmp_path / "err.xml").getroot()
    assert error.get("errors") == "1" and error.find(".//error") is not None
    assert (tmp_path / "err.md").read_text().startswith("## forgetscope gate: ERROR")
    # an unreadable file
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    assert gate(junk, candidate).exit_code == 2
    # a missing baseline
    assert gate(tmp_path / "nowhere", candidate).exit_code == 2


def test_mismatched_items_are_exit_2_not_a_pass(tmp_path):
    from forgetscope.records.store import save_records

    before = save_records(side("before", "quiz", STEADY), tmp_path / "a.parquet")
    changed = side("after", "quiz", STEADY)
    changed.loc[3, "item_hash"] = "edited"
    after = save_records(changed, tmp_path / "b.parquet")
    result = gate(before, after)
    assert result.exit_code == 2 and "quiz-3" in result.output
    shorter = save_records(side("after", "quiz", STEADY).iloc[:-5], tmp_path / "c.parquet")
    assert gate(before, shorter).exit_code == 2
    other_task = save_records(side("after", "arc", STEADY), tmp_path / "d.parquet")
    assert gate(before, other_task).exit_code == 2  # zero paired items


def test_prove_below_fails_a_candidate_with_too_few_items_and_says_so(tmp_path, records_dirs):
    baseline, candidate = records_dirs(*both(pair("few", {"11": 20}), pair("many", {"11": 1995, "10": 5})))
    assert gate(baseline, candidate).exit_code == 0  # default mode: no evidence of forgetting, so it passes
    result = gate(baseline, candidate, "--prove-below", "--junit", tmp_path / "gate.xml", "--json",
                  tmp_path / "gate.json", "--markdown", tmp_path / "gate.md")
    assert result.exit_code == 1, result.output
    markdown = (tmp_path / "gate.md").read_text()
    assert "Mode prove-below: a group passes only when it is shown" in markdown
    few = [c.strip() for c in next(line for line in markdown.splitlines() if line.startswith("| few |")).split("|")]
    assert few[9:12] == ["prove-below", "0.139", "0.668"] and few[-2] == "**FAIL**"
    assert "| pass (shown below threshold) |" in next(line for line in markdown.splitlines() if line.startswith("| many |"))
    cases = {case.get("name"): case for case in ET.parse(tmp_path / "gate.xml").getroot().iter("testcase")}
    message = cases["few"].find("failure").get("message")
    assert message.startswith("not shown to forget less than the threshold: prove-below: upper 95% bound of "
                              "F_true 0.139 ≥ 0.020")
    assert cases["many"].find("failure") is None and "shown below threshold" in cases["many"].find("system-out").text
    data = json.loads((tmp_path / "gate.json").read_text())
    groups = {g["group"]: g for g in data["groups"]}
    assert data["default"]["mode"] == "prove-below" and data["failed"] == ["few"]
    assert groups["few"]["mode"] == "prove-below" and groups["few"]["forgetting_true_upper"] == pytest.approx(0.1391, abs=1e-4)
