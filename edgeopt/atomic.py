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

Files edgeopt writes are its own: the lock file is opened O_NOFOLLOW and must be a
regular file with one link; `Staging.commit` checks every destination before the
first rename, moves each previous file aside, and puts them all back if a rename fails.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgeopt.errors import OutputError

STAGING_PREFIX = ".edgeopt-staging-"
LOCK_NAME = ".edgeopt-lock"


def new_file_mode() -> int:
    """The mode `open()` would give a new file: 0o666 minus the umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same folder."""
    path = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if exc.errno in DISK_FULL:  # no inode left for the temporary file
            raise no_space(path.parent, len(data)) from None
        raise
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if STAGING_PREFIX not in str(path.parent):
            tmp.chmod(new_file_mode())  # a final file: the usual mode (staged files get it on commit)
        tmp.replace(path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise no_space(path.parent, len(data)) from None
        raise
    return path


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or the user's quota


def no_space(folder: Path, needed: int | None = None) -> OutputError:
    """The one message for a full disk (or quota): the folder, the bytes the write needed if known, and the
    bytes free there."""
    folder = Path(folder)
    if STAGING_PREFIX in str(folder):
        # name the --out the user gave, not our private folder (or a subfolder of it) inside it
        folder = next(p.parent for p in (folder, *folder.parents) if p.name.startswith(STAGING_PREFIX))
    try:
        free: int | None = shutil.disk_usage(folder).free
    except OSError:
        free = None
    sizes = [f"{needed:,} bytes needed"] if needed is not None else []
    sizes += [] if free is None else [f"{free:,} free" if sizes else f"{free:,} bytes free"]
    got = f" ({', '.join(sizes)})" if sizes else ""
    msg = f"no space left to write into {folder}{got}; free some space or choose another output folder"
    return OutputError(msg)


def refuse_overwriting(out: Path, inputs: dict[str, Path | None]) -> None:
    """OutputError if `out` is (or is a hard link of) one of `inputs` (role -> path): a result never replaces
    what it was made from."""
    try:
        o = os.lstat(out)
    except (OSError, ValueError):
        return
    for role, path in inputs.items():
        if path is None:
            continue
        try:
            st = Path(path).stat()
        except (OSError, ValueError):
            continue
        if (st.st_dev, st.st_ino) == (o.st_dev, o.st_ino):
            msg = f"--out {out} is the {role} {path}; write the result to another file"
            raise OutputError(msg)


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
        if exc.errno in DISK_FULL:
            raise no_space(next(p for p in out.absolute().parents if p.exists())) from None
        msg = f"cannot create output folder {out}: {exc.strerror or exc}"
        raise OutputError(msg) from None
    if not os.access(out, os.W_OK | os.X_OK):
        msg = f"output folder {out} is not writable; choose another --out or fix its permissions"
        raise OutputError(msg)
    lock_output(out)  # before the sweep: another build's staging folder is not stale
    for stale in out.glob(f"{STAGING_PREFIX}*"):
        if stale.is_dir() and not stale.is_symlink():  # a planted link is never followed
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
        fd = open_lock_file(path)
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


def open_lock_file(path: Path) -> int:
    """Open (or create, 0600) a lock file without following a symlink or blocking on a FIFO; it must be a
    regular file with one link (a planted hard link would otherwise be truncated). Never truncates it. The
    build lock, the TFLM library cache's lock, `edgeopt search`'s .search-lock and the timing lock all open
    theirs here. OutputError (exit 2) naming the file otherwise."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            msg = (
                f"the lock file {path} is a symbolic link; refused (remove it: edgeopt creates its "
                              "own)"
            )
            raise OutputError(msg) from None
        msg = f"cannot create the lock file {path}: {exc.strerror or exc}"
        raise OutputError(msg) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        what = "has other hard links" if stat.S_ISREG(st.st_mode) else "is not a regular file"
        msg = f"the lock file {path} {what}; refused (remove it: edgeopt creates its own)"
        raise OutputError(msg)
    return fd


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
            if exc.errno in DISK_FULL:
                raise no_space(out) from None
            msg = f"cannot write into {out}: {exc.strerror or exc}"
            raise OutputError(msg) from None
        self.dir.chmod(0o700)

    @classmethod
    def adopt(cls, out: Path, folder: Path) -> Staging:
        """The staging folder another process created (the sandboxed side of a build writes into it)."""
        stage = cls.__new__(cls)
        stage.out, stage.dir = out, Path(folder)
        return stage

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
        `edgeopt verify` names the files that differ from manifest.json. A rename
        that fails undoes the ones before it (OutputError, previous files back).
        """
        for name in names:  # everything exists before the first rename
            with (self.dir / name).open("rb") as fh:
                os.fsync(fh.fileno())
        for name in names:  # every destination is checked before the first rename
            self._check_destination(name)
        backup = Path(tempfile.mkdtemp(prefix="backup-", dir=self.dir))
        done: list[tuple[Path, Path | None]] = []  # (destination, its previous file in `backup`, if any)
        with _signals_deferred():
            try:
                for i, name in enumerate(names):
                    src, dst = self.dir / name, self.out / name
                    src.chmod(new_file_mode())
                    old: Path | None = None
                    if os.path.lexists(dst):
                        old = backup / str(i)
                        dst.replace(old)
                    done.append((dst, old))
                    src.replace(dst)
            except OSError as exc:
                self._roll_back(done)
                msg = (
                    f"cannot move {name} into {self.out}: {exc.strerror or exc}; the previous "
                                  "files were put back"
                )
                raise OutputError(msg) from None
        return [dst for dst, _ in done]

    def _check_destination(self, name: str) -> None:
        dst = self.out / name
        if dst.parent != self.out and (dst.parent.is_symlink() or not dst.parent.resolve().is_relative_to(
                Path(self.out).resolve())):
            msg = f"{dst.parent} is a symbolic link out of {self.out}; refused"
            raise OutputError(msg)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_dir() and not dst.is_symlink():
            msg = f"{dst} is a folder; the build would replace it with a file (move it away)"
            raise OutputError(msg)
        if not os.access(dst.parent, os.W_OK | os.X_OK):
            msg = f"output folder {dst.parent} is not writable; choose another --out or fix its permissions"
            raise OutputError(msg)

    @staticmethod
    def _roll_back(done: list[tuple[Path, Path | None]]) -> None:
        """Undo the renames of a failed commit, newest first: each destination gets its previous file back."""
        for dst, old in reversed(done):
            with contextlib.suppress(OSError):
                if old is not None:
                    old.replace(dst)
                elif os.path.lexists(dst):
                    dst.unlink()

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
