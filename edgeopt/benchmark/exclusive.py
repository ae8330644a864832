"""One timing at a time: a file lock held while latency is measured, shared by processes on this host.

`edgeopt search` runs trials in parallel; their builds and accuracy checks overlap, their timings do not.
The kernel releases an flock when its holder dies (even on SIGKILL), so a killed trial never blocks the rest.
The lock file is opened like the build lock (edgeopt.atomic.open_lock_file): a symlink, FIFO or hard link planted
under its name is refused (exit 2) and nothing is created or truncated at its target.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeopt.atomic import open_lock_file


@contextmanager
def exclusive(lock: Path | None) -> Iterator[None]:
    """Hold `lock` (created if missing) for the block; None: no lock, time at once."""
    if lock is None:
        yield
        return
    fd = open_lock_file(lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another process times
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
