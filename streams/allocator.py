"""The process's C allocator, set for a long-lived engine (the worker, ``replay``, the benchmarks).

The kernel's large arrays (account and entity slots, scratch, hash tables) grow by reallocation.
glibc serves a block above its mmap threshold with ``mmap`` and returns it on ``free``, but it also
*raises* that threshold to the size of every such block freed (up to 32 MiB): from then on the grown
arrays come from the main heap, and each growth leaves the old copy there as a hole the heap cannot
give back. Pinning the threshold (which turns the raising off) keeps large blocks in ``mmap``: on the
3-day benchmark stream this is ~11 bytes less resident memory per live link (~7 %) at no measurable
cost in speed (tests/benchmarks/RESULTS.md). Where the C library has no ``mallopt`` (musl) nothing
changes.
"""

from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own initial threshold, kept fixed


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; False where the C library has no mallopt."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
