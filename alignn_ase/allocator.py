"""glibc's allocator told to keep freed memory, so autograd's large buffers stop costing page faults.

Each forward/backward pass allocates and frees buffers of megabytes (one row per
bond or bond pair). With glibc's defaults a freed buffer of that size is handed
back to the kernel (``munmap`` above the mmap threshold, heap trimming above the
trim threshold) and the next pass faults every page of it in again. On this
project's 2-core machine a force-field training step took 0.86x the wall time and
0.94x the CPU time with both thresholds raised, for 1.07x the peak memory
(``benchmarks/train_step.py``; ``benchmarks/NOTES.md``, item 28). The cost: the
process keeps its peak heap until it exits instead of returning freed memory to
the system.

The ``alignn-ase`` command calls :func:`tune_malloc` at start; a Python program
that trains or runs long simulations may call it once, first thing. It changes the
whole process, so the library never calls it on import.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # mallopt parameters, <malloc.h>
_M_MMAP_THRESHOLD = -3
#: bytes; the largest value mallopt's ``int`` argument takes, rounded to a power of two
_THRESHOLD = 1 << 30
#: set by the user: their allocator settings win
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process.

    Does nothing (returns False) outside glibc, or when the environment already
    sets ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``GLIBC_TUNABLES``
    (so setting one of them in the environment, e.g. ``MALLOC_TRIM_THRESHOLD_=131072``,
    leaves the allocator to glibc and that setting). Returns True when both thresholds were set.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        logger.debug("allocator left as the environment sets it")
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
    logger.debug("glibc mmap/trim thresholds raised to %d bytes: %s", _THRESHOLD, done)
    return done
