"""Silence native log lines (TensorFlow converter, LiteRT INFO) that bypass Python.

They are written straight to file descriptors 1 and 2, so --json output and the
console table would be interleaved with them. EDGEOPT_DEBUG=1 keeps them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from edgeopt import switches


@contextmanager
def native_quiet() -> Iterator[None]:
    if switches.debug():
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        saved = (os.dup(1), os.dup(2))
    except OSError:  # no real descriptors (embedded interpreter): nothing to silence
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
