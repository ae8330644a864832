"""Child processes die with edgeopt: Linux's PR_SET_PDEATHSIG, so a SIGKILLed run leaves no converter or compiler
running. Any layer may use it.

`die_with_parent()` is called in the child: first thing in a Python child's main (edgeopt.convert.child), or
as the `preexec_fn` of a third-party tool (`preexec()` resolves prctl in the parent, so the forked child makes
one libc call). The signal comes when the parent *thread* that started the child ends, so start children from a
thread that waits for them (subprocess.run). Elsewhere (not Linux) these do nothing.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

PR_SET_PDEATHSIG = 1


@cache
def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def preexec() -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess that makes the child die with us; None where there is no prctl."""
    return die_with_parent if _prctl() is not None else None
