"""Short labels for checkpoints on the command line: `NAME=PATH`, or a short form of the path.

`compare base=runs/a/ckpt ft=runs/b/ckpt` shows "base" and "ft" in titles and
tables instead of two absolute paths that wrap them. The label is for display:
records keep the checkpoint they were scored as (only `eval --name` names it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def split_label(arg: str) -> tuple[str | None, str]:
    """(label, checkpoint) of a command-line checkpoint: `NAME=PATH` -> (NAME, PATH), else (None, arg).

    Split only where that cannot misread a path: the whole argument is no existing path, the
    left side is a plain name (letters, digits, `_.+-`), and the right side exists or is a hub
    id (`org/name`). So `runs/lr=0.1/ckpt` stays a path, and so does `a=b` when `b` is nothing.
    """
    if "=" not in arg or Path(arg).exists():
        return None, arg
    name, _, path = arg.partition("=")
    if _NAME.fullmatch(name) and path and (Path(path).expanduser().exists() or _HUB_ID.fullmatch(path)):
        return name, path
    return None, arg


def checkpoint_labels(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(labels, checkpoints) of command-line checkpoints: each NAME=PATH's NAME, else the shortest
    unique suffix of its path (the last one or two components: `run-a/ckpt-350`)."""
    from ..records.checkpoint_order import short_names

    split = [split_label(arg) for arg in args]
    paths = [path for _, path in split]
    short = short_names([str(Path(p)) for p in paths]) if paths else []
    labels = [label or fallback for (label, _), fallback in zip(split, short)]
    return labels, paths


__all__ = ["checkpoint_labels", "split_label"]
