"""The content index of a TFLM library cache folder: the sha256 of every object and of libtflm.a, recorded when
edgeopt built them, in `index.json` (written atomically, under the folder's lock).

A file whose bytes no longer hash to the recorded value (poisoned, corrupt, truncated), or that the index does
not know (planted, or published by a build killed before it recorded it), is never linked: the library rebuilds it.
The index is not a signature: it catches changed and foreign files; the folder's permissions
(edgeopt.firmware.cache_folder) keep other users from rewriting it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from edgeopt.atomic import write_text_atomic

INDEX_NAME = "index.json"
INDEX_FORMAT = 1


def file_sha256(path: Path) -> str | None:
    """sha256 of a regular file, opened without following a symbolic link; None if it is missing or not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
            return None
        raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _object_name(rel: str) -> bool:
    """Whether `rel` can name an object under obj/: relative, no `..`/`.`/empty part, no NUL or backslash, *.o."""
    parts = PurePosixPath(rel).parts
    return (bool(parts) and rel.endswith(".o") and not rel.startswith("/") and "\0" not in rel and "\\" not in rel
            and all(p not in ("", ".", "..") for p in rel.split("/")))


@dataclass
class CacheIndex:
    """Object path (relative to obj/) -> sha256, and the archive's sha256 with the objects it was made from."""

    path: Path
    objects: dict[str, str] = field(default_factory=dict)
    archive: str | None = None
    archive_objects: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path) -> CacheIndex:
        """The folder's index; an unreadable or malformed one, or one naming a file outside obj/, is empty
        (everything is rebuilt, nothing trusted)."""
        path = folder / INDEX_NAME
        try:
            raw = json.loads(path.read_text("utf-8"))
            if raw.get("format") != INDEX_FORMAT:
                return cls(path)
            objects = {str(k): str(v) for k, v in dict(raw["objects"]).items()}
            archive = raw.get("archive")
            members = [str(m) for m in raw.get("archive_objects", [])]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls(path)
        if not all(map(_object_name, [*objects, *members])):
            return cls(path)  # a name that leaves obj/: the index was not written by edgeopt
        return cls(path, objects, None if archive is None else str(archive), members)

    def save(self) -> None:
        data = {"format": INDEX_FORMAT, "objects": dict(sorted(self.objects.items())), "archive": self.archive,
                "archive_objects": self.archive_objects}
        write_text_atomic(self.path, json.dumps(data, indent=1) + "\n")
