"""The mixture sampler and the schedules, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forgetscope.train.mixture import (
    WEIGHT_UNITS,
    allocate,
    assign_rows,
    counts,
    epoch_stream,
    quantize,
    spread,
)
from forgetscope.train.schedule import lr_at, midtraining_start, midtraining_weight


def test_quantize_sums_exactly_by_largest_remainder() -> None:
    assert quantize({"a": 3, "b": 1}) == {"a": 3 * WEIGHT_UNITS // 4, "b": WEIGHT_UNITS // 4}
    # thirds: 2^20 = 3·349525 + 1; the extra unit goes to the first of the (equal) largest remainders
    assert quantize({"a": 1, "b": 1, "c": 1}) == {"a": 349526, "b": 349525, "c": 349525}
    assert quantize({"a": 1, "b": 2}, units=10) == {"a": 3, "b": 7}  # 3.33 → 3, 6.67 → 7


def test_spread_is_even_and_exact() -> None:
    assert spread(5, 4).tolist() == [1, 1, 1, 2]  # floor(5k/4): 0, 1, 2, 3, 5
    assert spread(3, 6).tolist() == [0, 1, 0, 1, 0, 1]  # floor(3k/6): 0, 0, 1, 1, 2, 2, 3
    assert spread(0, 3).tolist() == [0, 0, 0]
    assert spread(1000, 7).sum() == 1000


def test_weights_that_divide_the_batch_are_exact_in_every_batch() -> None:
    slots = allocate(50, 4, ["a", "b"], lambda step: {"a": 0.75, "b": 0.25})
    per_batch = np.stack([(slots == 0).sum(1), (slots == 1).sum(1)], 1)
    assert (per_batch == [3, 1]).all()


def test_mixture_proportions_over_many_draws() -> None:
    weights = {"a": 0.5, "b": 0.3, "c": 0.2}
    names = list(weights)
    slots = allocate(1000, 7, names, lambda step: weights)
    total = counts(slots, 3)
    ideal = np.array([0.5, 0.3, 0.2]) * 7000
    assert total.sum() == 7000
    assert np.all(np.abs(total - ideal) < 3)  # the deficit rule keeps each within (−(S−1), 1)
    # and at every prefix, not only at the end
    cumulative = np.stack([np.cumsum((slots == i).sum(1)) for i in range(3)], 1)
    ideal_prefix = np.outer(np.arange(1, 1001) * 7, [0.5, 0.3, 0.2])
    assert np.abs(cumulative - ideal_prefix).max() < 3
    assert (allocate(1000, 7, names, lambda step: weights) == slots).all()  # deterministic


def test_fixed_counts_are_exact_and_spread_evenly() -> None:
    slots = allocate(10, 8, ["general", "target"], lambda step: {"general": 1.0}, fixed={"target": 25})
    per_step = (slots == 1).sum(1)
    assert per_step.sum() == 25 and per_step.tolist() == spread(25, 10).tolist()
    assert (slots == 0).sum() == 80 - 25
    with pytest.raises(ValueError, match="slots in a batch"):
        allocate(2, 4, ["g", "t"], lambda step: {"g": 1.0}, fixed={"t": 9})


def test_time_varying_weights_follow_the_step() -> None:
    # source b enters at step 5 with weight 1/2
    slots = allocate(10, 4, ["a", "b"], lambda step: {"a": 1.0, "b": 0.0} if step < 5 else {"a": 0.5, "b": 0.5})
    assert (slots[:5] == 0).all()
    assert ((slots[5:] == 1).sum(1) == 2).all()


def test_epoch_stream_uses_every_row_once_per_epoch() -> None:
    stream = epoch_stream(10, 25, seed=3)
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert len(stream) == 25 and (epoch_stream(10, 25, seed=3) == stream).all()
    assert not (epoch_stream(10, 25, seed=4) == stream).all()


def test_assign_rows_takes_each_stream_in_step_order() -> None:
    slots = np.array([[0, 1], [1, 0], [0, 0]], dtype=np.int16)
    rows = assign_rows(slots, {0: np.array([10, 11, 12, 13]), 1: np.array([20, 21])})
    assert rows.tolist() == [[10, 20], [21, 11], [12, 13]]


def test_learning_rate_schedules() -> None:
    kw = dict(steps=110, lr=1.0, warmup=10, min_lr=0.1)
    assert [lr_at(s, schedule="cosine", **kw) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    # after warmup, progress = (step − 10) / 100
    assert lr_at(10, schedule="cosine", **kw) == pytest.approx(1.0)
    assert lr_at(60, schedule="cosine", **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(35, schedule="cosine", **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr_at(110, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_at(35, schedule="linear", **kw) == pytest.approx(0.1 + 0.9 * 0.75)
    assert lr_at(109, schedule="linear", **kw) == pytest.approx(0.1 + 0.9 * 0.01)
    assert lr_at(50, schedule="constant", **kw) == 1.0
    assert lr_at(0, steps=5, lr=2.0, warmup=0, schedule="linear", min_lr=0.0) == 2.0


def test_midtraining_weight_arithmetic() -> None:
    assert midtraining_start(200, 0.6, None) == 120 and midtraining_start(200, None, 7) == 7
    step = dict(steps=200, weight=0.3, start=120, shape="step")
    assert [midtraining_weight(s, **step) for s in (0, 119, 120, 199)] == [0.0, 0.0, 0.3, 0.3]
    # linear ramp to the end: ramp = 80 steps; step s has 0.3·(s − 120 + 1)/80
    ramp = dict(steps=200, weight=0.3, start=120, shape="linear")
    assert midtraining_weight(119, **ramp) == 0.0
    assert midtraining_weight(120, **ramp) == pytest.approx(0.3 / 80)
    assert midtraining_weight(159, **ramp) == pytest.approx(0.3 * 40 / 80)
    assert midtraining_weight(199, **ramp) == pytest.approx(0.3)
    # a 10-step ramp reaches full weight at step start + 9 and stays
    assert midtraining_weight(124, **ramp, ramp_steps=10) == pytest.approx(0.15)
    assert midtraining_weight(129, **ramp, ramp_steps=10) == pytest.approx(0.3)
    assert midtraining_weight(180, **ramp, ramp_steps=10) == pytest.approx(0.3)
