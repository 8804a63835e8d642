"""Chance terms and ceilings of every row are sums over its (task, k) subgroups: tasks are never pooled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgetscope.analysis import chance_terms, compare_records, pair_records, transition_summary
from forgetscope.analysis import transitions
from forgetscope.analysis.chance import chance_forgetting, max_forgetting

FIGURES = ["forgetting_chance", "forgetting_true", "backward_transfer_true", "forgetting_max",
           "backward_transfer_max"]


def one_row(frame, **where):
    for column, value in where.items():
        frame = frame[frame[column] == value]
    assert len(frame) == 1
    return frame.iloc[0]


def two_tasks(repeat=0, ids=None):
    """X: 100 items, k = 4, always right. Y: 100 items, k = 4, 25 % right before and after,
    15 flips each way (n_11 = 10, n_10 = 15, n_01 = 15, n_00 = 60)."""
    y_before = [1] * 10 + [1] * 15 + [0] * 15 + [0] * 60
    y_after = [1] * 10 + [0] * 15 + [1] * 15 + [0] * 60
    return [
        {"task": "X", "k": 4, "before": [1] * 100, "after": [1] * 100},
        {"task": "Y", "k": 4, "before": y_before, "after": y_after, "repeat": repeat,
         **({"ids": ids} if ids else {})},
    ]


def test_two_tasks_without_true_forgetting_have_none_overall(pair):
    result = compare_records(*pair(two_tasks()), n_bootstrap=0)
    x, y = one_row(result.tasks, task="X"), one_row(result.tasks, task="Y")
    assert (x.forgetting_true, x.backward_transfer_true) == (0.0, 0.0)
    # Y: F = BT = 0.15 < F_chance = (3/4)(3/4)/3 = 0.1875
    assert y.forgetting_chance == pytest.approx(0.1875)
    assert (y.forgetting_true, y.backward_transfer_true) == (0.0, 0.0)
    overall = result.overall.iloc[0]
    assert overall.forgetting == pytest.approx(15 / 200)
    # F_chance = 1/2 · 0 + 1/2 · 0.1875; pooling both tasks into one k = 4 group
    # (a_pre = a_post = 125/200) would give (3/8)(3/8)/3 = 0.046875 and F_true 0.028
    assert overall.forgetting_chance == pytest.approx(0.09375)
    assert overall.forgetting_true == 0.0
    assert overall.backward_transfer_true == 0.0
    # F_max = 1/2 · 1 + 1/2 · max((4 · 1/4 - 1)/3, 0) = 1/2 (BT_max the same)
    assert overall.forgetting_max == pytest.approx(0.5)
    assert overall.backward_transfer_max == pytest.approx(0.5)


def test_two_tasks_with_repeats_and_a_task_run_once(pair):
    # X ran once (counts in every seed); Y ran two seeds with the same counts, other items flipping
    ids = [f"y{i}" for i in range(100)]
    blocks = two_tasks(repeat=0, ids=ids)
    rotated = two_tasks(repeat=1, ids=ids[50:] + ids[:50])[1]
    result = compare_records(*pair(blocks + [rotated]), n_bootstrap=0)
    overall = result.overall.iloc[0]
    assert overall.n_repeats == 2 and overall.n == 200
    assert overall.forgetting_chance == pytest.approx(0.09375)
    assert overall.forgetting_chance_std == 0.0
    assert overall.forgetting_true == 0.0 and overall.backward_transfer_true == 0.0


def test_mixed_k_inside_tasks_and_a_category_across_tasks(pair):
    before, after = pair([
        # task A, category c: (A, 2) 11 10 01 00; (A, 4) 11 10 10 10
        {"task": "A", "k": 2, "category": "c", "before": [1, 1, 0, 0], "after": [1, 0, 1, 0]},
        {"task": "A", "k": 4, "category": "c", "before": [1, 1, 1, 1], "after": [1, 0, 0, 0]},
        # task B, category c: (B, 4) wrong before, 3 of 8 right after; category d: (B, 2) always right
        {"task": "B", "k": 4, "category": "c", "before": [0] * 8, "after": [1, 1, 1, 0, 0, 0, 0, 0]},
        {"task": "B", "k": 2, "category": "d", "before": [1] * 4, "after": [1] * 4},
    ])
    # per subgroup: (a_pre, a_post) -> F_chance, F_max, BT_max
    #   (A, 2) n=4: (1/2, 1/2) -> 1/4, 0, 0         (A, 4) n=4: (1, 1/4) -> 0, 1, 0
    #   (B, 4) n=8: (0, 3/8)   -> 5/24, 0, 1/6      (B, 2) n=4: (1, 1)   -> 0, 1, 1
    result = compare_records(before, after, n_bootstrap=0)
    c = one_row(transition_summary(result.paired, ["category"], n_bootstrap=0), category="c")
    # 16 items: F = 4/16, BT = 4/16; F_chance = (4/4 + 0 + 8 · 5/24)/16 = 1/6
    # (pooling (A, 4) with (B, 4) would give 25/144, and F_max 1/12)
    assert (c.n, c.n_10, c.n_01) == (16, 4, 4)
    assert c.forgetting_chance == pytest.approx(1 / 6)
    assert c.forgetting_true == pytest.approx(1 / 4 - 1 / 6)
    assert c.backward_transfer_true == pytest.approx(1 / 4 - 1 / 6)
    assert c.forgetting_max == pytest.approx(4 / 16)
    assert c.backward_transfer_max == pytest.approx(8 / 16 * 1 / 6)

    overall = result.overall.iloc[0]
    # 20 items: F = BT = 4/20; F_chance = (1 + 0 + 5/3 + 0)/20 = 2/15 (pooled by k: 41/360)
    assert overall.forgetting_chance == pytest.approx(2 / 15)
    assert overall.forgetting_true == pytest.approx(1 / 5 - 2 / 15)
    assert overall.backward_transfer_true == pytest.approx(1 / 5 - 2 / 15)
    assert overall.forgetting_max == pytest.approx((4 + 4) / 20)
    assert overall.backward_transfer_max == pytest.approx((8 / 6 + 4) / 20)

    a, b = one_row(result.tasks, task="A"), one_row(result.tasks, task="B")
    assert a.forgetting_chance == pytest.approx(1 / 8) and a.forgetting_true == pytest.approx(1 / 2 - 1 / 8)
    assert a.forgetting_max == pytest.approx(1 / 2) and a.backward_transfer_max == 0.0
    assert b.forgetting_chance == pytest.approx(5 / 36) and b.backward_transfer_true == pytest.approx(1 / 9)
    assert b.forgetting_max == pytest.approx(1 / 3) and b.backward_transfer_max == pytest.approx(4 / 9)


def test_chance_terms_sums_the_subgroups_given():
    # the two-task case as two subgroups of one row: (X, 4) n_11 = 100; (Y, 4) 60, 15, 15, 10
    terms = chance_terms(np.array([[[0, 0, 0, 100], [60, 15, 15, 10]]]), np.array([4, 4]))
    assert terms["forgetting_chance"] == pytest.approx([0.09375])
    assert terms["forgetting_max"] == pytest.approx([0.5])


def reference(paired: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The rule, written out with pandas: per row, (task, k) subgroups weighted by size."""
    frame = paired.assign(key=paired[by].astype(str).agg("|".join, axis=1) if by else "all")
    rows = []
    for key, group in frame.groupby("key"):
        n = len(group)
        total = {name: 0.0 for name in ("forgetting_chance", "forgetting_max", "backward_transfer_max")}
        for (_, k), sub in group.groupby(["task", "n_choices"]):
            w, a_pre, a_post = len(sub) / n, sub["before"].mean(), sub["after"].mean()
            total["forgetting_chance"] += w * float(chance_forgetting(a_pre, a_post, k))
            total["forgetting_max"] += w * float(max_forgetting(a_pre, k))
            total["backward_transfer_max"] += w * float(max_forgetting(a_post, k))
        forgetting = (group["before"] & ~group["after"]).mean()
        learning = (~group["before"] & group["after"]).mean()
        rows.append({"key": key, **total,
                     "forgetting_true": max(forgetting - total["forgetting_chance"], 0.0),
                     "backward_transfer_true": max(learning - total["forgetting_chance"], 0.0)})
    return pd.DataFrame(rows).set_index("key").sort_index()


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("compact", [True, False])
def test_random_tables_match_the_rule_written_out(pair, monkeypatch, dense, compact):
    if not dense:  # code only the subgroups present (what many tasks × categories take)
        monkeypatch.setattr(transitions, "DENSE_CELLS", 0)
    if compact:  # number the (task, k) subgroups present (what many tasks × large k take)
        monkeypatch.setattr(transitions, "SMALL_SPAN", 0)
    rng = np.random.default_rng(3)
    blocks = []
    for task in ["t0", "t1", "t2", "t3", "t4"]:
        for k in rng.choice([0, 1, 2, 3, 4, 5], size=3, replace=False):
            n = int(rng.integers(1, 40))
            skill = rng.uniform(0, 1)
            blocks.append({"task": task, "k": int(k), "category": str(rng.choice(["a", "b", "c"])),
                           "before": (rng.uniform(size=n) < skill).tolist(),
                           "after": (rng.uniform(size=n) < skill * 0.8).tolist()})
    paired = pair_records(*pair(blocks)).frame
    if not dense and not compact:  # by task: too many cells for (task, (task, k)), few enough for (task, k)
        n_k = int(paired["n_choices"].max()) + 1
        assert 5 * n_k * 4 <= len(paired) < 5 * (5 * n_k) * 4
    for by in ([], ["task"], ["category"], ["task", "category"]):
        ours = transition_summary(paired, by, n_bootstrap=0)
        ours = ours.set_index(ours[by].astype(str).agg("|".join, axis=1) if by else pd.Index(["all"])).sort_index()
        expected = reference(paired, by)
        assert list(ours.index) == list(expected.index)
        for name in FIGURES:
            np.testing.assert_allclose(ours[name].to_numpy(), expected[name].to_numpy(), rtol=1e-12, atol=1e-15,
                                       err_msg=f"{name} by {by}")
