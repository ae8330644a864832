"""Resident memory of this process: current (from /proc) and peak (getrusage)."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def current_rss_mb() -> float | None:
    """Resident set size now, in MiB (Linux /proc); None where /proc is missing."""
    try:
        with Path("/proc/self/statm").open("rb") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MiB."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def rss_now_mb() -> float | None:
    """Current RSS where it can be read, else the peak (the best upper bound)."""
    cur = current_rss_mb()
    return cur if cur is not None else peak_rss_mb()
