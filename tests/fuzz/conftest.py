"""Hypothesis keeps its files (a cache of constants it found in the code) outside the repository."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "forgetscope-hypothesis"))
