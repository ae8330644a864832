"""edgeopt's on/off environment switches, read by one parser; any layer may use it (imports nothing of edgeopt).

    EDGEOPT_DEBUG=1     tracebacks and native log lines (`--debug` sets it)              default off
    EDGEOPT_ISOLATE=0   TFLite conversion in this process, not the converter child       default on
    EDGEOPT_PROBE=0     no child-process probe before a native runtime reads a file     default on

`0`, `false`, `no`, `off` (any case, spaces ignored) turn a switch off; unset or empty keeps its default; any
other value turns it on. (`EDGEOPT_DEBUG=no` once turned debug on: each reader had its own list of off words.)
"""

from __future__ import annotations

import os

OFF = frozenset({"0", "false", "no", "off"})


def switch(name: str, *, default: bool) -> bool:
    """The environment switch `name`: on or off by the rule above."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw not in OFF


def debug() -> bool:
    """EDGEOPT_DEBUG: show tracebacks and keep native log lines."""
    return switch("EDGEOPT_DEBUG", default=False)
