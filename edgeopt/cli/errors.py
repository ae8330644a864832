"""The one place where errors become messages and exit codes."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

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


def _signalled() -> None:
    import signal

    if signal_seen == signal.SIGINT:
        _print_err("interrupted; earlier outputs are untouched")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if signal_seen == signal.SIGTERM:
        _print_err("terminated; earlier outputs are untouched")
        raise typer.Exit(EXIT_TERMINATED) from None


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


@contextmanager
def handled() -> Iterator[None]:
    """Turn library exceptions into one stderr line and an exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except EdgeoptError as exc:
        _signalled()
        if debug_enabled():
            traceback.print_exc()
        _print_err(f"error: {one_line(str(exc))}")
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        _print_err("interrupted; earlier outputs are untouched")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Terminated:
        _print_err("terminated; earlier outputs are untouched")
        raise typer.Exit(EXIT_TERMINATED) from None
    except OSError as exc:
        from edgeopt.atomic import DISK_FULL

        _signalled()
        if exc.errno not in DISK_FULL:
            _internal(exc)
        if debug_enabled():
            traceback.print_exc()
        _print_err(f"error: {one_line(_disk_full(exc))}")
        raise typer.Exit(2) from None
    except MemoryError:
        _print_err("error: out of memory; try a smaller model, fewer samples or a machine with more RAM")
        raise typer.Exit(1) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        _signalled()
        _internal(exc)


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


def _internal(exc: BaseException) -> NoReturn:
    """An exception nothing expected: one line, exit 1 (a bug to report)."""
    if debug_enabled():
        traceback.print_exception(exc)
    first = one_line((str(exc).strip().splitlines() or [""])[0][:300])
    _print_err(f"internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback, and please report it)")
    raise typer.Exit(1) from None
