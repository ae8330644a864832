"""Atomic outputs: stage everything, then move files into place with os.replace.

A failed or interrupted build never touches what was in the output folder; other
files a user keeps there are left alone. Leftover staging folders from a killed
run are removed by the next run.

One build at a time per output folder: `prepare_output` takes an exclusive
`flock` on OUT/.edgeopt-lock (released by the kernel even on SIGKILL) before it
sweeps stale staging folders, so a second build into the same --out fails at once
with exit 2 ("another edgeopt build is writing OUT (pid N)") instead of deleting
the first one's staging folder or interleaving files. The lock file is removed
when the build ends; one left by a killed build is reused by the next.

A build that fails after `prepare_output` created --out (a refusal found during the
build, e.g. an op TFLite Micro lacks) removes the folders it created, if still empty:
a refused build leaves nothing behind.

Temporary files are created 0600 and staging folders 0700 (mkstemp/mkdtemp);
files moved into place get the usual mode of a new file (0666 & ~umask).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeopt.errors import OutputError

STAGING_PREFIX = ".edgeopt-staging-"
LOCK_NAME = ".edgeopt-lock"


def _file_mode() -> int:
    """The mode `open()` would give a new file: 0o666 minus the umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same folder."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if STAGING_PREFIX not in str(path.parent):
            tmp.chmod(_file_mode())  # a final file: the usual mode (staged files get it on commit)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then deliver them (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[signal.Signals] = []
    sigs = [signal.SIGINT, signal.SIGTERM]
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signal.Signals(signum))) for s in sigs}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(pending):
            signal.raise_signal(s)


_created: dict[Path, list[Path]] = {}  # resolved output folder -> folders prepare_output made, deepest first


def prepare_output(out: Path) -> Path:
    """Make sure `out` can be written; create it; sweep stale staging folders. Returns it resolved."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        msg = f"--out {out} is a file; give a folder"
        raise OutputError(msg)
    new = [p.absolute() for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create output folder {out}: {exc.strerror or exc}"
        raise OutputError(msg) from None
    if not os.access(out, os.W_OK | os.X_OK):
        msg = f"output folder {out} is not writable; choose another --out or fix its permissions"
        raise OutputError(msg)
    lock_output(out)  # before the sweep: another build's staging folder is not stale
    for stale in out.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    _created[out.resolve()] = new
    return out.resolve()


def _remove_created(out: Path) -> None:
    """After a failed build: remove the folders `prepare_output` created for `out` while they are empty."""
    for folder in _created.pop(Path(out).resolve(), []):
        try:
            folder.rmdir()  # only ever removes an empty folder
        except OSError:
            return


_locks: dict[Path, int] = {}  # resolved output folder -> fd holding its flock


def lock_output(out: Path) -> None:
    """Take the exclusive build lock of `out` (idempotent in one process); OutputError if another holds it."""
    key = Path(out).resolve()
    if key in _locks:
        return
    try:
        import fcntl
    except ImportError:  # no flock (Windows): builds into one folder are not serialised
        return
    path = key / LOCK_NAME
    for _ in range(10):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            msg = f"cannot create the lock file {path}: {exc.strerror or exc}"
            raise OutputError(msg) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f" (pid {holder})" if holder else ""
            msg = (
                f"another edgeopt build is writing {out}{who}; wait for it to finish or choose "
                "another --out"
            )
            raise OutputError(msg) from None
        try:  # the holder may have removed the file between our open and flock: retry on the new one
            same = os.fstat(fd).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _locks[key] = fd
            return
        os.close(fd)
    msg = f"cannot lock {out}: the lock file keeps changing; is another build starting?"
    raise OutputError(msg)


def unlock_output(out: Path) -> None:
    """Release the build lock of `out` and remove the lock file (unlink first, so waiters retry)."""
    key = Path(out).resolve()
    fd = _locks.pop(key, None)
    if fd is None:
        return
    with contextlib.suppress(OSError):
        (key / LOCK_NAME).unlink()
    os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


@atexit.register
def _unlock_all() -> None:
    for key in list(_locks):
        unlock_output(key)


class Staging:
    """A private folder inside `out` (same filesystem, so os.replace is atomic)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        try:
            self.dir = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
        except OSError as exc:
            msg = f"cannot write into {out}: {exc.strerror or exc}"
            raise OutputError(msg) from None
        self.dir.chmod(0o700)

    def path(self, name: str) -> Path:
        p = (self.dir / name).resolve()
        if self.dir.resolve() not in p.parents:
            msg = f"refusing to write outside the output folder: {name}"
            raise OutputError(msg)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self, names: list[str]) -> list[Path]:
        """Move `names` (relative paths) into `out`, in order; the last one should be the manifest.

        Ctrl-C and SIGTERM are held back during the moves (a few renames), so an
        interrupt never leaves a mix of old and new files; SIGKILL can, and then
        `edgeopt verify` names the files that differ from manifest.json.
        """
        for name in names:  # everything exists before the first rename
            with (self.dir / name).open("rb") as fh:
                os.fsync(fh.fileno())
        moved = []
        with _signals_deferred():
            for name in names:
                src = self.dir / name
                dst = self.out / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                src.chmod(_file_mode())
                src.replace(dst)
                moved.append(dst)
        return moved

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        unlock_output(self.out)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.cleanup()
        if exc_type is not None:  # nothing was committed: do not leave a new, empty --out behind
            _remove_created(self.out)
        else:
            _created.pop(Path(self.out).resolve(), None)
