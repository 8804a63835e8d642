"""Terminal tables for comparisons (rich), kept apart from the numbers they show."""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

#: (column, header, format) of every figure of a transition summary (`--wide`); the JSON carries everything.
SUMMARY_COLUMNS: list[tuple[str, str, str]] = [
    ("n", "N", "d"),
    ("acc_before", "acc A", ".3f"),
    ("acc_after", "acc B", ".3f"),
    ("n_10", "1→0", "d"),
    ("n_01", "0→1", "d"),
    ("forgetting", "F", ".3f"),
    ("forgetting_chance", "F chance", ".3f"),
    ("forgetting_true", "F true", ".3f"),
    ("forgetting_max", "F max", ".3f"),
    ("backward_transfer", "BT", ".3f"),
    ("backward_transfer_true", "BT true", ".3f"),
    ("mcnemar_p", "McNemar p", ".3g"),
]

#: the figures of the default (narrow) table: they fit 100 columns with a task name of ~25 characters.
#: "acc" is the pair acc_before → acc_after in one cell.
ESSENTIAL_COLUMNS: list[tuple[str, str, str]] = [
    ("n", "N", "d"),
    ("acc", "acc A → B", ".3f"),
    ("n_10", "1→0", "d"),
    ("n_01", "0→1", "d"),
    ("forgetting_true", "F true", ".3f"),
    ("backward_transfer_true", "BT true", ".3f"),
    ("mcnemar_p", "p", ".3g"),
]

#: shown after "0→1" when the comparison counted unstable flips
UNSTABLE_SUMMARY_COLUMNS: list[tuple[str, str, str]] = [
    ("n_10_unstable", "1→0 unstable", "d"),
    ("n_01_unstable", "0→1 unstable", "d"),
]

def wide_hint(unstable: bool = False, files: str = "--json/--csv") -> str:
    """The line under a default table that says what --wide adds (and where every figure goes)."""
    return f"--wide: also F, F chance, F max, BT (with 95% CIs){', unstable flips' if unstable else ''}; " \
           f"{files}: every figure"


def format_value(value, spec: str) -> str:
    """A figure as printed: "–" for a missing one; for spec "d" (a count) an integer, or, for a count
    averaged over repeats, its decimals (12.5, 3.33: never rounded to a count the other figures
    contradict); else format(value, spec)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if spec == "d":
        number = float(value)
        if number.is_integer():
            return f"{int(number)}"
        return f"{number:.2f}".rstrip("0").rstrip(".")
    return format(float(value), spec)


def comparison_table(frame: pd.DataFrame, title: str, label_columns: Iterable[str], *, wide: bool = False):
    """A rich Table with one row per group of `frame` (a transition summary).

    By default the essential figures (ESSENTIAL_COLUMNS), so the table reads at 100 columns; `wide`
    shows every figure (SUMMARY_COLUMNS, unstable flips, CIs). Figures never wrap or get cut; the
    labels (task, category, checkpoints) fold onto more lines when space is short.
    """
    from rich.table import Table

    labels = list(label_columns)
    table = Table(title=title, title_justify="left", header_style="bold")
    for name in labels:
        table.add_column(name, overflow="fold")
    shown = SUMMARY_COLUMNS if wide else ESSENTIAL_COLUMNS
    if wide and "n_10_unstable" in frame.columns:  # flips near a tie, counted apart (analysis.stability)
        at = [c for c, _, _ in shown].index("n_01") + 1
        shown = shown[:at] + UNSTABLE_SUMMARY_COLUMNS + shown[at:]
    for _, header, _ in shown:
        table.add_column(header, justify="right", no_wrap=True)
    ci = {"forgetting", "backward_transfer"}
    for _, row in frame.iterrows():
        cells = [str(row[name]) for name in labels]
        for column, _, spec in shown:
            if column == "acc":
                cells.append(f"{_figure(row, 'acc_before', spec)} → {_figure(row, 'acc_after', spec)}")
                continue
            text = _figure(row, column, spec)
            if column in ci and f"{column}_ci_low" in row and not pd.isna(row[f"{column}_ci_low"]):
                text += f" [{row[f'{column}_ci_low']:.3f},{row[f'{column}_ci_high']:.3f}]"
            cells.append(text)
        table.add_row(*cells)
    return table


def _figure(row: pd.Series, column: str, spec: str) -> str:
    """The figure, with ±its standard deviation over repeats when the row averages several."""
    text = format_value(row.get(column), spec)
    if f"{column}_std" in row and row.get("n_repeats", 1) > 1:
        text += f" ±{format_value(row[f'{column}_std'], spec if spec != 'd' else '.1f')}"
    return text


def items_table(items: pd.DataFrame, title: str, max_chars: int = 80):
    """Items with their prompt, gold answer and the answers before and after."""
    from rich.table import Table

    table = Table(title=title, title_justify="left", header_style="bold", show_lines=True)
    for name in ("task", "item_id", "prompt", "gold", "before", "after"):
        table.add_column(name, overflow="fold")
    for _, row in items.iterrows():
        prompt = str(row.get("prompt", ""))
        if len(prompt) > max_chars:
            prompt = "…" + prompt[-max_chars:]
        table.add_row(str(row["task"]), str(row["item_id"]), prompt, str(row.get("gold_answer", "")),
                      str(row.get("answer_before", "")), str(row.get("answer_after", "")))
    return table
