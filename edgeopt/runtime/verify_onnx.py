"""Open a .onnx file safely (every ONNX read in edgeopt goes through `load_onnx`), and check it before onnxruntime.

`onnx.load` parses the protobuf (raising on a corrupt file) without reading
external data; external data files must be plain relative names inside the
model's folder (no `..`, no absolute paths, no symlinks out), so a model cannot
make us read arbitrary files. Before any onnx C++ code walks the graph, its
expanded size (model-local functions inlined) is counted in Python and capped
(edgeopt.runtime.onnx_expansion): every later step that expands functions
(onnx.checker, onnx.shape_inference in analysis/onnx_graph.py and the
quantizer's pre-processing, onnxruntime's session) only ever sees a model that
passed here, so none of them can run for hours on a small file.
Then `onnx.checker.check_model` checks the graph
(types, opsets, node inputs defined before use). No TensorFlow here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeopt.errors import ModelFileError, first_line
from edgeopt.runtime.onnx_expansion import bound_expansion


def verify_onnx(path: Path) -> Any:
    """Return the parsed ModelProto (without external data); raise ModelFileError (one line) if unsound."""
    return load_onnx(path)


def load_onnx(path: Path, *, check: bool = True, external_data: bool = False) -> Any:
    """The one way edgeopt opens an .onnx file: parse, confine external data, check; one-line ModelFileError.

    The expansion bound and the external-data guard always run. `check=False` skips onnx.checker (files edgeopt just wrote);
    `external_data=True` then reads the (confined) external tensors into the returned model.
    """
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError, OSError, ValueError...
        msg = f"{path}: not a readable ONNX model ({first_line(exc, 200)}); the file is corrupt or of another type"
        raise ModelFileError(msg) from None
    if not model.graph.node and not model.graph.output:
        msg = f"{path}: the ONNX file has an empty graph; the file is corrupt or of another type"
        raise ModelFileError(msg)
    bound_expansion(path, model)  # before any onnx C++ call that would inline functions
    _check_external_data(path, model)
    external = _uses_external_data(model)
    if check:
        try:
            onnx.checker.check_model(str(path) if external or path.stat().st_size > 2**31 - 1 else model)
        except Exception as exc:  # noqa: BLE001 - onnx.checker.ValidationError and friends
            msg = f"{path}: the ONNX checker rejects the model: {first_line(exc)}"
            raise ModelFileError(msg) from None
    if external_data and external:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(path.resolve().parent))
    return model


def _uses_external_data(model: Any) -> bool:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    return any(uses_external_data(t) for t in _get_all_tensors(model))


def _check_external_data(path: Path, model: Any) -> None:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    folder = path.resolve().parent
    for tensor in _get_all_tensors(model):
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        rel = Path(location)
        try:
            target = (folder / rel).resolve()
            target.stat()  # a NUL byte raises ValueError here
        except FileNotFoundError:
            pass
        except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
            msg = (
                f"{path}: tensor '{tensor.name[:60]}' points its external data at "
                                 f"{location[:100]!r}, which is not a usable file name (symlink loop or NUL byte); "
                                 "refused"
            )
            raise ModelFileError(msg) from None
        if not location or "\0" in location or rel.is_absolute() or ".." in rel.parts or folder not in target.parents:
            msg = (
                f"{path}: tensor '{tensor.name[:60]}' points its external data at '{location[:100]}', "
                                 "outside the model's folder; refused"
            )
            raise ModelFileError(msg)
        if not target.is_file():
            msg = (
                f"{path}: external data file '{location[:100]}' of tensor '{tensor.name[:60]}' "
                                 "is missing; copy it next to the model"
            )
            raise ModelFileError(msg)
