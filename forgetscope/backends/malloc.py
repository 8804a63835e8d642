"""glibc malloc settings for CPU forward passes.

Every layer of a forward pass allocates activation tensors of a few MB and
frees them a moment later. With glibc's defaults much of that memory goes back
to the operating system (unmapped, or trimmed off the top of the heap) and the
next layer faults it in again, page by page: scoring 500 items with an 8M model
took 1.4 million minor page faults and a third of its time in them. Keeping
freed memory in the heap (a high mmap and trim threshold, and a pad when the
heap grows) brings that to ~0.1 million and changes no number: only where the
memory comes from.

The settings are applied once per process, only on Linux with glibc, and not
when the user chose their own (any MALLOC_*_ variable set) or turned them off
with FORGETSCOPE_MALLOC_TUNING=0.
"""

from __future__ import annotations

import ctypes
import os
import platform

from ..env import switched_on

# mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = {
    _M_MMAP_THRESHOLD: 64 << 20,   # blocks up to 64 MB come from the heap, not from mmap
    _M_TRIM_THRESHOLD: 256 << 20,  # keep up to 256 MB of free memory at the top of the heap
    _M_TOP_PAD: 64 << 20,          # grow the heap 64 MB at a time
}
_USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_CONF",
                   "GLIBC_TUNABLES")
_applied = False


def tune_malloc() -> bool:
    """Apply SETTINGS with mallopt; True if they are in effect (now or from an earlier call)."""
    global _applied
    if _applied:
        return True
    if not switched_on("FORGETSCOPE_MALLOC_TUNING"):
        return False
    if any(name in os.environ for name in _USER_VARIABLES):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    return _applied
