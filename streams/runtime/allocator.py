"""Free memory back to the operating system, for long-lived engines (the worker, ``replay``).

As links expire and batches come and go, the C heap is left with free chunks between live ones; glibc
returns such memory only from the heap's top unless asked. ``malloc_trim(0)`` asks: it releases the
pages of every free chunk, in milliseconds. Links that expire fast (a short window) leave the most of
them. The worker calls it once a minute and ``replay`` after each audit flush. Where the C library has
no ``malloc_trim`` (musl) nothing happens.

(Pinning glibc's mmap threshold instead was tried and dropped: barely less memory, for seconds more
system time per replay, every buffer above the threshold mapped and faulted in afresh.)
"""

from __future__ import annotations

import ctypes

MEMORY_RELEASE_SECONDS = 60.0  # the worker's interval


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; False where the C library cannot."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))
