"""One self-contained HTML report of a checkpoint sequence (two checkpoints or a whole run).

The file needs nothing else: images are PNGs embedded as base64 data URIs,
the CSS is inline, there is no JavaScript and no external URL, so it opens
offline and can be mailed or attached to a CI run. Every text that comes
from the user (task names, prompts, answers, settings) goes through
`html.escape`. The same input gives the same bytes (no timestamp; the
figures are reproducible, see `heatmaps`).

Sections: checkpoints; the first-vs-last summary per task (and per
consecutive pair when there are more than two checkpoints); what happened to
the items along the sequence; heatmaps; the top forgotten and learned items
with their prompts and answers; the settings and fingerprints of every
checkpoint.
"""

from __future__ import annotations

import base64
import json
from html import escape
from typing import Iterable

import numpy as np
import pandas as pd

from ..analysis.sequence import CheckpointSequence, checkpoint_rows
from ..records import codes as record_codes
from . import heatmaps
from .tables import SUMMARY_COLUMNS, format_value

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;
color:#1b1b1b;line-height:1.4}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}pre{white-space:pre-wrap;margin:0;max-height:12rem;overflow:auto;font-size:.8rem}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555}code{font-size:.85rem}.note{color:#555;font-size:.9rem}
"""
_ITEM_HEADERS = ["task", "item", "trajectory", "prompt", "gold", "answer first", "answer last"]


def render_report(sequence: CheckpointSequence, records: pd.DataFrame, *, title: str = "forgetscope report",
                  top: int = 5, max_task_figures: int = 4, item_rows=None) -> str:
    """The report as one HTML string.

    `records` are the records of the sequence's checkpoints (settings come from
    them; prompts, choices and answers too, unless `item_rows` is given: a
    function (task, item_id) frame -> those items' full rows, for records read
    without their text). `top`: forgotten and learned items
    listed per task. Pairwise and raster figures are drawn for the
    `max_task_figures` tasks with the most forgetting (F_true, first vs last).
    """
    names = sequence.checkpoints
    short = heatmaps.short_names(names)
    first_last = sequence.pair_summary(0, -1, "task")
    overall = sequence.pair_summary(0, -1, None).assign(task="overall (from items)")
    body = [f"<h1>{escape(title)}</h1>",
            f"<p class='note'>{len(names)} checkpoints, {sequence.items['task'].nunique()} tasks, "
            f"{len(sequence.items)} item rows, metric <code>{escape(sequence.metric)}</code>. "
            f"First = {escape(short[0])}, last = {escape(short[-1])}.</p>"]
    body += _notes(sequence)
    body.append("<h2 id='checkpoints'>Checkpoints</h2>")
    body.append(_table("checkpoints", ["#", "name", "full name", "model fingerprint", "backend", "tasks", "rows"],
                       _checkpoint_rows(names, short, records)))
    body.append(f"<h2 id='summary'>First vs last: {escape(short[0])} → {escape(short[-1])}</h2>")
    body.append(_summary_table("summary", pd.concat([first_last, overall], ignore_index=True), ["task"]))
    if len(names) > 2:
        consecutive = sequence.consecutive().assign(before=lambda t: t["before"].map(dict(zip(names, short))),
                                                    after=lambda t: t["after"].map(dict(zip(names, short))))
        body.append("<h2 id='consecutive'>Consecutive checkpoints</h2>")
        body.append(_summary_table("consecutive", consecutive, ["task", "before", "after"]))
    body.append("<h2 id='items-along'>Items along the sequence</h2>")
    body.append("<p class='note'>Per task, over item rows (items × repeats): forgetting events are 1→0 between "
                "consecutive checkpoints; never learned = wrong at every checkpoint; unforgettable = right at some "
                "checkpoint and never forgotten afterwards.</p>")
    summary = sequence.task_summary()
    body.append(_table("sequence", ["task"] + [c.replace("_", " ") for c in summary.columns[1:]],
                       [[r[0]] + [_number(v) for v in r[1:]] for r in summary.itertuples(index=False)]))
    body.append("<h2 id='figures'>Heatmaps</h2>")
    body += [_figure(fig, caption) for fig, caption in _figures(sequence, first_last, max_task_figures)]
    chosen = {kind: _chosen_items(sequence, kind, top) for kind in ("1to0", "0to1")}
    item_records = records
    if item_rows is not None and "prompt" not in records.columns:  # one read for both lists
        wanted = pd.concat([c[["task", "item_id"]] for c, _ in chosen.values()]).drop_duplicates()
        item_records = item_rows(wanted) if len(wanted) else records
    for kind, heading in (("1to0", "Forgotten items (right first, wrong last)"),
                          ("0to1", "Learned items (wrong first, right last)")):
        body.append(f"<h2 id='{'forgotten' if kind == '1to0' else 'learned'}'>{heading}</h2>")
        body.append(_items_section(sequence, item_records, kind, *chosen[kind], top))
    body.append("<h2 id='settings'>Settings and fingerprints</h2>")
    body += _settings_sections(names, records)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _notes(sequence: CheckpointSequence) -> list[str]:
    out = [f"<p class='note'>{escape(note)}</p>" for note in sequence.notes]
    if len(sequence.dropped):
        total = int(sequence.dropped["n_dropped"].sum())
        out.append(f"<p class='note'>{total} item(s) differ from the first checkpoint and were left out "
                   "(identical items only).</p>")
    return out


def _figures(sequence: CheckpointSequence, first_last: pd.DataFrame, max_task_figures: int):
    """(figure, caption) pairs, in the order they appear."""
    pairs = sequence.consecutive() if len(sequence.checkpoints) > 2 else first_last.assign(
        after=sequence.checkpoints[-1], after_index=len(sequence.checkpoints) - 1)
    scope = "each checkpoint vs the previous one" if len(sequence.checkpoints) > 2 else "first vs last"
    yield heatmaps.transition_heatmap(first_last).figure, "Transitions per task, first vs last checkpoint."
    for value in ("forgetting_true", "backward_transfer_true", "acc_change"):
        yield heatmaps.task_heatmap(pairs, value).figure, f"{heatmaps.FIGURES[value].label}: {scope}."
    worst = first_last.sort_values(["forgetting_true", "task"], ascending=[False, True], kind="stable")
    for task in worst["task"].astype(str).head(max_task_figures):
        if len(sequence.checkpoints) > 2:
            matrix = sequence.pairwise(task, "forgetting_true")
            yield (heatmaps.pairwise_heatmap(matrix, title=f"{task}: F true, row = before, column = after").figure,
                   f"{task}: forgetting beyond chance between every two checkpoints.")
        yield (heatmaps.raster_heatmap(sequence.raster(task), title=f"{task}: correctness per item").figure,
               f"{task}: items (rows) by the checkpoint where they were first learned.")


def _figure(figure, caption: str) -> str:
    data = base64.b64encode(heatmaps.figure_bytes(figure, "png")).decode("ascii")
    return (f"<figure><img alt='{escape(caption, quote=True)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _chosen_items(sequence: CheckpointSequence, kind: str, top: int) -> tuple[pd.DataFrame, int]:
    """Up to `top` items per task with this first→last transition, and how many there are in all.

    Forgotten items are ranked by forgetting events (most first), learned ones by
    how early and stably they were learned; ties keep the records order.
    """
    items = sequence.items.assign(first=sequence.correct[:, 0], last=sequence.correct[:, -1])
    items = items[(items["first"] != items["last"]) & (items["last"] == (kind == "0to1"))]
    items = items[items["repeat"] == items["repeat"].min()] if len(items) else items
    keys = ["forgetting_events", "first_learned_index"]
    ascending = [False, True] if kind == "1to0" else [True, True]
    ranked = items.sort_values(keys, ascending=ascending, kind="stable")
    chosen = ranked.groupby("task", observed=True, sort=True).head(top)
    return chosen.assign(task=chosen["task"].astype(str)), len(items)


def _items_section(sequence: CheckpointSequence, records: pd.DataFrame, kind: str, chosen: pd.DataFrame,
                   total: int, top: int) -> str:
    """The chosen items' prompt, gold and answers at both ends (records: rows holding their text)."""
    from ..analysis.answers import describe_items

    if not len(chosen):
        return "<p class='note'>none</p>"
    first, last = (checkpoint_rows(records, n).assign(
        task=lambda f: f["task"].astype(str)) for n in (sequence.checkpoints[0], sequence.checkpoints[-1]))
    shown = describe_items(chosen[["task", "item_id", "trajectory"]], first, last, sequence.metric)
    rows = [[r.task, r.item_id, r.trajectory, _pre(r.prompt), r.gold_answer, r.answer_before, r.answer_after]
            for r in shown.itertuples(index=False)]
    note = f"<p class='note'>{total} item(s) in all; up to {top} per task shown.</p>"
    return note + _table(kind, _ITEM_HEADERS, rows)


def _checkpoint_rows(names: list[str], short: list[str], records: pd.DataFrame) -> list[list]:
    rows = []
    for number, (name, label) in enumerate(zip(names, short)):
        own = checkpoint_rows(records, name)
        rows.append([number, label, name, _joined(own.get("model_fingerprint")), _joined(own.get("backend")),
                     _number(own["task"].nunique()), _number(len(own))])
    return rows


def _settings_sections(names: list[str], records: pd.DataFrame) -> list[str]:
    out = []
    for name in names:
        own = checkpoint_rows(records, name)
        columns = [c for c in ("task", "task_fingerprint", "settings_hash", "settings") if c in own.columns]
        runs = _distinct(own[columns]).astype(str).drop_duplicates().sort_values(columns[:1], kind="stable")
        rows = [[r.get("task", ""), r.get("task_fingerprint", ""), r.get("settings_hash", ""),
                 _pre(_pretty_json(r.get("settings", "")))] for r in runs.to_dict("records")]
        out.append(f"<h3>{escape(name)}</h3><p>model fingerprint <code>{escape(_joined(own.get('model_fingerprint')))}"
                   "</code></p>")
        out.append(_table(None, ["task", "task fingerprint", "settings hash", "settings"], rows))
    return out


def _summary_table(table_id: str, frame: pd.DataFrame, labels: list[str]) -> str:
    headers = labels + [header for _, header, _ in SUMMARY_COLUMNS]
    rows = [[str(row[c]) for c in labels] + [_Num(_cell(row, c, spec)) for c, _, spec in SUMMARY_COLUMNS]
            for row in frame.to_dict("records")]
    return _table(table_id, headers, rows)


def _cell(row: dict, column: str, spec: str) -> str:
    """A figure as the terminal table prints it: F and BT with their 95% CI when there is one."""
    text = format_value(row.get(column), spec)
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if column in ("forgetting", "backward_transfer") and low is not None and not pd.isna(low):
        text += f" [{low:.3f},{high:.3f}]"
    return text


class _Num(str):
    """A cell right-aligned as a number."""


class _Raw(str):
    """A cell that is already HTML (built from escaped text)."""


def _number(value) -> "_Num":
    if isinstance(value, float):
        return _Num(f"{value:.3f}")
    return _Num(str(value))


def _pre(text) -> "_Raw":
    return _Raw(f"<pre>{escape(str(text), quote=False)}</pre>")


def _table(table_id: str | None, headers: list[str], rows: Iterable[list]) -> str:
    ident = f" id='{escape(table_id, quote=True)}'" if table_id else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, _Raw):
                cells.append(f"<td>{cell}</td>")
            elif isinstance(cell, _Num):
                cells.append(f"<td class='num'>{escape(cell)}</td>")
            else:
                cells.append(f"<td>{escape(str(cell), quote=False)}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table{ident}><thead><tr>{head}</tr></thead><tbody>" + "".join(lines) + \
        "</tbody></table></div>"


def _distinct(frame: pd.DataFrame) -> pd.DataFrame:
    """frame.drop_duplicates(), on one integer key per row when every column is categorical
    (a handful of settings over millions of rows: no strings, no row-wise hashing)."""
    categorical = all(isinstance(frame[c].dtype, pd.CategoricalDtype) for c in frame.columns)
    span = float(np.prod([len(frame[c].cat.categories) + 1.0 for c in frame.columns])) if categorical else 0.0
    if len(frame) and categorical and span < 2.0**62:
        key = np.zeros(len(frame), dtype=np.int64)
        for column in frame.columns:
            codes = frame[column].cat.codes.to_numpy().astype(np.int64) + 1  # -1 (missing) -> 0
            key = record_codes.combine(key, len(frame[column].cat.categories) + 1, codes)
        first = pd.Series(key).drop_duplicates().index.to_numpy()
        return frame.iloc[np.sort(first)]
    return frame.drop_duplicates()


def _joined(column) -> str:
    if column is None:
        return ""
    values = sorted({str(v) for v in pd.unique(column) if str(v)})
    return ", ".join(values)


def _pretty_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=1, sort_keys=True)
    except (TypeError, ValueError):
        return str(text)
