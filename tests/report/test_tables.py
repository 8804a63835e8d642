"""Terminal tables: the essential figures by default, every figure with wide=True, counts shown as they are."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from forgetscope.report.tables import comparison_table, format_value


def _row(**extra) -> dict:
    row = {"task": "arc_easy_with_a_long_name", "n": 480, "acc_before": 0.5125, "acc_after": 0.4875, "n_10": 40,
           "n_01": 28, "forgetting": 0.0833, "forgetting_chance": 0.31, "forgetting_true": 0.0123,
           "forgetting_max": 0.5, "backward_transfer": 0.0583, "backward_transfer_true": 0.0, "mcnemar_p": 0.1813,
           "forgetting_ci_low": 0.06, "forgetting_ci_high": 0.11, "backward_transfer_ci_low": 0.04,
           "backward_transfer_ci_high": 0.08, "n_10_unstable": 2, "n_01_unstable": 1}
    row.update(extra)
    return row


def _text(table, width: int = 100) -> str:
    out = Console(file=io.StringIO(), width=width, color_system=None)
    out.print(table)
    return out.file.getvalue()


@pytest.mark.parametrize("value,text", [(12, "12"), (12.0, "12"), (12.5, "12.5"), (10 / 3, "3.33"), (0.25, "0.25"),
                                        (float("nan"), "–"), (None, "–")])
def test_counts_are_integers_unless_averaged(value, text):
    assert format_value(value, "d") == text


def test_default_table_has_the_essential_columns_and_fits_100_columns():
    text = _text(comparison_table(pd.DataFrame([_row()]), "A = base   B = tuned", ["task"]))
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 100
    for header in ("task", "N", "acc A → B", "1→0", "0→1", "F true", "BT true", "p"):
        assert header in text
    assert "0.512 → 0.487" in text and "0.0123" not in text and "0.012" in text and "0.181" in text
    assert "F chance" not in text and "McNemar" not in text and "unstable" not in text


def test_wide_table_has_every_figure():
    text = _text(comparison_table(pd.DataFrame([_row()]), "t", ["task"], wide=True), width=300)
    for header in ("acc A", "acc B", "F chance", "F max", "BT", "McNemar p", "1→0 unstable", "0→1 unstable"):
        assert header in text
    assert "0.083 [0.060,0.110]" in text and "0.058 [0.040,0.080]" in text


def test_averaged_counts_keep_their_decimals():
    """Over 2 repeats, 25 flips 1→0 are 12.5 per repeat: shown as 12.5 (rounding to 12 or 13 would contradict F)."""
    frame = pd.DataFrame([_row(n_10=12.5, n_01=3.0, n_repeats=2, n_10_std=0.5, n_01_std=0.0, forgetting_true=0.026,
                               forgetting_true_std=0.001)])
    text = _text(comparison_table(frame, "t", ["task"]), width=120)
    assert "12.5 ±0.5" in text and "3 ±0" in text and "0.026 ±0.001" in text


def test_long_labels_fold_and_figures_stay_whole():
    frame = pd.DataFrame([_row(task="a_task_name_so_long_that_it_cannot_possibly_fit_in_one_narrow_column_at_all")])
    text = _text(comparison_table(frame, "t", ["task"]))
    assert "…" not in text and "0.512 → 0.487" in text
