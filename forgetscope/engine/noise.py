"""The noise floor: one checkpoint evaluated under two settings, and how often its decisions flip.

Nothing about the model changes between the two evaluations, only one
setting (backend, dtype, batch size, device, ...), so every flip is numeric
noise (analysis.stability.noise_summary); `forgetscope noise` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..analysis.stability import noise_summary
from .evaluate import Checkpoint, EvalSettings, ProgressFn, evaluate

if TYPE_CHECKING:
    import pandas as pd


def noise_floor(
    checkpoint: Checkpoint | str,
    tasks: Sequence,
    settings_a: EvalSettings,
    settings_b: EvalSettings,
    output_dir: Path | str = "forgetscope-results/noise",
    *,
    metric: str = "acc",
    progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """Evaluate one checkpoint under two settings and summarise their differences (stability.noise_summary).

    Each side gets its own results directory (`output_dir`/a and /b): settings
    that do not enter the cache key (batch size, device) would otherwise just
    read the first side's rows back.
    """
    ckpt = Checkpoint(checkpoint) if isinstance(checkpoint, str) else checkpoint
    sides = [evaluate(Checkpoint(ckpt.model, ckpt.name, ckpt.gguf_file, ckpt.revision), tasks,
                      Path(output_dir) / side, settings, progress=progress)
             for side, settings in (("a", settings_a), ("b", settings_b))]
    side_a, side_b = sides
    return noise_summary(side_a, side_b, metric=metric)
