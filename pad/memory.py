"""Keep freed memory in the process for reuse (glibc's allocator; a no-op elsewhere).

A training step's and a ranking chunk's score matrices ((positions or users) × items floats) are tens of
MB. glibc serves every block above its mmap threshold (at most 32 MB) with a fresh `mmap` and unmaps it on
`free`, so each step faults in and zeroes those pages again: on Prime Pantry that kernel time was about a
third of an align step's CPU time and 40% of the evaluate stage's. With mmap off (`M_MMAP_MAX` 0) and the
heap never trimmed below 2 GiB of free top (`M_TRIM_THRESHOLD`), freed blocks stay in the heap and the
next step reuses them. The arithmetic is unchanged (same results to the bit); the price is that the
process keeps its peak heap (about +0.5 GB RSS in the evaluate stage on Prime Pantry).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4


def reuse_freed_memory() -> bool:
    """Tune glibc malloc as above for the rest of the process; True when applied, False without glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
