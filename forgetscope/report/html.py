"""One self-contained HTML report of a checkpoint sequence (two checkpoints or a whole run).

The file needs nothing else: images are PNGs embedded as base64 data URIs,
the CSS is inline, there is no JavaScript and no external URL, so it opens
offline and can be mailed or attached to a CI run. Every text that comes
from the user (task names, prompts, answers, settings) goes through
`html.escape`. The same input gives the same bytes (no timestamp; the
figures are reproducible, see `heatmaps`).

Sections: one plain sentence per comparison (report.story), first; checkpoints;
the first-vs-last summary per task (and per consecutive pair when there are
more than two checkpoints), with significant forgetting beyond chance and a
large KL (≥ KL_HIGHLIGHT nats) marked; what happened to the items along the
sequence, including the items learned and later forgotten; heatmaps; with
per-choice log-likelihoods, the KL and forgetting-risk figures; the top
forgotten and learned items with their prompts and answers; the settings
(each distinct one once) and fingerprints of every checkpoint.

Figures are PNGs at twice their nominal pixels (shown at the nominal size, so
they stay sharp on high-density screens).
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
from ..records.checkpoint_order import short_names
from . import heatmaps, item_plots
from .story import comparison_sentence, forgetting_is_significant
from .tables import SUMMARY_COLUMNS, format_value

#: A task's mean KL(before ‖ after) from this many nats on is marked in the summary table.
KL_HIGHLIGHT = 0.1
#: Learned-then-forgotten items listed per task.
MAX_RELAPSES = 20

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
.story{font-size:1.05rem}td.hi{background:#fbd5cf;font-weight:600}td.kl{background:#fdebc8;font-weight:600}
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
    short = short_names(names)
    first_last = sequence.pair_summary(0, -1, "task")
    overall = sequence.pair_summary(0, -1, None).assign(task="overall (from items)")
    scored = _scored_pairs(sequence, records)
    if scored is not None:  # KL and risk figures per task and overall, from the per-choice scores
        first_last = _with_item_figures(first_last, ["task"], sequence, *scored)
        overall = _with_item_figures(overall, [], sequence, *scored)
    body = [f"<h1>{escape(title)}</h1>",
            f"<p class='story'>{escape(comparison_sentence(overall.iloc[0], short[-1]))}</p>"
            if len(overall) else "",
            f"<p class='note'>{len(names)} checkpoints, {sequence.items['task'].nunique()} tasks, "
            f"{len(sequence.items)} item rows, metric <code>{escape(sequence.metric)}</code>. "
            f"First = {escape(short[0])}, last = {escape(short[-1])}.</p>"]
    body += _notes(sequence)
    body.append("<h2 id='checkpoints'>Checkpoints</h2>")
    body.append(_table("checkpoints", ["#", "name", "full name", "model fingerprint", "backend", "tasks", "rows"],
                       _checkpoint_rows(names, short, records)))
    body.append(f"<h2 id='summary'>First vs last: {escape(short[0])} → {escape(short[-1])}</h2>")
    body.append(_sentences([(str(r["task"]), r) for r in first_last.to_dict("records")], short[-1]))
    body.append(_summary_table("summary", pd.concat([first_last, overall], ignore_index=True), ["task"]))
    body.append(f"<p class='note'>Marked: F true where forgetting beyond chance is significant (one-sided "
                f"binomial p &lt; 0.05; McNemar without a chance term); KL mean from {KL_HIGHLIGHT:g} nats.</p>")
    if len(names) > 2:
        consecutive = sequence.consecutive().assign(before=lambda t: t["before"].map(dict(zip(names, short))),
                                                    after=lambda t: t["after"].map(dict(zip(names, short))))
        body.append("<h2 id='consecutive'>Consecutive checkpoints</h2>")
        steps = sequence.consecutive(None)
        body.append(_sentences([(f"{short[i - 1]} → {short[i]}", r) for i, r in
                                zip(steps["after_index"], steps.to_dict("records"))], None, short))
        body.append(_summary_table("consecutive", consecutive, ["task", "before", "after"]))
    body.append("<h2 id='items-along'>Items along the sequence</h2>")
    body.append("<p class='note'>Per task, over item rows (items × repeats): forgetting events are 1→0 between "
                "consecutive checkpoints; never learned = wrong at every checkpoint; unforgettable = right at some "
                "checkpoint and never forgotten afterwards.</p>")
    summary = sequence.task_summary()
    body.append(_table("sequence", ["task"] + [c.replace("_", " ") for c in summary.columns[1:]],
                       [[r[0]] + [_number(v) for v in r[1:]] for r in summary.itertuples(index=False)]))
    if len(names) > 2:
        body.append("<h3 id='relapses'>Learned, then forgotten</h3>")
        body.append(_relapses_section(sequence, short))
    body.append("<h2 id='figures'>Heatmaps</h2>")
    body += [_figure(fig, caption) for fig, caption in _figures(sequence, first_last, max_task_figures)]
    if scored is not None:
        body.append("<h2 id='scores'>Score changes and forgetting risk (first vs last)</h2>")
        body += [_figure(fig, caption) for fig, caption in _score_figures(*scored, first_last, overall)]
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
    body += _settings_sections(names, short, records)
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
    """The figure as a PNG at twice its pixels, shown at its nominal size (sharp on dense screens)."""
    data = base64.b64encode(heatmaps.figure_bytes(figure, "png", scale=2)).decode("ascii")
    width, height = (round(v * heatmaps.DPI) for v in figure.get_size_inches())
    return (f"<figure><img alt='{escape(caption, quote=True)}' width='{width}' height='{height}' "
            f"src='data:image/png;base64,{data}'><figcaption>{escape(caption)}</figcaption></figure>")


def _sentences(rows: list[tuple[str, dict]], after: str | None, short: list[str] | None = None) -> str:
    """One plain sentence per comparison (a task, or a consecutive pair when `after` is None)."""
    items = []
    for label, row in rows:
        name = after if after is not None else short[int(row["after_index"])]
        items.append(f"<li><b>{escape(label)}</b>: {escape(comparison_sentence(row, name))}</li>")
    return "<ul class='story'>" + "".join(items) + "</ul>" if items else ""


def _relapses_section(sequence: CheckpointSequence, short: list[str]) -> str:
    """Items learned at some checkpoint and forgotten at a later one, per task (what first vs last misses)."""
    table = sequence.learned_then_forgotten()
    if not len(table):
        return "<p class='note'>No item was learned and then forgotten along the sequence.</p>"
    label = dict(zip(sequence.checkpoints, short))
    counts = table.groupby("task", sort=True).size()
    note = ("<p class='note'>Item rows with a 0→1 step followed later by a 1→0 step (e.g. 010): "
            + ", ".join(f"{escape(task)} {int(n)}" for task, n in counts.items())
            + f"; up to {MAX_RELAPSES} per task listed.</p>")
    shown = table.groupby("task", sort=True).head(MAX_RELAPSES)
    rows = [[r.task, r.item_id, r.trajectory, label[r.learned_at], label[r.forgotten_at]]
            + ([r.repeat] if sequence.items["repeat"].nunique() > 1 else []) for r in shown.itertuples(index=False)]
    headers = ["task", "item", "trajectory", "learned at", "forgotten at"]
    headers += ["repeat"] if sequence.items["repeat"].nunique() > 1 else []
    return note + _table("relapses", headers, rows)


def _scored_pairs(sequence: CheckpointSequence, records: pd.DataFrame):
    """(The paired items of the first and last checkpoints, as compare_records pairs them, and their
    per-row scores) when both hold per-choice log-likelihoods, else None."""
    from ..analysis.distances import has_scores
    from ..analysis.item_figures import per_row_scores
    from ..analysis.pairing import pair_records

    first, last = (checkpoint_rows(records, name) for name in (sequence.checkpoints[0], sequence.checkpoints[-1]))
    if not (has_scores(first, sequence.metric) and has_scores(last, sequence.metric)):
        return None
    paired = pair_records(first, last, metric=sequence.metric, identical_only=bool(len(sequence.dropped)))
    scores = per_row_scores(paired, first, last, sequence.metric)
    if scores is None or not np.isfinite(scores["kl"]).any():
        return None
    return paired, scores


def _with_item_figures(table: pd.DataFrame, by: list[str], sequence: CheckpointSequence, paired,
                       scores: dict) -> pd.DataFrame:
    """`table` (a first-vs-last summary by `by`) with the KL and risk columns compare_records gives its
    rows: each row's figures come from its own paired items, with the same bootstrap seeds."""
    from ..analysis.item_figures import item_figures

    columns = ["kl_mean", "js_mean", "margin_change_mean", "flip_share_by_kl_decile", "risk_auroc",
               "risk_auroc_ci_low", "risk_auroc_ci_high", "risk_ap", "risk_n_forgotten"]
    figures = item_figures(table, by, paired, scores, n_bootstrap=sequence.n_bootstrap, seed=sequence.seed)
    return table.assign(**{c: figures[c].to_numpy() for c in columns})


def _score_figures(paired, scores: dict, first_last: pd.DataFrame, overall: pd.DataFrame):
    from ..analysis.risk import forgetting_by_risk_bin, roc_curve

    rows = [r for r in pd.concat([first_last, overall], ignore_index=True).to_dict("records")]
    yield (item_plots.kl_flip_figure(rows).figure,
           "Share of flipped items (1→0 or 0→1) among the items whose KL(before ‖ after) is at or above each "
           "percentile; KL between the softmax of the choices' log-likelihoods, in nats.")
    frame = paired.frame
    right = frame["before"].to_numpy(dtype=bool) & np.isfinite(scores["margin_before"])
    risk, lost = -scores["margin_before"][right], ~frame["after"].to_numpy(dtype=bool)[right]
    row = overall.iloc[0]
    if lost.any() and (~lost).any():
        fpr, tpr = roc_curve(risk, lost)
        yield (item_plots.risk_figure(forgetting_by_risk_bin(risk, lost), fpr, tpr, auroc=float(row["risk_auroc"]),
                                      ci=(float(row["risk_auroc_ci_low"]), float(row["risk_auroc_ci_high"]))).figure,
               f"Items right at the first checkpoint ({len(risk)}, {int(lost.sum())} forgotten), all tasks: the "
               "forgotten share per tenth of the risk score −margin (gold minus best other log-likelihood, "
               "before), and its ROC curve (AUROC, 95% interval).")


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


def _settings_sections(names: list[str], short: list[str], records: pd.DataFrame) -> list[str]:
    """Which settings each checkpoint and task ran with (by hash), then each distinct settings text once."""
    rows, texts = [], {}
    for name, label in zip(names, short):
        own = checkpoint_rows(records, name)
        columns = [c for c in ("task", "task_fingerprint", "settings_hash", "settings") if c in own.columns]
        runs = _distinct(own[columns]).astype(str).drop_duplicates().sort_values(columns[:1], kind="stable")
        for r in runs.to_dict("records"):
            key = r.get("settings_hash", "") or r.get("settings", "")
            texts.setdefault(key, r.get("settings", ""))
            rows.append([label, _joined(own.get("model_fingerprint")), r.get("task", ""),
                         r.get("task_fingerprint", ""), r.get("settings_hash", "")])
    out = [_table("runs", ["checkpoint", "model fingerprint", "task", "task fingerprint", "settings hash"], rows)]
    same = len(texts) == 1
    lead = "Every checkpoint and task ran with the same settings" if same else f"{len(texts)} distinct settings"
    out.append(f"<p class='note'>{lead}:</p>")
    out.append(_table("settings", ["settings hash", "settings"],
                      [[key, _pre(_pretty_json(text))] for key, text in texts.items()]))
    return out


def _summary_table(table_id: str, frame: pd.DataFrame, labels: list[str]) -> str:
    """Summary rows; F true marked where forgetting beyond chance is significant, KL mean where large."""
    scored = "kl_mean" in frame.columns
    headers = labels + [header for _, header, _ in SUMMARY_COLUMNS] + (["KL mean", "risk AUROC"] if scored else [])
    rows = []
    for row in frame.to_dict("records"):
        cells = [str(row[c]) for c in labels]
        for column, _, spec in SUMMARY_COLUMNS:
            text = _cell(row, column, spec)
            cells.append(_Marked(text, "hi") if column == "forgetting_true" and forgetting_is_significant(row)
                         else _Num(text))
        if scored:
            kl = row.get("kl_mean")
            large = kl is not None and not pd.isna(kl) and kl >= KL_HIGHLIGHT
            cells.append(_Marked(format_value(kl, ".3f"), "kl") if large else _Num(format_value(kl, ".3f")))
            cells.append(_Num(format_value(row.get("risk_auroc"), ".2f")))
        rows.append(cells)
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


class _Marked(str):
    """A number cell marked with a CSS class (significant forgetting, large KL)."""

    def __new__(cls, text: str, mark: str):
        cell = super().__new__(cls, text)
        cell.mark = mark
        return cell


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
            elif isinstance(cell, _Marked):
                cells.append(f"<td class='num {cell.mark}'>{escape(cell)}</td>")
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
