"""A third-party tool as a separate program: its own process group, the parent-death signal, output to a log file,
a wall-clock limit; on the limit or Ctrl-C the whole group is killed (onnx2tf, Vela)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgeopt import parent_death


def run_logged(cmd: Sequence[str], cwd: Path, env: Mapping[str, str], log_path: Path,
               timeout: float) -> tuple[int, str]:
    """(exit code, the log's text). Raises subprocess.TimeoutExpired after killing the group: the caller words it."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                env=dict(env), start_new_session=True,
                                preexec_fn=parent_death.preexec())  # noqa: PLW1509
        try:
            code = proc.wait(timeout=timeout)
        except BaseException:  # the limit, Ctrl-C, SIGTERM: the child's group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    return code, log_path.read_text("utf-8", "replace")
