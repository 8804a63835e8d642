"""Environment variables forgetscope reads in more than one place: on/off switches and the cache directory."""

from __future__ import annotations

import os
from pathlib import Path

_OFF = ("0", "false", "no", "off")


def switched_on(name: str) -> bool:
    """A FORGETSCOPE_* switch: on unless the variable says 0, false, no or off (any case)."""
    return os.environ.get(name, "1").strip().lower() not in _OFF


def cache_dir() -> Path:
    """forgetscope's cache directory: FORGETSCOPE_CACHE, else $XDG_CACHE_HOME/forgetscope, else ~/.cache/forgetscope."""
    root = os.environ.get("FORGETSCOPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "forgetscope"
    )
    return Path(root)
