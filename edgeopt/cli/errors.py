"""The one place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from edgeopt import switches
from edgeopt.errors import EdgeoptError

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what shells report for a terminated process


class Terminated(BaseException):
    """Raised by the SIGTERM handler (edgeopt.cli.app.main) so cleanup runs as for Ctrl-C."""


# The signal the CLI's handlers saw, if any. Native code (TensorFlow's pybind11 layer) can
# swallow the KeyboardInterrupt/Terminated raised in its frames and re-raise something else
# (e.g. "RuntimeError: MISMATCH of original and normalized active exception types"); the
# error handler consults this so Ctrl-C still exits 130 and SIGTERM 143.
signal_seen: int | None = None


def _signalled() -> tuple[str, int] | None:
    """The line and exit code for a signal the handlers saw, whatever exception native code made of it."""
    import signal

    if signal_seen == signal.SIGINT:
        return "interrupted; earlier outputs are untouched", EXIT_INTERRUPTED
    if signal_seen == signal.SIGTERM:
        return "terminated; earlier outputs are untouched", EXIT_TERMINATED
    return None


def debug_enabled() -> bool:
    return switches.debug()


def one_line(text: str) -> str:
    """Escape control and unprintable characters (names from corrupt files) so a message stays one line."""
    from edgeopt.report.table import printable

    return printable(text)


def _print_err(text: str) -> None:
    from edgeopt.cli.output import tolerant_streams

    tolerant_streams()  # a name the terminal cannot encode must not turn the error into a crash
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def fail(line: str, code: int, as_json: bool) -> None:
    """Say a failure: its one line on stderr and, under --json, {"error": the line, "exit": code} on stdout, so a
    script reading stdout sees why (a result already on stdout is not followed by a second document)."""
    import json

    _print_err(line)
    if as_json:
        sys.stdout.write(json.dumps({"error": line.removeprefix("error: "), "exit": code}) + "\n")
        sys.stdout.flush()


@contextmanager
def handled(as_json: bool = False) -> Iterator[None]:
    """Turn library exceptions into one stderr line and an exit code (with --json, also a JSON object on stdout)."""
    from edgeopt.cli import output

    printed = output.results_printed()
    try:
        yield
    except typer.Exit:
        raise
    except (Exception, KeyboardInterrupt, Terminated) as exc:  # noqa: BLE001 - the last line of defence
        line, code = _verdict(exc)
        fail(line, code, as_json and output.results_printed() == printed)
        raise typer.Exit(code) from None


def _verdict(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code of an exception (a traceback first under --debug where it helps)."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted; earlier outputs are untouched", EXIT_INTERRUPTED
    if isinstance(exc, Terminated):
        return "terminated; earlier outputs are untouched", EXIT_TERMINATED
    if isinstance(exc, MemoryError):
        return "error: out of memory; try a smaller model, fewer samples or a machine with more RAM", 1
    signalled = _signalled()
    if signalled is not None:
        return signalled
    if isinstance(exc, EdgeoptError):
        if debug_enabled():
            traceback.print_exception(exc)
        return f"error: {one_line(str(exc))}", exc.exit_code
    from edgeopt.atomic import DISK_FULL

    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        if debug_enabled():
            traceback.print_exception(exc)
        return f"error: {one_line(_disk_full(exc))}", 2
    return _internal(exc)


def _disk_full(exc: OSError) -> str:
    """The message for a full disk no library code mapped: the folder written to and the bytes free there."""
    import shutil
    import tempfile
    from pathlib import Path

    from edgeopt.atomic import no_space

    target = exc.filename2 or exc.filename  # shutil.copyfile names the source first, the destination second
    if target:
        path = Path(os.fsdecode(target))
        return str(no_space(path if path.is_dir() else path.parent))
    tmp = tempfile.gettempdir()  # an unnamed write: mostly a temporary file of a tool
    try:
        free = f" has {shutil.disk_usage(tmp).free:,} bytes free"
    except OSError:
        free = " cannot be read"
    return (f"no space left on a device (the failed write named no file; the temporary folder {tmp}{free}); "
            "free some space, set TMPDIR to a folder with room, or choose another output folder")


def _internal(exc: BaseException) -> tuple[str, int]:
    """An exception nothing expected: one line, exit 1 (a bug to report)."""
    if debug_enabled():
        traceback.print_exception(exc)
    first = one_line((str(exc).strip().splitlines() or [""])[0][:300])
    return (f"internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback, and please "
            "report it)"), 1
