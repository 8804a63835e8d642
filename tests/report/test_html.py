"""The HTML report shows numbers computed by hand from constructed records, and stands alone."""

from __future__ import annotations

import base64
import io
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from forgetscope.analysis.sequence import checkpoint_sequence
from forgetscope.report.html import render_report

from .conftest import make_records


class _Tables(HTMLParser):
    """Cell texts of every table with an id: {id: [[cell, ...], ...]} (header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = dict(attrs).get("id")
            if self._table:
                self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def tables_of(html: str) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def rows_by_first_cell(table: list[list[str]]) -> dict[str, list[str]]:
    header, *rows = table
    return {row[0]: dict(zip(header, row)) for row in rows}


@pytest.fixture(scope="module")
def report() -> str:
    records = make_records()
    return render_report(checkpoint_sequence(records, n_bootstrap=100), records, title="Run <1>", top=5)


def test_summary_shows_the_numbers_computed_by_hand(report):
    summary = rows_by_first_cell(tables_of(report)["summary"])
    # alpha (k=2), c0 → c2: right [1,1,0,0] → [0,0,1,0]; F_chance = (1-.5)(1-.25)/1 = .375
    alpha = summary["alpha"]
    assert [alpha[h] for h in ("N", "acc A", "acc B", "1→0", "0→1")] == ["4", "0.500", "0.250", "2", "1"]
    assert alpha["F chance"] == "0.375" and alpha["F true"] == "0.125" and alpha["BT true"] == "0.000"
    assert alpha["McNemar p"] == "1"
    assert alpha["F"].startswith("0.500 [")  # with its bootstrap interval
    # beta (generative): [1,1,0] → [1,1,1]: BT = 1/3, no chance term, F max = acc before
    beta = summary["beta"]
    assert [beta[h] for h in ("N", "1→0", "0→1", "F chance", "BT true", "F max")] == \
        ["3", "0", "1", "0.000", "0.333", "0.667"]
    overall = summary["overall (from items)"]
    # 7 items: acc 4/7 → 4/7; F = 2/7; chance only from alpha's group: 4/7 · .375
    assert [overall[h] for h in ("N", "acc A", "acc B", "1→0", "0→1", "F chance")] == \
        ["7", "0.571", "0.571", "2", "2", "0.214"]


def test_consecutive_and_sequence_tables(report):
    tables = tables_of(report)
    consecutive = [row[:3] + [row[6], row[7]] for row in tables["consecutive"][1:]]
    assert consecutive == [["alpha", "c0", "c1", "1", "1"], ["alpha", "c1", "c2", "1", "0"],
                           ["beta", "c0", "c1", "1", "0"], ["beta", "c1", "c2", "0", "2"]]
    sequence = rows_by_first_cell(tables["sequence"])
    assert list(sequence["alpha"].values())[1:] == ["4", "0.500", "0.250", "1", "1", "2", "2", "1"]
    assert list(sequence["beta"].values())[1:] == ["3", "0.667", "1.000", "0", "2", "1", "1", "2"]


def test_items_with_prompts_and_answers(report):
    tables = tables_of(report)
    forgotten = [row for row in tables["1to0"][1:]]
    assert [(r[0], r[1], r[2]) for r in forgotten] == [("alpha", "a0", "110"), ("alpha", "a1", "100")]
    assert forgotten[0][3:] == ["Question <a0> & more?", "yes-a0", "yes-a0", "no-a0"]
    learned = {r[1]: r for r in tables["0to1"][1:]}
    assert set(learned) == {"a2", "b2"}
    assert learned["b2"][4:] == ['["ans-b2"]', "wrong-b2-run/c0", "ans-b2"]
    assert "Question &lt;a0&gt; &amp; more?" in report  # user text is escaped
    assert "<title>Run &lt;1&gt;</title>" in report


def test_checkpoints_settings_and_fingerprints(report):
    checkpoints = tables_of(report)["checkpoints"]
    assert [row[1:4] for row in checkpoints[1:]] == [["c0", "run/c0", "fp-0" * 4], ["c1", "run/c1", "fp-1" * 4],
                                                      ["c2", "run/c2", "fp-2" * 4]]
    runs = tables_of(report)["runs"]
    assert [row[0] for row in runs[1:]] == ["c0", "c0", "c1", "c1", "c2", "c2"]
    assert runs[1][1:] == ["fp-0" * 4, "alpha", "tf-alpha", "sh-1"]
    # the settings text is shown once, not once per checkpoint and task
    assert report.count('"batch_size": 8') == 1 and "Every checkpoint and task ran with the same settings" in report


def test_self_contained(report):
    import matplotlib.image

    assert "<script" not in report.lower()
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", report)
    assert "@import" not in report and "url(" not in report
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", report)
    # transitions, 3 task maps, pairwise + raster for both tasks, flips by KL (no risk figure: every item
    # right at c0 was forgotten, so there is no kept item to rank against)
    assert len(images) == 1 + 3 + 2 * 2 + 1
    for data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100


def test_two_checkpoints_no_consecutive_table_and_same_bytes(hand_records):
    two = hand_records[hand_records.checkpoint != "run/c1"]
    first = render_report(checkpoint_sequence(two, n_bootstrap=10), two)
    again = render_report(checkpoint_sequence(two, n_bootstrap=10), two)
    assert first == again
    tables = tables_of(first)
    assert "consecutive" not in tables
    assert rows_by_first_cell(tables["summary"])["alpha"]["1→0"] == "2"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _console_messages(path) -> tuple[str, list[str]]:
    """(DOM, console lines) of a page opened in headless Chromium."""
    run = subprocess.run([_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
                          "--v=0", "--dump-dom", path.resolve().as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, [line for line in run.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="needs Chromium (Debian: apt-get install chromium)")
def test_opens_in_headless_chromium_without_console_errors(report, tmp_path):
    # The detector works: a page that logs an error is caught.
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>")
    assert any("boom" in line for line in _console_messages(broken)[1])

    page = tmp_path / "report.html"
    page.write_text(report, encoding="utf-8")
    dom, console = _console_messages(page)
    assert console == []
    assert "0.375" in dom and "F true" in dom and "data:image/png;base64," in dom


# ---------------------------------------------------------------------------- the story, relapses, marks, figures

#: 30 forgotten, 10 kept, 4 learned then forgotten (010), 2 never learned: k = 2, gold choice 0
STORY = {"quiz": (2, {**{f"f{i}": "100" for i in range(30)}, **{f"k{i}": "111" for i in range(10)},
                      **{f"r{i}": "010" for i in range(4)}, "n0": "000", "n1": "000"})}


@pytest.fixture(scope="module")
def story_report() -> str:
    records = make_records(STORY)
    return render_report(checkpoint_sequence(records, n_bootstrap=50), records, title="story")


def test_report_opens_with_the_sentence_and_one_per_task(story_report):
    from forgetscope.report.story import comparison_sentence

    seq = checkpoint_sequence(make_records(STORY), n_bootstrap=50)
    overall = seq.pair_summary(0, -1, None).iloc[0]
    sentence = comparison_sentence(overall, "c2")
    # 40 right at c0: 30 forgotten by c2 (F_chance = (1 − 40/46)(1 − 10/46) / 1 ≈ 0.10), nothing learned
    assert sentence.startswith("c2 forgot 30 of 46 items (F_true 0.55, p < 1e-") and sentence.endswith("learned none.")
    from html import escape

    assert f"<p class='story'>{escape(sentence)}</p>" in story_report  # "p &lt; 1e-18"
    assert f"<li><b>quiz</b>: {escape(sentence)}</li>" in story_report
    assert "<li><b>c0 → c1</b>: c1 forgot 30 of 46 items" in story_report


def test_items_learned_then_forgotten_are_listed(story_report):
    relapses = tables_of(story_report)["relapses"]
    assert relapses[0] == ["task", "item", "trajectory", "learned at", "forgotten at"]
    assert relapses[1:] == [["quiz", f"r{i}", "010", "c1", "c2"] for i in range(4)]
    assert "quiz 4" in story_report


def test_significant_forgetting_and_large_kl_are_marked(story_report, report):
    summary = re.search(r"<table id='summary'>.*?</table>", story_report, re.S).group(0)
    quiz = re.search(r"<tr><td>quiz</td>.*?</tr>", summary).group(0)
    cells = re.findall(r"<td class='([^']*)'>([^<]*)</td>", quiz)
    # F true (30 of 40 right items lost) is significant; KL: 30 flipped items of 46 moved by
    # KL(softmax(−1, −2) ‖ softmax(−2, −1)) = tanh(1/2) nats each, 4 more (the relapses: 0→0 at c0 vs c2)
    assert cells[7][0] == "num hi"
    kl = 30 * math.tanh(0.5) / 46
    assert cells[-2] == ("num kl", f"{kl:.3f}")
    # the small hand-made run: nothing significant, KL 0.347 is marked
    first = re.search(r"<table id='summary'>.*?</table>", report, re.S).group(0)
    assert "num hi" not in first


def test_figures_are_png_at_twice_their_size_with_the_risk_figure(story_report):
    import matplotlib.image

    images = re.findall(r"width='(\d+)' height='(\d+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", story_report)
    for width, height, data in images:
        pixels = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format="png")
        assert pixels.shape[:2] == (2 * int(height), 2 * int(width))
    assert "Share of flipped items (1→0 or 0→1) among the items whose KL" in story_report
    assert "Items right at the first checkpoint (40, 30 forgotten)" in story_report
    assert len(images) == 1 + 3 + 2 + 2  # transitions, task maps, pairwise + raster, KL and risk
