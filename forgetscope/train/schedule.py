"""Schedules as functions of the optimizer step: learning rate and midtraining weight.

Pure arithmetic (no torch), so it is tested against hand-computed tables and a
resumed run recomputes exactly the values an uninterrupted one used.
"""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["cosine", "linear", "constant"]


def lr_at(step: int, *, steps: int, lr: float, warmup: int, schedule: Schedule, min_lr: float) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warmup to `lr`, then decay to `min_lr`.

    Warmup step s uses lr·(s+1)/warmup, so the first step already moves; the
    decay reaches `min_lr` at step `steps` (one past the last).
    """
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    if schedule == "linear":
        return min_lr + (lr - min_lr) * (1.0 - progress)
    if schedule == "cosine":
        return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}: use 'cosine', 'linear' or 'constant'")


def midtraining_start(steps: int, start: float | None, start_step: int | None) -> int:
    """The step at which midtraining data enters: `start_step`, or round(start × steps)."""
    if start_step is not None:
        return start_step
    return int(round((start or 0.0) * steps))


def midtraining_weight(step: int, *, steps: int, weight: float, start: int, shape: str,
                       ramp_steps: int | None = None) -> float:
    """Mixture weight of the midtraining source at `step`.

    0 before `start`. `step` shape: `weight` from `start` on. `linear` shape:
    rises linearly from 0 at `start` to `weight` at `start + ramp_steps`
    (default: the stage's last step) and stays there; the value at step s is
    weight · (s − start + 1) / ramp, so the first step of the ramp already has
    a little and step start + ramp − 1 has it all.
    """
    if step < start:
        return 0.0
    if shape == "step":
        return weight
    if shape == "linear":
        ramp = ramp_steps if ramp_steps is not None else max(1, steps - start)
        return weight * min(1.0, (step - start + 1) / ramp)
    raise ValueError(f"unknown midtraining shape {shape!r}: use 'step' or 'linear'")
