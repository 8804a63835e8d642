"""`--batch-size auto`: the largest batch that fits, found once per model by halving on out-of-memory.

Scores do not depend on the batch size (right padding, see hf.py), so a batch
that runs out of GPU memory can simply be retried at half the size: the search
starts at AUTO_BATCH_START sequences, and the size that first fits is kept for
the rest of the model's work. Work is sorted longest first, so the first batch
is (about) the hungriest. On CPU there is no memory wall to find and larger
batches stop paying off early: AUTO_BATCH_CPU is used.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

Work = TypeVar("Work")

#: where the search starts on a GPU (sequences per forward pass)
AUTO_BATCH_START = 256
#: the batch size `auto` means on CPU
AUTO_BATCH_CPU = 16


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's CUDA (or other accelerator) out-of-memory errors."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_accelerator_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class BatchSizer:
    """Runs work in batches; with `auto`, halves the batch size on out-of-memory and keeps the size that fits."""

    def __init__(self, batch_size: int, *, auto: bool = False) -> None:
        self.size = max(1, int(batch_size))
        self.auto = auto

    def run(self, work: Sequence[Work], score: Callable[[Sequence[Work]], None]) -> None:
        """score(batch) for consecutive batches of `work`; each item is scored exactly once."""
        start = 0
        while start < len(work):
            batch = work[start:start + self.size]
            try:
                score(batch)
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is out-of-memory under `auto`
                if not self.auto or self.size == 1 or not is_out_of_memory(exc):
                    raise
                free_accelerator_memory()
                self.size = max(1, min(self.size, len(batch)) // 2)
                continue
            start += len(batch)
