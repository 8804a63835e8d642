"""Which items were forgotten (1→0) or newly learned (0→1), per task, category and overall.

For N paired items with before/after correctness, n_ab counts the items that
went from a to b (first digit = before). Forgetting F = n_10 / N, backward
transfer BT = n_01 / N; chance adjustment is in `chance`, McNemar and the
bootstrap in `stats`.

Every group (task, category, overall) is computed from its ITEMS, never by
averaging the rows of smaller groups: the overall forgetting of a 1000-item
task and a 10-item task weighs the big task a hundred times more.

Repeats (seeds). Every figure is computed per repeat and reported as the mean
over the group's repeats, with `<figure>_std` the sample standard deviation
(ddof=1; 0 with one repeat), `n_repeats`, and `n_ab_all_repeats`, the items
whose transition was a→b in every repeat. `mcnemar_p` is the LARGEST p over
repeats: a change counts as significant only if it is significant in every
seed. A task evaluated with a single repeat (deterministic scoring) counts
the same in each repeat of a group that mixes it with repeated tasks. The
bootstrap resamples items with all their repeats, so with repeats its
interval is for the mean over repeats (exactly so when every item of the
group ran the same repeats). `n` is the number of distinct items; the counts
n_00..n_11 are means over repeats.

Bootstrap intervals (95%, percentile) draw from one generator per group,
seeded by (seed, group label): a task's interval is the same whatever else
is compared. With one repeat they are rng.multinomial(N, [p00, p01, p10, p11]);
with repeats, each figure is drawn from its own item types (share of repeats
1→0, resp. 0→1), which is the same marginal distribution with fewer draws.

Chance terms and ceilings of every row are sums over its (task, k) subgroups
(see `chance`): tasks are never pooled, even in the overall row.

Everything is vectorised: rows become integer codes, counts come from one
np.bincount over (group, task, k, repeat, transition), and only the groups
(not the items) are looped over, for the bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..records import codes as record_codes
from .chance import subgroup_chance_terms
from .item_figures import ITEM_FIGURE_COLUMNS, item_figures, per_row_scores
from .paired import mcnemar_midp
from .pairing import PairedItems, pair_records
from .stability import DEFAULT_FLIP_TOLERANCE, UNSTABLE_COLUMNS, mark_unstable
from .stats import (bootstrap_draws, bootstrap_means, group_names, group_rng, mcnemar_p, percentile_interval,
                    repeat_mean_std)

#: The headline figures, in the order reports and JSON list them.
HEADLINE_COLUMNS = [
    "n", "acc_before", "acc_after", "n_00", "n_01", "n_10", "n_11",
    "forgetting", "backward_transfer", "forgetting_chance", "forgetting_true",
    "backward_transfer_true", "forgetting_max", "backward_transfer_max", "mcnemar_p", "mcnemar_midp",
]
CI_COLUMNS = ["forgetting_ci_low", "forgetting_ci_high", "backward_transfer_ci_low", "backward_transfer_ci_high"]
#: Figures averaged over repeats (each also gets a `_std` column).
RATE_FIGURES = [
    "acc_before", "acc_after", "forgetting", "backward_transfer", "forgetting_chance",
    "forgetting_true", "backward_transfer_true", "forgetting_max", "backward_transfer_max",
]
COUNT_COLUMNS = ["n_00", "n_01", "n_10", "n_11"]
ALL_REPEATS_COLUMNS = [f"{c}_all_repeats" for c in COUNT_COLUMNS]
SUMMARY_COLUMNS = (
    HEADLINE_COLUMNS + CI_COLUMNS + ["n_repeats"] + [f"{f}_std" for f in RATE_FIGURES] + ALL_REPEATS_COLUMNS
)
#: A grouping is counted in one dense array of (group, task, k, repeat, transition) cells up to this
#: many cells (or one per row), else only its subgroups present are coded.
DENSE_CELLS = 1 << 22
#: Up to this many (task, k) subgroups (present or not) are coded without compaction.
SMALL_SPAN = 1 << 16
#: transition_items kinds and their code (2 · before + after).
KINDS = {"0to0": 0, "0to1": 1, "1to0": 2, "1to1": 3}


def unstable_counts(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """n_10_unstable and n_01_unstable per group of `by` ([] = overall), from frame["unstable"].

    The same code as the summaries' n_10 and n_01 (analysis.transitions): a count
    is per repeat, tasks run once counting in every repeat.
    """
    table = _summarize(frame, _RowCodes.of(frame), by, 0, 0)
    return table[by + UNSTABLE_COLUMNS]


def transition_summary(
    paired: PairedItems | pd.DataFrame,
    by: list[str] | str | None = None,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group of `by` (e.g. ["task"], ["task", "category"], ["category"],
    None for overall) with the SUMMARY_COLUMNS figures."""
    frame = paired.frame if isinstance(paired, PairedItems) else paired
    by = [by] if isinstance(by, str) else list(by or [])
    if len(frame) == 0:
        return pd.DataFrame(columns=by + SUMMARY_COLUMNS)
    return _summarize(frame, _RowCodes.of(frame), by, n_bootstrap, seed)


@dataclass
class _RowCodes:
    """Integer codes of the rows of one paired frame, shared by all its groupings.

    Rows are counted per (task, k) subgroup: the chance terms of any row of a
    table (task, category, overall) are sums over such subgroups (see `chance`).
    """

    cell: np.ndarray  # per row: (subgroup · R + repeat slot) · 4 + transition
    n_reps: int  # repeat slots R
    sub_k: np.ndarray  # n_choices of each (task, k) subgroup (S of them; an empty one counts zero)
    sub_once: np.ndarray | None  # per subgroup: its task ran a single repeat (only when R > 1)
    items: "_ItemTypes | None"  # per item, when some item has several rows (repeats)
    n_k: int | None  # k slots K when subgroup = task · K + k slot (None: subgroups numbered as found)
    task_code: dict[str, int] | None  # task label (as groups show it) -> task code, when one-to-one

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "_RowCodes":
        before = frame["before"].to_numpy(dtype=bool).view(np.uint8)
        transition = (before << 1) | frame["after"].to_numpy(dtype=bool).view(np.uint8)
        rep, rep_values = _slots(frame["repeat"].to_numpy())
        k, k_values = _slots(frame["n_choices"].to_numpy(), zero_based=True)
        n_reps, n_k = len(rep_values), len(k_values)
        task, names = _task_codes(frame["task"])
        n_tasks = len(names)
        # int32 codes when they fit: half the memory of the one array kept per row
        small = n_tasks * n_k < 2**31 and len(frame) < 2**31 // max(n_reps * 4, 1)
        key = task.astype(np.int32 if small else np.int64)
        ran = None
        if n_reps > 1:  # tasks run once are deterministic: they count in every repeat
            ran = np.zeros((n_tasks, n_reps), dtype=bool)
            ran[task, rep] = True
        del task
        key *= n_k
        np.add(key, k, out=key, casting="unsafe")  # k is a slot code below n_k: no overflow
        # per row: its (task, k) subgroup; a few empty ones cost less than a lookup per row
        span = n_tasks * n_k
        cell, sub_keys = (key, np.arange(span)) if span <= SMALL_SPAN else _present(key, span)
        del key
        sub_task, sub_k = np.divmod(sub_keys, n_k)
        cell *= n_reps * 4
        if n_reps > 1:
            np.add(cell, rep * 4, out=cell, casting="unsafe")
        cell += transition
        sub_once = None if ran is None else (ran.sum(1) == 1)[sub_task]
        task_code = {name: code for code, name in enumerate(names)}
        return cls(cell, n_reps, k_values[sub_k], sub_once, _ItemTypes.of(_item_codes(frame), transition),
                   n_k if span <= SMALL_SPAN else None, task_code if len(task_code) == n_tasks else None)


def _task_codes(task: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Task code per row and the label of each code as `_groups` writes it ("" for a missing task)."""
    codes, uniques = record_codes.factorize(task, sort=False)
    names = [str(u) for u in uniques]
    if len(codes) and codes.min() < 0:
        return codes.astype(np.int64) + 1, [""] + names
    return codes, names


def _present(codes: np.ndarray, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes 0..n-1 of the values present in `codes` (all in 0..span-1), and those values (sorted)."""
    if span <= max(4 * len(codes), 1 << 22):
        seen = np.bincount(codes, minlength=span) > 0
        keys = np.flatnonzero(seen)
        return (codes if len(keys) == span else (np.cumsum(seen) - 1).astype(codes.dtype)[codes]), keys
    keys, inverse = np.unique(codes, return_inverse=True)
    return inverse.reshape(-1).astype(codes.dtype, copy=False), keys


@dataclass
class _ItemTypes:
    """What each item did over its repeats: the basis of all-repeats counts and the bootstrap."""

    first_row: np.ndarray  # per item: a row of it (to look up its group)
    stable: np.ndarray  # per item: its transition if the same in every repeat, else -1
    forgotten_key: np.ndarray  # per item: repeats 1→0 · base + repeats
    learned_key: np.ndarray  # per item: repeats 0→1 · base + repeats
    base: int

    @classmethod
    def of(cls, item: np.ndarray, transition: np.ndarray) -> "_ItemTypes | None":
        item_rows = np.bincount(item)
        if item_rows.max() <= 1:
            return None  # one row per item: rows are items, nothing to collect
        base = int(item_rows.max()) + 1
        # Count each item's 00, 01, 10, 11 rows in one pass, as the digits of one number.
        weights = (float(base) ** np.arange(3, -1, -1))[transition]
        packed = np.rint(np.bincount(item, weights=weights)).astype(np.int64)
        present = np.flatnonzero(item_rows)
        packed, repeats = packed[present], item_rows[present]
        digits = [(packed // base ** (3 - t)) % base for t in range(4)]
        stable = np.full(len(present), -1, dtype=np.int64)
        for t in range(4):
            stable[digits[t] == repeats] = t
        first = np.empty(len(item_rows), dtype=np.int64)
        first[item[::-1]] = np.arange(len(item) - 1, -1, -1)
        return cls(first[present], stable, digits[2] * base + repeats, digits[1] * base + repeats, base)


def _slots(values: np.ndarray, *, zero_based: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a small-range column (repeats, n_choices) and the value of each slot.

    Values are used as their own codes when the range is small (zero_based:
    slot v is value v, so k needs no lookup); empty slots just count zero.
    """
    low, high = int(values.min()), int(values.max())
    if zero_based and low >= 0 and high < 4096:
        return values, np.arange(high + 1)
    if not zero_based and high - low < 4096:
        return (values - low if low else values), np.arange(low, high + 1)
    return record_codes.small_codes(values)


def _summarize(frame: pd.DataFrame, rows: _RowCodes, by: list[str], n_bootstrap: int, seed: int) -> pd.DataFrame:
    group, labels = _groups(frame, by)
    n_groups = len(labels)
    cells = _Cells.of(rows, group, n_groups, _group_tasks(rows, labels) if "task" in by else None)
    raw_counts = cells.counts(None)  # (F, R, 4): per (group, task, k) subgroup present
    counts, present = raw_counts, np.ones((n_groups, 1), dtype=bool)
    if rows.n_reps > 1:
        counts, present = _spread_once(raw_counts, rows.sub_once[cells.sub], cells.group, n_groups)

    per_repeat = _figures(counts, rows.sub_k[cells.sub], cells.group, n_groups)
    out = {}
    for name in RATE_FIGURES + COUNT_COLUMNS:
        out[name], out[f"{name}_std"] = repeat_mean_std(per_repeat[name], present)
    p_values = mcnemar_p(per_repeat["n_01"], per_repeat["n_10"])
    out["mcnemar_p"] = np.where(present, p_values, -np.inf).max(1)
    midp = mcnemar_midp(per_repeat["n_01"], per_repeat["n_10"])  # also the largest over repeats
    out["mcnemar_midp"] = np.where(present, midp, -np.inf).max(1)
    out["n_repeats"] = present.sum(1)
    items = _item_patterns(rows, group, n_groups, _group_sum(raw_counts, cells.group, n_groups))
    out["n"] = items["n"]
    for column, values in zip(ALL_REPEATS_COLUMNS, items["all_repeats"].T):
        out[column] = values
    out.update(_bootstrap(items["types"], group_names(labels), n_bootstrap, seed))

    columns = list(SUMMARY_COLUMNS)
    if "unstable" in frame.columns:  # flips a numeric-noise-sized margin could cause (analysis.stability)
        counts_u = cells.counts(frame["unstable"].to_numpy(dtype=bool))
        if rows.n_reps > 1:  # single-repeat tasks count in every repeat, exactly as for n_10
            counts_u = _with_once(counts_u, rows.sub_once[cells.sub], present[cells.group])
        counts_u = _group_sum(counts_u, cells.group, n_groups)
        for name, transition in zip(UNSTABLE_COLUMNS, (2, 1)):  # 2 = 1→0, 1 = 0→1
            out[name], _ = repeat_mean_std(counts_u[..., transition], present)
        columns += UNSTABLE_COLUMNS
    single = bool((out["n_repeats"] == 1).all())
    for name in COUNT_COLUMNS + [c for c in UNSTABLE_COLUMNS if c in out]:  # whole unless averaged over repeats
        out[name] = np.rint(out[name]).astype(np.int64) if single else out[name]
    table = pd.DataFrame({name: out[name] for name in columns})
    return pd.concat([labels, table], axis=1)


@dataclass
class _Cells:
    """The rows of one grouping, coded by (group, task, k) subgroup, repeat and transition.

    Only the subgroups present are kept (F of them): a table by task of many
    tasks never holds tasks × tasks × k cells per repeat.
    """

    flat: np.ndarray  # per row: (subgroup · R + repeat slot) · 4 + transition
    kept: np.ndarray | None  # subgroups of `flat` present (None: all of them)
    group: np.ndarray  # per subgroup present: its group
    sub: np.ndarray  # per subgroup present: its (task, k) subgroup in _RowCodes
    n_reps: int
    all_rows: np.ndarray | None = None  # counts(None), once computed

    @classmethod
    def of(cls, rows: _RowCodes, group: np.ndarray | None, n_groups: int,
           group_task: np.ndarray | None = None) -> "_Cells":
        """group_task: each group's task code, when every group is of one task (e.g. by task)."""
        n_sub, per_sub = len(rows.sub_k), rows.n_reps * 4
        if group is None:  # one group: it has every subgroup
            return cls(rows.cell, None, np.zeros(n_sub, dtype=np.int64), np.arange(n_sub), rows.n_reps)
        if n_groups * n_sub * per_sub <= max(DENSE_CELLS, len(rows.cell)):  # count densely, drop empty subgroups
            flat = group * (n_sub * per_sub) + rows.cell
            tally = np.bincount(flat, minlength=n_groups * n_sub * per_sub).reshape(-1, rows.n_reps, 4)
            kept = np.flatnonzero(tally.any((1, 2)))
            return cls(flat, kept, kept // n_sub, kept % n_sub, rows.n_reps, tally[kept])
        if group_task is not None and rows.n_k is not None:  # many tasks: a group's subgroups are its k slots
            width = rows.n_k * per_sub  # cell = task · width + (k slot · R + repeat) · 4 + transition
            if n_groups * width <= max(DENSE_CELLS, len(rows.cell)):
                flat = group * width + rows.cell % width
                tally = np.bincount(flat, minlength=n_groups * width).reshape(-1, rows.n_reps, 4)
                kept = np.flatnonzero(tally.any((1, 2)))
                group_of, k_slot = np.divmod(kept, rows.n_k)
                return cls(flat, kept, group_of, group_task[group_of] * rows.n_k + k_slot, rows.n_reps, tally[kept])
        fine, keys = _present(group * n_sub + rows.cell // per_sub, n_groups * n_sub)  # int64
        return cls(fine * per_sub + rows.cell % per_sub, None, keys // n_sub, keys % n_sub, rows.n_reps)

    def counts(self, mask: np.ndarray | None) -> np.ndarray:
        """(F, R, 4) counts of the rows (those of `mask` only, if given), per subgroup present."""
        if mask is None and self.all_rows is not None:
            return self.all_rows
        flat = self.flat if mask is None else self.flat[mask]
        n_cells = self.n_reps * 4
        n_fine = len(self.group) if self.kept is None else int(self.kept[-1]) + 1 if len(self.kept) else 0
        counts = np.bincount(flat, minlength=n_fine * n_cells)[: n_fine * n_cells].reshape(n_fine, self.n_reps, 4)
        return counts if self.kept is None else counts[self.kept]


def _group_tasks(rows: _RowCodes, labels: pd.DataFrame) -> np.ndarray | None:
    """Each group's task code (the grouping includes task), or None where labels do not say it."""
    if rows.task_code is None:
        return None
    codes = [rows.task_code.get(name, -1) for name in labels["task"]]
    return None if -1 in codes else np.asarray(codes, dtype=np.int64)


def _group_sum(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the subgroups (axis 0) of each group (`group`: nondecreasing, every group present)."""
    if len(group) == n_groups:
        return values
    return np.add.reduceat(values, np.searchsorted(group, np.arange(n_groups)), axis=0)


def _groups(frame: pd.DataFrame, by: list[str]) -> tuple[np.ndarray | None, pd.DataFrame]:
    """Group code per row (None: one group) and one label row per group (sorted by label)."""
    if not by:
        return None, pd.DataFrame(index=range(1))
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise KeyError(f"cannot group by {missing}: the paired items have columns {list(frame.columns)}")
    flat, sizes, names = None, [], []
    for column in by:
        codes, uniques = record_codes.factorize(frame[column])
        codes = codes.astype(np.int64, copy=False)
        uniques = [str(u) for u in uniques]
        if (codes < 0).any():  # missing values form a group labelled ""
            codes, uniques = codes + 1, [""] + uniques
        flat = codes if flat is None else flat * len(uniques) + codes
        sizes.append(len(uniques))
        names.append(uniques)
    span = math.prod(sizes)
    if span <= 1 << 24:
        seen = np.bincount(flat, minlength=span) > 0
        keys = np.flatnonzero(seen)
        group = flat if len(keys) == span else (np.cumsum(seen) - 1)[flat]
    else:
        keys, group = np.unique(flat, return_inverse=True)
    positions = np.unravel_index(keys, sizes)
    labels = pd.DataFrame({c: [u[i] for i in pos] for c, u, pos in zip(by, names, positions)})
    return group.astype(np.int64, copy=False), labels


def _bootstrap(types, names: list[str], n_bootstrap: int, seed: int) -> dict[str, np.ndarray]:
    """CI columns. Each group draws from its own generator (seeded by `seed` and
    its label), so a task's interval is the same whatever else is compared."""
    n_bootstrap = max(int(n_bootstrap or 0), 0)
    forgetting = np.empty((len(names), n_bootstrap))
    learning = np.empty((len(names), n_bootstrap))
    for g, name in enumerate(names):
        rng, spec = group_rng(seed, name), types(g)
        if len(spec) == 3:  # one row per item: the four counts, drawn jointly
            forgetting[g], learning[g] = bootstrap_draws(*spec, n_bootstrap=n_bootstrap, rng=rng)
        else:  # repeats: each figure from its own item types
            forgetting[g] = bootstrap_means(spec[0], spec[1], n_bootstrap=n_bootstrap, rng=rng)
            learning[g] = bootstrap_means(spec[2], spec[3], n_bootstrap=n_bootstrap, rng=rng)
    f_low, f_high = percentile_interval(forgetting)
    b_low, b_high = percentile_interval(learning)
    return dict(zip(CI_COLUMNS, (f_low, f_high, b_low, b_high)))


def _spread_once(counts: np.ndarray, once: np.ndarray, group: np.ndarray,
                 n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Count the subgroups of single-repeat tasks (`once`) in every repeat their group has.

    counts (F, R, 4) per subgroup. A group made only of such tasks keeps one
    repeat slot. Returns the counts and which repeats each group has (G, R).
    """
    main = _group_sum(np.where(once[:, None, None], 0, counts), group, n_groups).sum(2)
    first_slot = np.zeros_like(main, dtype=bool)
    first_slot[:, 0] = True
    present = np.where((main.sum(1) > 0)[:, None], main > 0, first_slot)
    return _with_once(counts, once, present[group]), present


def _with_once(counts: np.ndarray, once: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per subgroup (F, R, 4): a single-repeat task's counts (`once`) in every present repeat (F, R)."""
    spread = counts.sum(1, keepdims=True) * present[:, :, None]
    return np.where(once[:, None, None], spread, counts)


def _figures(counts: np.ndarray, n_choices: np.ndarray, group: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """All figures per (group, repeat) from the counts (F, R, 4) of the groups' subgroups."""
    totals = _group_sum(counts, group, n_groups).astype(np.float64)
    n = totals.sum(-1)
    safe = np.where(n > 0, n, 1.0)
    n_00, n_01, n_10, n_11 = np.moveaxis(totals, -1, 0)
    figures = {
        "n_00": n_00, "n_01": n_01, "n_10": n_10, "n_11": n_11,
        "acc_before": (n_10 + n_11) / safe,
        "acc_after": (n_01 + n_11) / safe,
        "forgetting": n_10 / safe,
        "backward_transfer": n_01 / safe,
    }
    figures.update(subgroup_chance_terms(counts, n_choices, group, n_groups))
    # Clipped once per group, after the per-subgroup chance terms are summed.
    figures["forgetting_true"] = np.maximum(figures["forgetting"] - figures["forgetting_chance"], 0.0)
    figures["backward_transfer_true"] = np.maximum(
        figures["backward_transfer"] - figures["forgetting_chance"], 0.0
    )
    return figures


_ONE_ROW_TYPES = (np.array([0.0, 0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0, 0.0]))


def _item_patterns(rows: _RowCodes, group: np.ndarray | None, n_groups: int, counts: np.ndarray) -> dict:
    """Per group (`counts`: (G, R, 4) per group and repeat slot): distinct items, items with one transition in every repeat, and
    bootstrap types (item counts per share of repeats 1→0, and per share 0→1)."""
    items = rows.items
    if items is None:  # one row per item: the types are the four transitions
        per_group = counts.sum(1)
        return {
            "n": per_group.sum(1),
            "all_repeats": per_group,
            "types": lambda g: (per_group[g], *_ONE_ROW_TYPES),
        }
    item_group = np.zeros(len(items.first_row), dtype=np.int64) if group is None else group[items.first_row]
    stable = items.stable >= 0
    all_repeats = np.bincount(
        item_group[stable] * 4 + items.stable[stable], minlength=n_groups * 4
    ).reshape(n_groups, 4)
    # Bootstrap types: items with the same share of repeats 1→0 resample alike (0→1 likewise).
    forgotten = _types_per_group(item_group, items.forgotten_key, items.base, n_groups)
    learned = _types_per_group(item_group, items.learned_key, items.base, n_groups)

    def types(g: int):
        return (*forgotten(g), *learned(g))

    return {"n": np.bincount(item_group, minlength=n_groups), "all_repeats": all_repeats, "types": types}


def _types_per_group(item_group: np.ndarray, key: np.ndarray, base: int, n_groups: int):
    """For each group: counts of its item types and each type's share (key = hits · base + repeats)."""
    size = base * base
    flat = item_group * size + key
    if n_groups * size <= 1 << 24:
        tally = np.bincount(flat, minlength=n_groups * size)
        keys = np.flatnonzero(tally)
        counts = tally[keys]
    else:
        keys, counts = np.unique(flat, return_counts=True)
    type_group, hits, repeats = keys // size, (keys % size) // base, keys % base
    shares = hits / repeats
    bounds = np.searchsorted(type_group, np.arange(n_groups + 1))
    return lambda g: (counts[bounds[g]: bounds[g + 1]], shares[bounds[g]: bounds[g + 1]])


def _item_codes(frame: pd.DataFrame) -> np.ndarray:
    if "item" in frame.columns:
        item = frame["item"].to_numpy(dtype=np.int64)
        if len(item) == 0 or (item.min() >= 0 and item.max() < 4 * len(item) + 1024):
            return item  # gaps are fine: bincounts simply hold zeros there
        return record_codes.dense_codes(item)[0]
    return frame.groupby(["task", "item_id"], observed=True, sort=False).ngroup().to_numpy(dtype=np.int64)


def transition_items(
    paired: PairedItems | pd.DataFrame,
    kind: str = "1to0",
    task: str | None = None,
    *,
    min_repeats: int | None = None,
) -> pd.DataFrame:
    """The items with transition `kind` ("1to0" forgotten, "0to1" learned, "0to0", "1to1").

    With repeats, an item is listed when it made that transition in every one
    of its repeats (or in at least `min_repeats`); `repeats_with_transition`
    says in how many of its `n_repeats` it did.
    """
    code = KINDS.get(kind.replace("->", "to").replace("→", "to"))
    if code is None:
        raise ValueError(f"unknown transition {kind!r}; choose one of {', '.join(KINDS)}")
    everything = paired.frame if isinstance(paired, PairedItems) else paired
    frame = everything
    if task is not None:
        frame = everything[(everything["task"] == task).to_numpy()]
        if len(frame) == 0:
            tasks = ", ".join(repr(t) for t in sorted(map(str, pd.unique(everything["task"]))))
            raise ValueError(f"task {task!r} is not among the compared tasks ({tasks})")
    columns = ["task", "category", "item_id", "n_choices", "n_repeats", "repeats_with_transition"]
    if len(frame) == 0:
        return pd.DataFrame(columns=columns)
    item = _item_codes(frame)
    hit = (frame["before"].to_numpy(dtype=bool).astype(np.int64) * 2 + frame["after"].to_numpy(dtype=bool)) == code
    rows = np.bincount(item)
    hits = np.bincount(item[hit], minlength=len(rows))
    needed = rows if min_repeats is None else np.minimum(rows, max(int(min_repeats), 1))
    chosen = (hits >= needed) & (hits > 0)
    first = np.full(len(rows), -1, dtype=np.int64)
    first[item[::-1]] = np.arange(len(item) - 1, -1, -1)
    picked = np.sort(first[chosen])
    out = frame.iloc[picked][["task", "category", "item_id", "n_choices"]].reset_index(drop=True)
    out["task"] = out["task"].astype(str)
    out["category"] = out["category"].astype(str)
    out["n_repeats"] = rows[item[picked]]
    out["repeats_with_transition"] = hits[item[picked]]
    return out


@dataclass
class Comparison:
    """Everything `compare` reports about two checkpoints."""

    metric: str
    tasks: pd.DataFrame
    """One row per task."""
    categories: pd.DataFrame
    """One row per (task, category), for tasks whose items have categories."""
    overall: pd.DataFrame
    """One row: all paired items together."""
    paired: PairedItems
    #: margin below which a flip counts as unstable (None: not looked at); see analysis.stability
    flip_tolerance: float | None = None

    @property
    def dropped(self) -> pd.DataFrame:
        """Per task, the items left out by identical_only (empty if none)."""
        return self.paired.dropped

    @property
    def notes(self) -> list[str]:
        return self.paired.notes

    def to_json_dict(self) -> dict:
        """JSON-safe dict: metric, tasks, categories (task → category → figures), overall."""
        categories: dict[str, dict] = {}
        for row in self.categories.to_dict("records"):
            categories.setdefault(str(row["task"]), {})[str(row["category"])] = _entry(row)
        return {
            "metric": self.metric,
            **({"flip_tolerance": self.flip_tolerance} if self.flip_tolerance is not None else {}),
            "tasks": {str(row["task"]): _entry(row) for row in self.tasks.to_dict("records")},
            "categories": categories,
            "overall": _entry(self.overall.to_dict("records")[0]) if len(self.overall) else {},
            "dropped": {
                str(row["task"]): {k: int(v) for k, v in row.items() if k != "task"}
                for row in self.dropped.to_dict("records")
            },
            "notes": list(self.notes),
        }


def _entry(row: dict) -> dict:
    return {name: _json_value(row[name]) for name in SUMMARY_COLUMNS + UNSTABLE_COLUMNS + ITEM_FIGURE_COLUMNS
            if name in row}


def _json_value(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def compare_records(
    before: pd.DataFrame,
    after: pd.DataFrame,
    *,
    metric: str = "acc",
    identical_only: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    flip_tolerance: float | None = DEFAULT_FLIP_TOLERANCE,
) -> Comparison:
    """Pair two checkpoints' records and summarise transitions per task, category and overall.

    flip_tolerance (nats; None or 0: off): when both records hold
    `loglikelihoods`, also count the 1→0 and 0→1 flips whose decision margin
    is below it on either side (n_10_unstable, n_01_unstable; paired.frame
    gets a bool column `unstable`). The headline figures are unchanged.
    See analysis.stability (DEFAULT_FLIP_TOLERANCE).

    Every row also gets mcnemar_midp and the figures of analysis.item_figures
    (accuracy change and its interval, mde, and, when both records hold
    per-choice log-likelihoods and gold, the KL/JS/margin distances and the
    forgetting-risk AUROC/AP).
    """
    paired = pair_records(before, after, metric=metric, identical_only=identical_only)
    frame = paired.frame
    tolerance = mark_unstable(paired, before, after, float(flip_tolerance), metric) if flip_tolerance else None
    rows = _RowCodes.of(frame)  # encoded once, grouped three ways
    scores = per_row_scores(paired, before, after, metric)  # None without per-choice log-likelihoods
    tables = {}
    for name, by in (("tasks", ["task"]), ("categories", ["task", "category"]), ("overall", [])):
        table = _summarize(frame, rows, by, n_bootstrap, seed)
        if name == "categories":
            table = table[table["category"] != ""].reset_index(drop=True)
        tables[name] = item_figures(table, by, paired, scores, n_bootstrap=n_bootstrap, seed=seed)
    return Comparison(
        metric=metric,
        **tables,
        paired=paired,
        flip_tolerance=tolerance,
    )
