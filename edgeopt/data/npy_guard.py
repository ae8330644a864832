"""Refuse .npy/.npz files whose headers claim more data than the file holds, before numpy allocates it.

np.load trusts the header: a shape of (2**40, ...) in a 1 KB file makes numpy
try to allocate terabytes (MemoryError, or the OOM killer). Found by the fuzzer.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from edgeopt.errors import DataError


def _claimed_bytes(fh: IO[bytes]) -> int:
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = reader(fh)
    return math.prod(shape) * dtype.itemsize


def check_npy_sizes(path: Path, label: str) -> None:
    """DataError if an array in `path` (.npy or .npz) claims more bytes than stored; other problems pass to np.load."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.filename.endswith(".npy"):
                        with zf.open(info) as fh:
                            claimed = _claimed_bytes(fh)
                        if claimed > info.file_size:
                            msg = (
                                f"{label} {path}: array '{info.filename[:-4]}' claims {claimed:,} bytes but "
                                f"holds {info.file_size:,}; the file is corrupt"
                            )
                            raise DataError(msg)
        else:
            with path.open("rb") as fh:
                claimed = _claimed_bytes(fh)
            if claimed > path.stat().st_size:
                msg = (
                    f"{label} {path}: the array claims {claimed:,} bytes but the file holds "
                    f"{path.stat().st_size:,}; the file is corrupt"
                )
                raise DataError(msg)
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - unreadable headers are reported by np.load with its own message
        return
