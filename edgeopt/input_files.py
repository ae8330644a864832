"""Input paths are regular files (or a SavedModel folder), checked before anything opens, hashes or reads them.

A FIFO blocks `open()`, `/dev/zero` never ends, `/usr` takes hours to hash: none of them is a model, a data
file or a profile. `open_regular` opens without blocking and checks the opened file itself (no race with a
rename between the check and the open).
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import BinaryIO

from edgeopt.errors import InputError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def not_regular(path: Path, what: str, mode: int) -> str:
    """The one-line reason `path` (of mode `mode`) is refused as `what`."""
    return f"{what} {path} is {_kind(mode)}, not a regular file; give the file itself"


def regular_file(path: Path, what: str, error: type[InputError] = InputError) -> os.stat_result:
    """stat of `path` (links followed) if it is an existing regular file; `error` naming the problem otherwise."""
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        msg = f"{what} not found: {path} (check the path)"
        raise error(msg) from None
    except OSError as exc:
        msg = f"{what} {str(path)[:200]} cannot be read: {exc.strerror or exc}"
        raise error(msg) from None
    except ValueError:  # an embedded NUL byte
        msg = f"{what} {str(path)[:200]!r} is not a usable file name (NUL byte)"
        raise error(msg) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(not_regular(Path(path), what, st.st_mode))
    return st


def open_regular(path: Path, what: str, error: type[InputError] = InputError) -> BinaryIO:
    """Open `path` for reading if it is a regular file; never blocks on a FIFO or device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        msg = f"{what} not found: {path} (check the path)"
        raise error(msg) from None
    except OSError as exc:
        msg = f"{what} {str(path)[:200]} cannot be read: {exc.strerror or exc}"
        raise error(msg) from None
    except ValueError:  # an embedded NUL byte
        msg = f"{what} {str(path)[:200]!r} is not a usable file name (NUL byte)"
        raise error(msg) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(not_regular(Path(path), what, st.st_mode))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular(path: Path, what: str, error: type[InputError] = InputError, limit: int | None = None) -> bytes:
    """The bytes of a regular file, refusing one larger than `limit` before reading it."""
    with open_regular(path, what, error) as fh:
        size = os.fstat(fh.fileno()).st_size
        if limit is not None and size > limit:
            msg = f"{what} {path} is {size:,} bytes, over the {limit:,}-byte limit for {what}s"
            raise error(msg)
        return fh.read()
