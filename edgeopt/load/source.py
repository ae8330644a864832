"""The float source model of a build: a Keras model or a float ONNX model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import InputError
from edgeopt.load.formats import ModelFormat, detect_format
from edgeopt.load.keras_model import KERAS_FORMATS, load_keras


@dataclass(frozen=True)
class Source:
    path: Path
    format: ModelFormat
    input_shape: tuple[int | None, ...]
    keras_model: Any = None  # keras.Model for Keras sources
    onnx_path: Path | None = None  # for ONNX sources
    qat_model: Any = None  # a model written by `edgeopt qat`: keras_model is then its float (stripped) twin
    output_width: int | None = None  # values per sample of the first output (classes); None if dynamic
    input_dtype: str = "float32"  # numpy name of the first input's element type
    input_name: str = ""  # the (first) input's name in the source model

    @property
    def reference_name(self) -> str:
        return "keras float (TensorFlow)" if self.keras_model is not None else "onnx float (onnxruntime)"

    def params_and_macs(self, shapes: dict[str, tuple[int, ...]] | None = None) -> tuple[int, int]:
        """Parameters and multiply-accumulates per sample of the float source model (ONNX: for `shapes`, the sizes
        of symbolic input dims, edgeopt.runtime.shapes)."""
        if self.keras_model is not None:
            from edgeopt.analysis.keras_stats import keras_model_stats

            stats = keras_model_stats(self.keras_model)
            return int(self.keras_model.count_params()), int(stats.macs)
        from edgeopt.analysis.onnx_graph import read_onnx

        assert self.onnx_path is not None
        g = read_onnx(self.onnx_path, shapes)
        return int(g.params), int(g.macs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float reference outputs (first output), batch first, flattened per sample."""
        if self.keras_model is not None:
            out = self.keras_model.predict(x, batch_size=64, verbose=0)
            out = out[0] if isinstance(out, list | tuple) else out
            out = next(iter(out.values())) if isinstance(out, dict) else out
            return np.asarray(out, np.float32).reshape(x.shape[0], -1)
        from edgeopt.validate.accuracy import predict

        assert self.onnx_path is not None
        return predict(self.onnx_path, x)


def open_source(path: Path, unsafe_load: bool) -> Source:
    fmt = detect_format(path)
    if fmt in KERAS_FORMATS:
        from edgeopt.convert.savedmodel import input_shape, output_width

        model = load_keras(path, unsafe=unsafe_load)
        inputs = getattr(model, "inputs", None) or []
        dtype = getattr(inputs[0], "dtype", "float32") if inputs else "float32"
        from edgeopt.qat.export import is_qat_model

        qat_model = None
        if is_qat_model(model):  # a model written by `edgeopt qat`: its float twin is the reference
            from edgeopt.qat.wrap import strip_model

            qat_model, model = model, strip_model(model)
        return Source(path, fmt, input_shape(model), keras_model=model, output_width=output_width(model),
                      input_dtype=str(getattr(dtype, "name", dtype)), qat_model=qat_model,
                      input_name=str(getattr(inputs[0], "name", "") or "") if inputs else "")
    if fmt is ModelFormat.ONNX:
        shape, out_dims, name = _onnx_shapes(path)
        return Source(path, fmt, shape, onnx_path=path, output_width=_width(out_dims[1:]), input_name=name)
    msg = f"{path}: build needs a .keras, .h5, SavedModel or .onnx model; a .tflite is already built (use `edgeopt bench` or `edgeopt inspect`)"
    raise InputError(msg)


def _width(dims: tuple[Any, ...]) -> int | None:
    if any(d is None for d in dims):
        return None
    return int(np.prod([int(d) for d in dims])) if dims else 1


def _onnx_shapes(path: Path) -> tuple[tuple[int | None, ...], tuple[int | None, ...], str]:
    """(input shape, first output shape, input name), batch first, None for dynamic dimensions."""
    import onnx

    from edgeopt.runtime.verify_onnx import verify_onnx

    model = verify_onnx(path)
    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1:
        msg = f"{path}: the model has {len(inputs)} inputs; edgeopt supports single-input models for now"
        raise InputError(msg)
    dims = inputs[0].type.tensor_type.shape.dim
    elem = inputs[0].type.tensor_type.elem_type
    if elem != onnx.TensorProto.FLOAT:
        msg = f"{path}: input '{inputs[0].name}' is not float32; give a float ONNX model"
        raise InputError(msg)
    out = model.graph.output[0].type.tensor_type.shape.dim if model.graph.output else []
    return _dims(dims), _dims(out), inputs[0].name


def _dims(dims: Any) -> tuple[int | None, ...]:
    return tuple((d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None) for d in dims)
