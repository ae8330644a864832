"""The converter's child process: `python -m edgeopt.convert.child [--private-log]` (see edgeopt.convert.isolated).

Reads jobs on stdin and answers on the original stdout; native output (fd 1 and 2) goes to the log file
the parent gave as stderr. Ctrl-C kills it at once (default SIGINT): the parent reports the interrupt.
"""

from __future__ import annotations

import os
import signal
import sys

from edgeopt.parent_death import die_with_parent


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()  # a SIGKILLed build leaves no converter running
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray native prints must not corrupt the protocol
    import tensorflow  # noqa: F401 - every job needs it; imported while the parent loads its model (prewarm)

    from edgeopt.convert.isolated import serve

    return serve(sys.stdin.buffer, proto, private_log=sys.argv[1:] == ["--private-log"])


if __name__ == "__main__":
    sys.exit(main())
