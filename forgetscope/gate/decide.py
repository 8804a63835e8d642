"""Release gate: stop a checkpoint that forgot too much, and only when the data say so.

For every gated group (each task, plus the categories a config names) the
claim tested is exactly "chance-adjusted forgetting exceeds its threshold t":

    F_true = F − F_chance > t   ⟺   F > F_chance + t

With N paired items of which n_10 went right → wrong, the one-sided exact
binomial test of n_10 against the rate r = min(F_chance + t, 1) gives
p = P[Binomial(N, r) ≥ n_10]. A group FAILS when F_true > t and p < alpha
(p Holm-adjusted over all gated groups when `holm` is on). McNemar's p (any
change at all, either direction) is reported alongside, for information.

Equivalence mode (`prove_below`, per group): the claim tested is the
opposite one, "F_true is below t", with p = P[Binomial(N, r) ≤ n_10]
(analysis.paired.prove_forgetting_below). A group PASSES only when p < alpha,
i.e. when the upper one-sided (1 − α) Clopper–Pearson bound of F, less
F_chance, is below t; otherwise it fails. With `holm` the p is the adjusted
one, and the bound (not adjusted) below t is needed but not enough to pass.
A candidate scored on too few items cannot show that, so it fails closed
instead of passing for lack of evidence (20 items, none forgotten: the bound
of F_true is 0.139, above t = 0.02).

With repeats (seeds), F, F_chance and F_true are the means over repeats that
the comparison reports, and p is the LARGEST p over the repeats (and the bound
the largest bound): a claim counts as shown only if it is shown in every seed.

Pure functions: `decide(comparison, config)` returns a `GateResult`, whose
table `to_markdown`, `to_junit_xml` and `to_json` render for CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .config import PROVE_BELOW, GateConfig, Threshold

#: Columns of GateResult.decisions, in order.
DECISION_COLUMNS = [
    "group", "scope", "task", "category", "n", "n_10", "n_01", "forgetting", "forgetting_chance", "forgetting_true",
    "max_forgetting", "alpha", "mode", "forgetting_true_upper", "p_value", "p_adjusted", "mcnemar_p", "n_repeats",
    "over_threshold", "significant", "failed", "verdict",
]


class GateError(ValueError):
    """The gate cannot decide (a configured task or category was not compared, ...): fail closed."""


@dataclass
class GateResult:
    """The decision for every gated group, and what was compared."""

    decisions: pd.DataFrame
    config: GateConfig
    baseline: str = ""
    candidate: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not bool(self.decisions["failed"].any())

    @property
    def exit_code(self) -> int:
        """0 pass, 1 fail (bad input, 2, never reaches a result)."""
        return 0 if self.passed else 1

    @property
    def failed_groups(self) -> list[str]:
        return self.decisions.loc[self.decisions["failed"], "group"].tolist()


def forgetting_p_value(n_10, n, forgetting_chance, max_forgetting):
    """One-sided exact binomial p of "F_true > max_forgetting": P[Binomial(n, r) ≥ n_10], r = min(F_chance + t, 1).

    Vectorised; 1 where n is 0.
    """
    from scipy.stats import binom

    n_10, n = np.asarray(n_10, dtype=np.float64), np.asarray(n, dtype=np.float64)
    rate = np.clip(np.asarray(forgetting_chance, dtype=np.float64) + np.asarray(max_forgetting, np.float64), 0, 1)
    p = binom.sf(n_10 - 1, n, rate)
    return np.where(n > 0, np.clip(p, 0.0, 1.0), 1.0)


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: p_(i) · (m − i + 1), made monotone, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def decide(comparison, config: GateConfig | None = None, *, tasks: Sequence[str] | None = None,
           baseline: str = "", candidate: str = "") -> GateResult:
    """Gate every compared task (or only `tasks`) and the categories `config` names.

    Fails closed: a task in `tasks`, or a task or category named in the
    config (when `tasks` is not given), that the comparison lacks is a
    GateError, never a silent pass.
    """
    config = config or GateConfig()
    compared = [str(t) for t in comparison.tasks["task"]]
    dropped = getattr(comparison, "dropped", None)
    emptied = [str(t) for t in (dropped["task"] if dropped is not None and len(dropped) else [])
               if str(t) not in compared and (not tasks or str(t) in tasks)]
    if emptied:  # identical_only left nothing of these tasks: not gating them would pass them
        raise GateError(f"task(s) {', '.join(emptied)}: no item is identical on both sides, so nothing can be "
                        "gated; compare them without --identical-only to see which items differ")
    if tasks:
        missing = [t for t in tasks if t not in compared]
        if missing:
            raise GateError(f"task(s) {', '.join(missing)} not compared (compared: {', '.join(compared)})")
        gated = [t for t in compared if t in set(tasks)]
    else:
        gated = compared
        absent = [t for t in {**config.tasks, **config.categories} if t not in compared]
        if absent:
            raise GateError(f"the gate config names task(s) {', '.join(sorted(absent))} that were not compared "
                            f"(compared: {', '.join(compared)}); compare them, or gate only some with --task")
    rows = _task_rows(comparison, config, gated) + _category_rows(comparison, config, gated)
    frame = pd.DataFrame(rows, columns=[c for c in DECISION_COLUMNS if c not in _DERIVED])
    prove = (frame["mode"] == PROVE_BELOW).to_numpy()
    _p_values(frame, comparison, prove)
    frame["p_adjusted"] = holm_adjust(frame["p_value"]) if config.holm else frame["p_value"]
    frame["over_threshold"] = frame["forgetting_true"] > frame["max_forgetting"]
    frame["significant"] = frame["p_adjusted"] < frame["alpha"]
    # exceed: fail when forgetting over t is shown; prove-below: fail unless forgetting under t is shown
    frame["failed"] = np.where(prove, ~frame["significant"], frame["over_threshold"] & frame["significant"])
    frame["verdict"] = np.where(
        prove, np.where(frame["failed"], "fail (not shown below threshold)", "pass (shown below threshold)"),
        np.where(frame["failed"], "fail",
                 np.where(frame["over_threshold"], "pass (over threshold, not significant)", "pass")))
    _refuse_non_finite(frame)
    return GateResult(frame[DECISION_COLUMNS].reset_index(drop=True), config, baseline, candidate,
                      _dropped_notes(comparison) + list(getattr(comparison, "notes", [])))


def _refuse_non_finite(frame: pd.DataFrame) -> None:
    """A NaN compares as False, so a NaN figure would pass silently: the gate cannot decide instead."""
    figures = frame[["forgetting", "forgetting_chance", "forgetting_true", "p_adjusted"]].to_numpy(np.float64)
    broken = ~np.isfinite(figures).all(axis=1)
    if broken.any():
        groups = ", ".join(frame.loc[broken, "group"].astype(str))
        raise GateError(f"group(s) {groups}: a figure of the decision is not a number (NaN or inf), so the gate "
                        "cannot decide; check those records for missing or non-finite scores")


def _dropped_notes(comparison) -> list[str]:
    """With identical_only: per task, how many items were left out, so no output hides it."""
    dropped = getattr(comparison, "dropped", None)
    if dropped is None or not len(dropped):
        return []
    return [f"{row['task']}: gated identical items only; dropped {int(row['n_dropped'])} "
            f"({int(row['n_changed'])} changed, {int(row['n_only_before'])} only in the baseline, "
            f"{int(row['n_only_after'])} only in the candidate)" for row in dropped.to_dict("records")]


_DERIVED = {"forgetting_true_upper", "p_value", "p_adjusted", "over_threshold", "significant", "failed", "verdict"}


def _task_rows(comparison, config: GateConfig, gated: list[str]) -> list[dict]:
    rows = []
    for row in comparison.tasks.to_dict("records"):
        task = str(row["task"])
        if task in gated:
            rows.append(_row(row, "task", task, "", config.for_task(task)))
    return rows


def _category_rows(comparison, config: GateConfig, gated: list[str]) -> list[dict]:
    frame = comparison.categories
    present = {(str(t), str(c)) for t, c in zip(frame["task"], frame["category"])} if len(frame) else set()
    for task, categories in config.categories.items():
        if task not in gated:
            continue
        for category in categories:
            if category != "*" and (task, category) not in present:
                have = sorted(c for t, c in present if t == task)
                raise GateError(f"the gate config names category {category!r} of task {task!r}, which has "
                                f"{'categories ' + ', '.join(have) if have else 'no categories'}")
    rows = []
    for row in frame.to_dict("records") if len(frame) else []:
        task, category = str(row["task"]), str(row["category"])
        threshold = config.for_category(task, category) if task in gated else None
        if threshold is not None:
            rows.append(_row(row, "category", task, category, threshold))
    return rows


def _row(figures: dict, scope: str, task: str, category: str, threshold: Threshold) -> dict:
    return {
        "group": f"{task}/{category}" if category else task, "scope": scope, "task": task, "category": category,
        "n": int(figures["n"]), "n_10": figures["n_10"], "n_01": figures["n_01"],
        "forgetting": figures["forgetting"], "forgetting_chance": figures["forgetting_chance"],
        "forgetting_true": figures["forgetting_true"], "max_forgetting": threshold.max_forgetting,
        "alpha": threshold.alpha, "mode": threshold.mode, "mcnemar_p": figures["mcnemar_p"],
        "n_repeats": int(figures["n_repeats"]),
    }


def _group_tests(n_10, n, chance, max_forgetting, alpha, prove) -> tuple[np.ndarray, np.ndarray]:
    """(p of each group's claim, upper (1 − α) bound of F_true): exceed or prove-below per group."""
    from ..analysis.paired import prove_forgetting_below

    n_10, n = np.asarray(n_10, np.float64), np.asarray(n, np.float64)
    below = prove_forgetting_below(n_10, n, max_forgetting, chance=chance, alpha=np.asarray(alpha, np.float64))
    p = np.where(prove, below.p_value, forgetting_p_value(n_10, n, chance, max_forgetting))
    return p, np.where(n > 0, below.forgetting_true_upper, np.nan)


def _p_values(frame: pd.DataFrame, comparison, prove: np.ndarray) -> None:
    """p and bound per group (`prove`: the rows in mode prove-below): from its own counts with one repeat;
    the largest over repeats otherwise."""
    if frame.empty:
        frame["forgetting_true_upper"] = pd.Series(dtype=np.float64)
        frame["p_value"] = pd.Series(dtype=np.float64)
        return
    if (frame["n_repeats"] <= 1).all():
        frame["p_value"], frame["forgetting_true_upper"] = _group_tests(
            frame["n_10"], frame["n"], frame["forgetting_chance"], frame["max_forgetting"], frame["alpha"], prove)
        return
    from ..analysis import transition_summary

    paired = comparison.paired.frame
    worst, bound = np.zeros(len(frame)), np.zeros(len(frame))
    for repeat in sorted(pd.unique(paired["repeat"])):
        subset = paired[(paired["repeat"] == repeat).to_numpy()]
        for scope, by in (("task", ["task"]), ("category", ["task", "category"])):
            rows = frame["scope"] == scope
            if not rows.any():
                continue
            figures = transition_summary(subset, by, n_bootstrap=0)
            keys = figures[by].astype(str).agg("/".join, axis=1) if scope == "category" else figures["task"].astype(str)
            figures = figures.set_index(keys.to_numpy()).reindex(frame.loc[rows, "group"].to_numpy())
            present = figures["n"].notna().to_numpy()
            p, upper = _group_tests(figures["n_10"].fillna(0), figures["n"].fillna(0),
                                    figures["forgetting_chance"].fillna(0),
                                    frame.loc[rows, "max_forgetting"].to_numpy(),
                                    frame.loc[rows, "alpha"].to_numpy(), prove[rows.to_numpy()])
            index = np.flatnonzero(rows.to_numpy())[present]
            worst[index] = np.maximum(worst[index], p[present])
            bound[index] = np.maximum(bound[index], upper[present])
    frame["p_value"], frame["forgetting_true_upper"] = worst, bound


__all__ = ["DECISION_COLUMNS", "GateError", "GateResult", "decide", "forgetting_p_value",
           "holm_adjust"]
