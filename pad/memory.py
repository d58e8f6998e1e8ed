"""Keep freed memory in the process for reuse (glibc's allocator; a no-op elsewhere).

A training step's and a ranking chunk's score matrices ((positions or users) × items floats) are tens of
MB. glibc serves every block above its mmap threshold (at most 32 MB) with a fresh `mmap` and unmaps it on
`free`, so each step faults in and zeroes those pages again: on Prime Pantry that kernel time was about a
third of an align step's CPU time and 40% of the evaluate stage's. With mmap off (`M_MMAP_MAX` 0) and the
heap never trimmed below 2 GiB of free top (`M_TRIM_THRESHOLD`), freed blocks stay in the heap and the
next step reuses them. The arithmetic is unchanged (same results to the bit); the price is that the
process keeps its peak heap (about +0.5 GB RSS in the evaluate stage on Prime Pantry).

That price grows with the catalogue: blocks of varying size (positions × items) fragment a heap that is
never given back, and at 26,449 items (1/16 of Electronics) a pretrain stage peaked at 6.64 GiB with it
against 1.78 GiB without (two epochs, same losses; benchmarks/scale.md). So it applies only up to
`KEEP_HEAP_MAX_ITEMS` items: Prime Pantry (8,347) keeps its speed-up, a large catalogue keeps its memory.
Ranking is the exception: its big blocks are chunks of one fixed size (at most `EVAL_CHUNK_SCORES` scores,
pad/evaluation/ranking.py) that leave nothing behind between chunks, which a kept heap reuses, while the faults
cost it most (at 105,798 items, 1/4 of Electronics, without it 45% of the evaluate stage's CPU time was kernel
time and the stage took twice as long). `kept_heap()` keeps freed memory for one ranking call (or one gate fit,
batches of one size) at any catalogue size, in every stage, and gives it back after (large blocks mmapped again,
the heap trimmed), so the rest of a training stage's heap is what it would have been without it. A
process-wide kept heap for the evaluate stage (stop 24) crept from 5.5 to 7.9 GiB at 1/4;
scoped per ranking call the stage peaked at 4.68 GiB and the training stages lost 90% of their page faults
(benchmarks/scale.md, stop 25).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
from contextlib import contextmanager
from typing import Any, Iterator

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_MAX = -4
M_MMAP_THRESHOLD = -3
MMAP_DEFAULTS = {M_MMAP_MAX: 65_536, M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20}  # see kept_heap
KEEP_HEAP_MAX_ITEMS = 16_384  # catalogues up to this size keep freed memory (Prime Pantry 8,347: yes; 1/16: no)


_kept_for_good = False  # reuse_freed_memory applied: the rest of the process keeps its heap
_kept_inside = False  # inside an outermost kept_heap block


def _libc() -> Any:
    """glibc through ctypes (mallopt and malloc_trim typed), or None off Linux or without glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return None
    return libc


def _keep(libc: Any) -> bool:
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def reuse_freed_memory(n_items: int) -> bool:
    """Tune glibc malloc as above for the rest of the process when the catalogue has at most
    `KEEP_HEAP_MAX_ITEMS` items; True when applied, False for a larger catalogue or without glibc."""
    global _kept_for_good
    libc = _libc()
    if n_items > KEEP_HEAP_MAX_ITEMS or libc is None:
        return False
    _kept_for_good = _keep(libc)
    return _kept_for_good


@contextmanager
def kept_heap() -> Iterator[bool]:
    """Keep freed memory inside the block (yields True when that applies), then give it back: large blocks
    are mmapped again from 32 MB (glibc's own ceiling for its dynamic threshold, which any mallopt call
    fixes, so it is set explicitly, with the matching 64 MB trim threshold) and the heap is trimmed
    (`malloc_trim`: free pages return to the system). A no-op where `reuse_freed_memory` already applies
    for the whole process, inside another `kept_heap` block (the outermost one gives it back), or without
    glibc."""
    global _kept_inside
    libc = None if _kept_for_good or _kept_inside else _libc()
    if libc is None:  # kept already (for good, or by an enclosing block, which gives it back), or no glibc
        yield _kept_for_good or _kept_inside
        return
    _kept_inside = _keep(libc)
    try:
        yield _kept_inside
    finally:
        _kept_inside = False
        for option, value in MMAP_DEFAULTS.items():
            libc.mallopt(option, value)
        libc.malloc_trim(0)
