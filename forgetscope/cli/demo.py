"""`forgetscope demo`: the training runner's toy sweep, end to end on CPU (forgetscope.train.demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import console
from .options import OutputOpt, SeedOpt


def demo(
    output: OutputOpt = Path("demo-results"),
    quick: Annotated[bool, typer.Option(help="Smaller and faster (for tests).")] = False,
    seed: SeedOpt = 0,
) -> None:
    """Train a tiny model on built-in synthetic data, fine-tune it, and compare the two (CPU, no download)."""
    from ..train.demo import run_demo

    run_demo(output, quick=quick, seed=seed, console=console())
