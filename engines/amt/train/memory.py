"""Keep freed memory in the process heap (glibc only) so each step does not page-fault.

Every step allocates logits and their gradients of tens of MB (4 x 341 x 16,514 floats
for the note slot alone). glibc serves blocks above its mmap threshold (at most 32 MB)
with fresh mmap calls and unmaps them on free, so every step pays page faults on touch:
measured here, system time fell from 12.4 s to 4.7 s over four steps and throughput
rose ~1.5x with mmap disabled and heap trimming raised.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Tune glibc malloc for large, repeated allocations; False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        return bool(ok and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1)
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave malloc alone
        return False
