"""Atomic outputs: stage everything, then move files into place with os.replace.

A failed or interrupted build never touches what was in the output folder; other
files a user keeps there are left alone. Leftover staging folders from a killed
run are removed by the next run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgeopt.errors import OutputError

STAGING_PREFIX = ".edgeopt-staging-"


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write `data` to `path` via a temporary file in the same folder."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress():
            os.unlink(tmp)
        raise
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def prepare_output(out: Path) -> Path:
    """Make sure `out` can be written; create it; sweep stale staging folders. Returns it resolved."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {out} is not writable; choose another --out or fix its permissions")
    for stale in out.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)
    return out.resolve()


class Staging:
    """A private folder inside `out` (same filesystem, so os.replace is atomic)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        try:
            self.dir = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
        except OSError as exc:
            raise OutputError(f"cannot write into {out}: {exc.strerror or exc}") from None
        os.chmod(self.dir, 0o700)

    def path(self, name: str) -> Path:
        p = (self.dir / name).resolve()
        if self.dir.resolve() not in p.parents:
            raise OutputError(f"refusing to write outside the output folder: {name}")
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self, names: list[str]) -> list[Path]:
        """Move `names` (relative paths) into `out`, in order; the last one should be the report."""
        moved = []
        for name in names:
            src = self.dir / name
            dst = self.out / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(src, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(src, dst)
            moved.append(dst)
        return moved

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
