"""What `edgeopt search` reads back from a finished trial: only this run's OUT/trials/NNNN (derived from the trial
number, never from a path stored in the study), each file checked against the sha256 the study stored when the trial
finished, nothing opened through a symbolic link.

A study is not trusted: a planted search.db or any worker of a shared study can write its attributes. What they
store can name no file outside OUT/trials/NNNN, and a file there whose bytes are not those the trial made is refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from edgeopt.errors import InputError
from edgeopt.pipeline.manifest import MANIFEST, MAX_MANIFEST_BYTES
from edgeopt.pipeline.search.trial import ARTIFACT_SHA256, MANIFEST_SHA256, trial_dir

LEFTOVERS = (".edgeopt-", "_work")  # a build's lock and work folders: never copied, not worth a note


@dataclass(frozen=True)
class TrialFiles:
    """The files of one finished trial in this run's OUT, as its manifest (checked against the study) lists them."""

    number: int
    folder: Path
    files: dict[str, str]  # relative name -> sha256, from the manifest
    manifest: bytes  # the manifest's bytes, whose sha256 the study holds
    artifact: str
    baseline: str

    def path(self, name: str) -> Path:
        return self.folder / name


def _refused(number: int, why: str) -> InputError:
    return InputError(f"trial {number:04d}: {why}; refused (search reads back only the files its trials made: "
                      "rerun the search into a new --out)")


def local_trial(out: Path, t: Any) -> TrialFiles | None:
    """The trial's files in OUT/trials/NNNN, or None when that folder does not exist (the trial was built on another
    machine or into another --out) or the study holds no sha256 for it (a study from before they were stored).
    InputError (exit 2) naming the trial: the folder is a link, the manifest is missing or changed, a name in it
    leaves the folder."""
    folder = trial_dir(out, t.number)
    for p in (folder.parent, folder):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            raise _refused(t.number, f"{p} is {'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'not a folder'}")
    want = t.user_attrs.get(MANIFEST_SHA256)
    if not isinstance(want, str):
        return None
    with _open_in(folder, MANIFEST, t.number) as fh:
        data = fh.read(MAX_MANIFEST_BYTES + 1)
    if hashlib.sha256(data).hexdigest() != want:
        raise _refused(t.number, f"{folder / MANIFEST} changed since the trial finished (its sha256 differs from the study's)")
    try:
        listed = json.loads(data)["artifacts"]
        files = {str(name): str(info["sha256"]) for name, info in listed.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _refused(t.number, f"{folder / MANIFEST} lists no artifacts") from None
    for name in files:
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in name or "\0" in name:
            raise _refused(t.number, f"its manifest names {name[:80]!r}, outside the trial folder")
    artifact, baseline = t.user_attrs.get("artifact"), t.user_attrs.get("baseline_artifact")
    if not isinstance(artifact, str) or not isinstance(baseline, str) or artifact not in files or baseline not in files or files[artifact] != t.user_attrs.get(ARTIFACT_SHA256):
        raise _refused(t.number, "its artifact is not the one the study recorded")
    return TrialFiles(t.number, folder, files, data, str(artifact), str(baseline))


@contextlib.contextmanager
def _open_in(folder: Path, name: str, number: int) -> Iterator[BinaryIO]:
    """Open folder/name for reading without following a symbolic link at any step (O_NOFOLLOW from a folder
    descriptor) or blocking on a FIFO; it must be a regular file."""
    parts = PurePosixPath(name).parts
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fds: list[int] = []
    try:
        fds.append(os.open(folder, flags | os.O_DIRECTORY))
        for part in parts[:-1]:
            fds.append(os.open(part, flags | os.O_DIRECTORY, dir_fd=fds[-1]))
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fds[-1])
    except FileNotFoundError:
        raise _refused(number, f"{name} is missing from {folder}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link (the name, or a folder on the way)
            raise _refused(number, f"{folder / name} is (or passes through) a symbolic link") from None
        if exc.errno == errno.ENOTDIR:  # a link or a file where a folder of the name should be
            raise _refused(number, f"{folder / name} passes through a symbolic link or a file") from None
        raise _refused(number, f"{folder / name} cannot be read ({exc.strerror or exc})") from None
    finally:
        for d in fds:
            os.close(d)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(number, f"{folder / name} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as fh:
        yield fh


def check_file(tf: TrialFiles, name: str) -> Path:
    """The path of one listed file after checking its bytes against the manifest; InputError naming the trial."""
    h = hashlib.sha256()
    with _open_in(tf.folder, name, tf.number) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != tf.files[name]:
        raise _refused(tf.number, f"{tf.path(name)} changed since the trial finished (its sha256 differs)")
    return tf.path(name)


def copy_trial(tf: TrialFiles, dst: Path) -> list[str]:
    """Copy the manifest and every file it lists into the empty folder `dst` (new files, the usual mode), each
    checked against its sha256 while it is copied (InputError naming the trial on a difference). Returns what else
    the trial folder holds, which is not copied (names; a link marked as such)."""
    for name, sha in [*tf.files.items(), (MANIFEST, hashlib.sha256(tf.manifest).hexdigest())]:
        target = dst / name
        h = hashlib.sha256()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with _open_in(tf.folder, name, tf.number) as src, target.open("xb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
        except (FileExistsError, NotADirectoryError, IsADirectoryError):  # a manifest naming a file twice, or as a folder
            raise _refused(tf.number, f"its manifest names {name[:80]!r} twice or as a folder") from None
        if h.hexdigest() != sha:
            raise _refused(tf.number, f"{tf.path(name)} changed since the trial finished (its sha256 differs)")
    return _others(tf)


def _others(tf: TrialFiles) -> list[str]:
    """Entries of the trial folder its manifest does not list (never followed: a link is named, not opened)."""
    kept = {*tf.files, MANIFEST}
    found = []
    for root, dirs, names in os.walk(tf.folder, followlinks=False):
        here = Path(root)
        links = [d for d in dirs if (here / d).is_symlink()]
        for name in sorted([*names, *links]):
            r = (here / name).relative_to(tf.folder).as_posix()
            if r not in kept and not name.startswith(LEFTOVERS):
                found.append(f"{r} (a symbolic link)" if (here / name).is_symlink() else r)
        dirs[:] = [d for d in dirs if d not in links and not d.startswith(LEFTOVERS)]
    return found
