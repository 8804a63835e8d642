"""`forgetscope merge A B --alpha ... --method linear|slerp --output DIR`: checkpoints along a merge path.

A thin wrapper over `forgetscope.train.merge.merge_checkpoints`; checkpoints that cannot be
merged (architecture, tokenizer, weights) are refused with one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console, fail


def merge_command(
    checkpoint_a: Annotated[Path, typer.Argument(help="A: a model directory (α = 0).")],
    checkpoint_b: Annotated[Path, typer.Argument(help="B: a model directory of the same model (α = 1).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the merged checkpoints and manifest.")],
    alpha: Annotated[str, typer.Option(help="Interpolation weights of B, comma-separated.")] = "0,0.25,0.5,0.75,1",
    method: Annotated[str, typer.Option(help="linear or slerp.")] = "linear",
) -> None:
    """Merge two checkpoints of one model at each α: (1 − α)·A + α·B (or slerp), plus a manifest for `sequence`."""
    from ..train.merge import MergeError, merge_checkpoints, parse_alphas

    try:
        result = merge_checkpoints(checkpoint_a, checkpoint_b, parse_alphas(alpha), method=method, output=output)
    except MergeError as exc:
        fail(str(exc))
    out = console()
    for path in result.checkpoints:
        out.print(f"wrote {path}")
    out.print(f"manifest: {result.manifest}  (next: forgetscope sequence {output} --task ...)")
