"""Compressed size of a Keras model as a .keras file and as a float .tflite (gzip -9)."""

from __future__ import annotations

import gzip
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CompressedSize:
    keras_bytes: int
    keras_gzip_bytes: int
    tflite_bytes: int
    tflite_gzip_bytes: int


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def float_tflite(model: Any) -> bytes:
    """The model as a float (unquantized) .tflite, via a SavedModel export."""
    from edgeopt.convert.savedmodel import temporary_saved_model
    from edgeopt.convert.tflite import to_tflite

    with temporary_saved_model(model) as sm:
        return to_tflite(sm)


def keras_bytes(model: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="edgeopt-cl-") as tmp:
        p = Path(tmp) / "m.keras"
        model.save(p)
        return p.read_bytes()


def compressed_size(model: Any) -> CompressedSize:
    kb, tb = keras_bytes(model), float_tflite(model)
    return CompressedSize(len(kb), gzip_size(kb), len(tb), gzip_size(tb))
