"""Recognise a model file's format from its bytes, not only its name.

Runtime-only: no TensorFlow here. Cheap structural checks happen before any
native runtime sees the file, so a text file named .tflite gets a clear message.
"""

from __future__ import annotations

import zipfile
import zlib
from enum import StrEnum
from pathlib import Path

from edgeopt.errors import ModelFileError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class ModelFormat(StrEnum):
    KERAS = "keras"
    H5 = "h5"
    SAVED_MODEL = "saved_model"
    TFLITE = "tflite"
    ONNX = "onnx"


SUFFIXES = {".keras": ModelFormat.KERAS, ".h5": ModelFormat.H5, ".hdf5": ModelFormat.H5,
            ".tflite": ModelFormat.TFLITE, ".onnx": ModelFormat.ONNX}


def detect_format(path: Path) -> ModelFormat:
    """Return the format of `path`, or raise ModelFileError naming what is wrong."""
    path = Path(path)
    if not path.exists():
        msg = f"model not found: {path} (check the path)"
        raise ModelFileError(msg)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return ModelFormat.SAVED_MODEL
        msg = f"{path} is a folder without saved_model.pb; give a .keras, .h5, .tflite, .onnx file or a SavedModel folder"
        raise ModelFileError(msg)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        msg = f"{path}: unknown model type '{path.suffix}'; expected .keras, .h5, .tflite, .onnx or a SavedModel folder"
        raise ModelFileError(msg)
    size = path.stat().st_size
    if size == 0:
        msg = f"{path} is empty (0 bytes); re-export the model"
        raise ModelFileError(msg)
    with path.open("rb") as fh:
        head = fh.read(16)
    if fmt is ModelFormat.TFLITE and (len(head) < 8 or head[4:8] != b"TFL3"):
        msg = f"{path} is not a TFLite flatbuffer (no TFL3 identifier); the file is corrupt or of another type"
        raise ModelFileError(msg)
    if fmt is ModelFormat.H5 and not head.startswith(HDF5_MAGIC):
        msg = f"{path} is not an HDF5 file; the file is corrupt or of another type"
        raise ModelFileError(msg)
    if fmt is ModelFormat.KERAS:
        if not zipfile.is_zipfile(path):
            msg = f"{path} is not a Keras 3 archive (not a zip file); the file is corrupt or of another type"
            raise ModelFileError(msg)
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:  # zlib: corrupt deflate data
            msg = f"{path} is a corrupt Keras archive: {exc}"
            raise ModelFileError(msg) from None
        if bad is not None:
            msg = f"{path} is a corrupt Keras archive: member {bad} fails its CRC check"
            raise ModelFileError(msg)
        if "config.json" not in names:
            msg = f"{path} is a zip file but not a Keras model (no config.json)"
            raise ModelFileError(msg)
    return fmt
