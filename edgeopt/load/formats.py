"""Recognise a model file's format from its bytes, not only its name.

Runtime-only: no TensorFlow here. Cheap structural checks happen before any
native runtime sees the file, so a text file named .tflite gets a clear message.
"""

from __future__ import annotations

import stat
import zipfile
from enum import StrEnum
from pathlib import Path

from edgeopt.data.npy_guard import ARCHIVE_ERRORS
from edgeopt.errors import ModelFileError
from edgeopt.input_files import not_regular, open_regular, regular_file

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_KERAS_BYTES = 4 << 30  # uncompressed; a TFLite flatbuffer cannot exceed 2 GB anyway


class ModelFormat(StrEnum):
    KERAS = "keras"
    H5 = "h5"
    SAVED_MODEL = "saved_model"
    TFLITE = "tflite"
    ONNX = "onnx"
    PT2 = "pt2"  # a torch.export program (torch.export.save); builds export it to ONNX (load/torch_export.py)


SUFFIXES = {".keras": ModelFormat.KERAS, ".h5": ModelFormat.H5, ".hdf5": ModelFormat.H5,
            ".tflite": ModelFormat.TFLITE, ".onnx": ModelFormat.ONNX,
            ".pt2": ModelFormat.PT2}


def check_model_path(path: Path) -> ModelFormat:
    """The format `path`'s name claims, once it is known to be a regular file or a SavedModel folder.

    Nothing is opened: a FIFO, a device or a large folder given as a model is refused before anything reads
    or hashes it. `detect_format` then checks the bytes.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        msg = f"model not found: {path} (check the path)"
        raise ModelFileError(msg) from None
    except OSError as exc:
        msg = f"model {path} cannot be read: {exc.strerror or exc}"
        raise ModelFileError(msg) from None
    if stat.S_ISDIR(st.st_mode):
        pb = path / "saved_model.pb"
        if not pb.is_file():
            msg = f"{path} is a folder without saved_model.pb; give a .keras, .h5, .tflite, .onnx file or a SavedModel folder"
            raise ModelFileError(msg)
        regular_file(pb, "SavedModel graph", ModelFileError)
        return ModelFormat.SAVED_MODEL
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(not_regular(path, "model", st.st_mode))
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        msg = f"{path}: unknown model type '{path.suffix}'; expected .keras, .h5, .tflite, .onnx, .pt2 or a SavedModel folder"
        raise ModelFileError(msg)
    if st.st_size == 0:
        msg = f"{path} is empty (0 bytes); re-export the model"
        raise ModelFileError(msg)
    return fmt


def detect_format(path: Path) -> ModelFormat:
    """Return the format of `path`, or raise ModelFileError naming what is wrong."""
    path = Path(path)
    fmt = check_model_path(path)
    if fmt is ModelFormat.SAVED_MODEL:
        return fmt
    with open_regular(path, "model", ModelFileError) as fh:
        head = fh.read(16)
    if fmt is ModelFormat.TFLITE and (len(head) < 8 or head[4:8] != b"TFL3"):
        msg = f"{path} is not a TFLite flatbuffer (no TFL3 identifier); the file is corrupt or of another type"
        raise ModelFileError(msg)
    if fmt is ModelFormat.H5 and not head.startswith(HDF5_MAGIC):
        msg = f"{path} is not an HDF5 file; the file is corrupt or of another type"
        raise ModelFileError(msg)
    if fmt is ModelFormat.PT2 and not zipfile.is_zipfile(path):
        msg = f"{path} is not a torch.export archive (not a zip file); save the program with torch.export.save"
        raise ModelFileError(msg)
    if fmt is ModelFormat.KERAS:
        if not zipfile.is_zipfile(path):
            msg = f"{path} is not a Keras 3 archive (not a zip file); the file is corrupt or of another type"
            raise ModelFileError(msg)
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                declared = sum(i.file_size for i in zf.infolist())
                if declared > MAX_KERAS_BYTES:
                    msg = (
                        f"{path}: the Keras archive declares {declared:,} bytes uncompressed, over "
                                         f"the {MAX_KERAS_BYTES >> 30} GB an edge model can be; the file is corrupt or a zip bomb"
                    )
                    raise ModelFileError(msg)
                bad = zf.testzip()
        except ARCHIVE_ERRORS as exc:
            msg = f"{path} is a corrupt Keras archive: {exc}"
            raise ModelFileError(msg) from None
        if bad is not None:
            msg = f"{path} is a corrupt Keras archive: member {bad} fails its CRC check"
            raise ModelFileError(msg)
        if "config.json" not in names:
            msg = f"{path} is a zip file but not a Keras model (no config.json)"
            raise ModelFileError(msg)
    return fmt
