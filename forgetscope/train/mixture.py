"""The deterministic mixture sampler: which source, and which row of it, fills every batch slot.

Everything is decided before training starts, from seeds, so a resumed or a
data-parallel run sees exactly the batches an uninterrupted single-process run
sees (position = step), and the manifest's per-source token counts are exact.

Sampling is by sequence: every row has `seq_len` tokens, so the share of
sequences from a source is also its share of tokens.

Two kinds of source share a stage:

- fixed-count sources (early-exposure target data) get exactly `n` slots over
  the stage, spread evenly: step k gets floor(n(k+1)/S) − floor(nk/S);
- weighted sources fill the remaining slots by their weights at that step
  (which may change, for midtraining). Each slot goes to the source with the
  largest deficit (ideal cumulative count − actual), in integer units, so the
  count of every source stays within fewer sequences of its ideal share than
  there are sources, and is exact whenever the ideal is a whole number
  (weights 3/4 and 1/4 with batch 4 give 3 and 1 in every batch).
"""

from __future__ import annotations

import hashlib
from typing import Callable, Mapping, Sequence

import numpy as np

WEIGHT_UNITS = 1 << 20
"""Weights are rounded to multiples of 2^-20 so that deficits are exact integers."""


def quantize(weights: Mapping[str, float], units: int = WEIGHT_UNITS) -> dict[str, int]:
    """Weights (any positive scale) as integers summing to `units`, by largest remainder (ties: first key)."""
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError("mixture weights sum to 0")
    exact = {k: v / total * units for k, v in weights.items()}
    out = {k: int(np.floor(v)) for k, v in exact.items()}
    short = units - sum(out.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - out[k]), list(exact).index(k)))
    for k in by_remainder[:short]:
        out[k] += 1
    return out


def spread(total: int, steps: int) -> np.ndarray:
    """`total` items spread over `steps` as evenly as possible: step k gets floor(total(k+1)/steps) − floor(total·k/steps)."""
    k = np.arange(steps + 1, dtype=np.int64)
    cumulative = (total * k) // steps
    return np.diff(cumulative)


def allocate(
    steps: int,
    batch: int,
    names: Sequence[str],
    weights_at: Callable[[int], Mapping[str, float]],
    fixed: Mapping[str, int] | None = None,
) -> np.ndarray:
    """Source index (into `names`) of every slot: an int16 array [steps, batch].

    `fixed[name]` slots go to that source in total, spread evenly; the rest of
    each batch is shared by `weights_at(step)` (names with weight 0 or missing
    get nothing). Deterministic: no randomness at all.
    """
    fixed = {k: v for k, v in (fixed or {}).items() if v > 0}
    index = {name: i for i, name in enumerate(names)}
    slots = np.empty((steps, batch), dtype=np.int16)
    per_step = {name: spread(n, steps) for name, n in fixed.items()}
    used = sum(per_step.values()) if per_step else np.zeros(steps, dtype=np.int64)
    if np.any(used > batch):
        raise ValueError(f"fixed-count sources need {int(used.max())} slots in a batch of {batch}")
    deficit = {name: 0 for name in names if name not in fixed}
    for step in range(steps):
        col = 0
        for name, counts in per_step.items():
            n = int(counts[step])
            slots[step, col:col + n] = index[name]
            col += n
        free = batch - col
        if free == 0:
            continue
        units = quantize({k: w for k, w in weights_at(step).items() if w > 0 and k not in fixed})
        for name, u in units.items():
            deficit[name] += free * u
        for _ in range(free):
            best = max(units, key=lambda k: (deficit[k], -index[k]))
            deficit[best] -= WEIGHT_UNITS
            slots[step, col] = index[best]
            col += 1
    return slots


def seed_from(*parts: object) -> int:
    """A 64-bit seed from any parts (stable across processes and platforms, unlike `hash`)."""
    digest = hashlib.sha256(repr(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def epoch_stream(n_rows: int, count: int, seed: int) -> np.ndarray:
    """`count` row indices: back-to-back seeded permutations of range(n_rows) (every row once per epoch)."""
    if count == 0:
        return np.empty(0, dtype=np.int64)
    if n_rows <= 0:
        raise ValueError("a source with no rows cannot be sampled")
    rng = np.random.Generator(np.random.PCG64(seed))
    epochs = -(-count // n_rows)
    return np.concatenate([rng.permutation(n_rows) for _ in range(epochs)])[:count].astype(np.int64)


def assign_rows(slots: np.ndarray, streams: Mapping[int, np.ndarray]) -> np.ndarray:
    """Row index of every slot: source i's slots, in step order, take `streams[i]` in order."""
    rows = np.full(slots.shape, -1, dtype=np.int64)
    for source, stream in streams.items():
        mask = slots == source
        need = int(mask.sum())
        if len(stream) < need:
            raise ValueError(f"source {source} has {len(stream)} rows for {need} slots")
        rows[mask] = stream[:need]  # boolean assignment walks the array in step order
    return rows


def counts(slots: np.ndarray, n_sources: int, upto: int | None = None) -> np.ndarray:
    """Slots per source in the first `upto` steps (all by default)."""
    part = slots if upto is None else slots[:upto]
    return np.bincount(part.ravel().astype(np.int64), minlength=n_sources)
