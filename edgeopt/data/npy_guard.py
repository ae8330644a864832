"""Read .npy/.npz array headers and refuse what would be absurd to inflate, before numpy allocates anything.

np.load trusts the header: a shape of (2**40, ...) in a 1 KB file makes numpy try to allocate terabytes
(found by the fuzzer), and a 2 MB .npz can declare a 2 GiB member of zeros that deflates into 3 GB of RAM.
`read_headers` reads only the zip directory and each member's .npy header; `check_npy_sizes` refuses
headers that claim more bytes than stored, members over the size cap (EDGEOPT_MAX_DATA_MB, default 1024 MB
per array) and .npz arrays that are not .npy members.
"""

from __future__ import annotations

import math
import os
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from edgeopt.errors import DataError, InputError

MAX_DATA_MB = 1024
ENV = "EDGEOPT_MAX_DATA_MB"

# What reading a corrupt .npz/.npy (or any zip) raises. zlib.error: corrupt deflate data;
# NotImplementedError: a member flagged with an unsupported compression or "strong encryption"
# (a flipped flag bit, found by the long fuzz run); RuntimeError: an encrypted member needs a password.
# TokenError / SyntaxError: numpy parses a .npy header with tokenize and ast, and an unbalanced bracket in it
# (found by the fuzzer) raises these rather than ValueError.
ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                                                   NotImplementedError, RuntimeError, tokenize.TokenError,
                                                   SyntaxError)
# What numpy raises for a header it cannot parse (bad magic, cut short, not a dict literal, unbalanced brackets).
HEADER_ERRORS: tuple[type[BaseException], ...] = (ValueError, EOFError, tokenize.TokenError, SyntaxError,
                                                  MemoryError, RecursionError)


@dataclass(frozen=True)
class ArrayHeader:
    name: str  # "x", "y" (the .npz key) or "" for a .npy file
    shape: tuple[int, ...]
    dtype: np.dtype
    stored_bytes: int  # the (declared, uncompressed) size of the member or file

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def max_data_bytes() -> int:
    raw = os.environ.get(ENV, "")
    if not raw:
        return MAX_DATA_MB << 20
    try:
        mb = int(raw)
    except ValueError:
        mb = 0
    if not 1 <= mb <= 1 << 30:
        msg = f"{ENV}={raw!r} is not a size in MB (a whole number from 1); unset it for {MAX_DATA_MB}"
        raise InputError(msg)
    return mb << 20


class _CorruptHeader(Exception):
    """A .npy header numpy cannot parse; read_headers names the file."""


def _header(fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = reader(fh)
        return tuple(int(d) for d in shape), dtype
    except (zlib.error, zipfile.BadZipFile):
        raise  # the archive around the member, not its header: np.load reports it
    except HEADER_ERRORS as exc:
        if isinstance(exc, tokenize.TokenError):
            why = "unbalanced brackets"
        elif isinstance(exc, EOFError):
            why = "cut short"
        else:
            why = "no NUMPY magic string" if "magic" in str(exc) else "not a dict of descr, fortran_order and shape"
        raise _CorruptHeader(why) from None


def read_headers(path: Path, label: str, names: tuple[str, ...] | None = ("x", "y")) -> dict[str, ArrayHeader]:
    """Headers of the arrays `names` in a .npz (those present; None = every member), or of a .npy (key "")."""
    path = Path(path)
    cap = max_data_bytes()
    found: dict[str, ArrayHeader] = {}
    try:
        if path.suffix.lower() != ".npz":
            from edgeopt.input_files import open_regular

            with open_regular(path, label, DataError) as fh:
                shape, dtype = _header(fh)
                found[""] = ArrayHeader("", shape, dtype, os.fstat(fh.fileno()).st_size)
        else:
            with zipfile.ZipFile(path) as zf:
                members = {i.filename: i for i in zf.infolist()}
                for info in members.values():
                    if info.file_size > cap and (names is None or info.filename.removesuffix(".npy") in names):
                        raise DataError(_over(label, path, info.filename.removesuffix(".npy"), info.file_size, cap))
                wanted = names if names is not None else tuple(m.removesuffix(".npy") for m in members
                                                               if m.endswith(".npy"))
                for name in wanted:
                    if name not in members and f"{name}.npy" not in members:
                        continue
                    member = members.get(f"{name}.npy")
                    if member is None:
                        msg = f"{label} {path}: member '{name}' is not a .npy array; save with np.savez"
                        raise DataError(msg)
                    with zf.open(member) as fh:
                        try:
                            shape, dtype = _header(fh)
                        except _CorruptHeader as exc:
                            msg = (f"{label} {path}: array '{name}' has a corrupt .npy header ({exc}); save the "
                                   "data again with numpy")
                            raise DataError(msg) from None
                    found[name] = ArrayHeader(name, shape, dtype, member.file_size)
    except _CorruptHeader as exc:
        msg = f"{label} {path} has a corrupt .npy header ({exc}); save the data again with numpy"
        raise DataError(msg) from None
    except DataError:
        raise
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - unreadable headers are reported by np.load with its own message
        return found
    for h in found.values():
        where = f"array '{h.name}'" if h.name else "the array"
        if h.dtype.hasobject:
            msg = (
                f"{label} {path} cannot be read: {where} holds pickled Python objects; save numbers "
                            "only (allow_pickle is never used)"
            )
            raise DataError(msg)
        if h.nbytes > h.stored_bytes:
            msg = (
                f"{label} {path}: {where} claims {h.nbytes:,} bytes but holds {h.stored_bytes:,}; "
                            "the file is corrupt"
            )
            raise DataError(msg)
        if h.nbytes > cap:
            raise DataError(_over(label, path, h.name, h.nbytes, cap))
    return found


def _over(label: str, path: Path, name: str, nbytes: int, cap: int) -> str:
    where = f"array '{name}'" if name else "the array"
    return (f"{label} {path}: {where} is {nbytes:,} bytes when read, over the {cap >> 20:,} MB limit; "
            f"use fewer samples or raise {ENV}")


def check_npy_sizes(path: Path, label: str) -> None:
    """DataError if any array in `path` (.npy or .npz) claims more bytes than stored or more than the cap."""
    read_headers(path, label, names=None)
