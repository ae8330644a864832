"""A .npz member whose zip flags claim strong encryption (one flipped bit, found by the 10,000-case fuzz run:
`build --eval` ended in "internal error: NotImplementedError") is bad data: exit 2, one line."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgeopt.errors import DataError
from tests.robustness.conftest import ROOT, edgeopt, error_line


def _flag_members(src: Path, dst: Path, bit: int) -> None:
    """Copy `src` with general-purpose flag `bit` set on every member (local headers and central directory)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        infos = zf.infolist()
    for info in infos:
        (flags,) = struct.unpack_from("<H", data, info.header_offset + 6)
        struct.pack_into("<H", data, info.header_offset + 6, flags | (1 << bit))
    cd = data.rfind(b"PK\x01\x02", 0)
    while cd != -1:  # central directory entries: flags at +8
        (flags,) = struct.unpack_from("<H", data, cd + 8)
        struct.pack_into("<H", data, cd + 8, flags | (1 << bit))
        cd = data.rfind(b"PK\x01\x02", 0, cd)
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("bit", [6, 0])  # 6: strong encryption (NotImplementedError); 0: encrypted (RuntimeError)
def test_flagged_npz_members_are_bad_data(tmp_path: Path, bit: int) -> None:
    from edgeopt.data.datasets import load_dataset

    good = tmp_path / "good.npz"
    np.savez(good, x=np.zeros((4, 8, 8, 1), np.float32), y=np.zeros(4, np.int64))
    bad = tmp_path / "bad.npz"
    _flag_members(good, bad, bit)
    with zipfile.ZipFile(bad) as zf, pytest.raises((NotImplementedError, RuntimeError)):
        zf.read("x.npy")  # the flag really makes zipfile refuse the member
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset(bad, "eval")
    r = edgeopt("bench", ROOT / "sample_models" / "digits_mlp.onnx", "--input", bad, "--runs", "3")
    assert r.returncode == 2, r.stderr
    assert "not a readable .npz/.npy file" in error_line(r)
