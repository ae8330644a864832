"""The TFLM library cache's folders are private, like ssh's ~/.ssh: owned by the user, not writable by anyone else.

`private_folder` creates a missing folder 0700 and refuses (InputError, exit 2) an existing one that is a symbolic
link or not a folder, belongs to another user, or is writable by group or others, naming its mode, its owner and the fix.
Anyone who can write there could plant an object that edgeopt would link into firmware it then runs.
`sweep_temporary` removes the temporary files a killed build left (called with the folder's lock held).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from edgeopt.errors import InputError

TEMP_SUFFIX = ".tmp"  # every temporary name in the cache: .<name>.<random>.tmp


def private_folder(path: Path) -> Path:
    """`path`, created 0700 if missing; InputError if it exists and others could write into it."""
    try:
        Path(path).mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        msg = f"cannot create the TFLM library cache folder {path}: {exc.strerror or exc}; set XDG_CACHE_HOME to a writable folder"
        raise InputError(msg) from None
    try:
        st = os.lstat(path)  # never through a link: obj/ linked to a user's folder would get objects written
    except OSError as exc:  # and unrecorded *.o files removed there
        msg = f"cannot read the TFLM library cache folder {path}: {exc.strerror or exc}; set XDG_CACHE_HOME to a writable folder"
        raise InputError(msg) from None
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        msg = f"the TFLM library cache folder {path} is a symbolic link; refused: remove it (edgeopt creates its own)"
        raise InputError(msg)
    if not stat.S_ISDIR(st.st_mode):
        msg = f"the TFLM library cache folder {path} is not a folder; remove it (edgeopt creates its own)"
        raise InputError(msg)
    if st.st_uid != os.getuid():
        msg = (f"the TFLM library cache folder {path} belongs to uid {st.st_uid}, not you (uid {os.getuid()}), "
               f"mode {mode:04o}; refused: remove it or set XDG_CACHE_HOME to a folder of yours")
        raise InputError(msg)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        msg = (f"the TFLM library cache folder {path} is writable by group or others (mode {mode:04o}, owner uid "
               f"{st.st_uid}); refused: run `chmod go-w {path}` or remove it")
        raise InputError(msg)
    return path


def private_folders(root: Path, *parts: str) -> Path:
    """`root` and each of `parts` below it, checked and created in turn; the last one."""
    path = private_folder(root)
    for part in parts:
        path = private_folder(path / part)
    return path


def sweep_temporary(folder: Path) -> int:
    """Remove every `.*.tmp` file under `folder` (a killed build's; the caller holds the lock, so none is being
    written). Symbolic links are removed, never followed. Returns how many."""
    removed = 0
    for dirpath, dirnames, filenames in os.walk(folder):  # os.walk does not descend into symlinked folders
        here = Path(dirpath)
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    (here / name).unlink()
                    removed += 1
    return removed
