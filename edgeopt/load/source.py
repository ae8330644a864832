"""The float source model of a build: a Keras model, a float ONNX model (also one exported from a .pt2) or a
float .tflite."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.data.tensors import Batch, IOSpec
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
    tflite_path: Path | None = None  # for float .tflite sources (run in LiteRT; TensorFlow is never imported)
    qat_model: Any = None  # a model written by `edgeopt qat`: keras_model is then its float (stripped) twin
    output_width: int | None = None  # values per sample of the first output (classes); None if dynamic
    input_dtype: str = "float32"  # numpy name of the first input's element type
    inputs: tuple[IOSpec, ...] = ()  # every input, by the name data and artifacts use for it
    outputs: tuple[IOSpec, ...] = ()  # every output, in the source's order (reference outputs follow it)
    origin: str = ""  # how onnx_path was made when the user gave another format (a .pt2 through torch's exporter)

    @property
    def input_name(self) -> str:
        """The (first) input's name in the source model."""
        return self.inputs[0].name if self.inputs else ""

    @property
    def reference_name(self) -> str:
        if self.tflite_path is not None:
            return "tflite float (LiteRT)"
        if self.keras_model is not None:
            return "keras float (TensorFlow)"
        return "onnx float (onnxruntime)" + (f", exported from {self.origin}" if self.origin else "")

    def params_and_macs(self, shapes: dict[str, tuple[int, ...]] | None = None) -> tuple[int, int]:
        """Parameters and multiply-accumulates per sample of the float source model (ONNX: for `shapes`, the sizes
        of symbolic input dims, edgeopt.runtime.shapes)."""
        if self.keras_model is not None:
            from edgeopt.analysis.keras_stats import keras_model_stats

            stats = keras_model_stats(self.keras_model)
            return int(self.keras_model.count_params()), int(stats.macs)
        if self.tflite_path is not None:
            from edgeopt.analysis.tflite_graph import read_tflite

            graph = read_tflite(self.tflite_path)
            return int(graph.params), int(graph.macs)
        from edgeopt.analysis.onnx_graph import read_onnx

        assert self.onnx_path is not None
        g = read_onnx(self.onnx_path, shapes)
        return int(g.params), int(g.macs)

    def predict(self, x: Batch) -> list[np.ndarray]:
        """Float reference outputs, one float32 array (batch first) per output in `outputs` order."""
        if self.keras_model is not None:
            feed = x if isinstance(x, np.ndarray) else list(x.values())
            out = self.keras_model.predict(feed, batch_size=64, verbose=0)
            outs = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, list | tuple) else [out]
            return [np.asarray(o, np.float32) for o in outs]
        from edgeopt.validate.accuracy import predict_outputs

        path = self.tflite_path or self.onnx_path
        assert path is not None
        return predict_outputs(path, x, self.outputs)


def open_source(path: Path, unsafe_load: bool, work_dir: Path | None = None) -> Source:
    """The float model in `path`. A .pt2 is loaded (only with `unsafe_load`) and exported to ONNX in `work_dir`, a
    private folder that must outlive the Source (a build's staging folder); the Source is then that ONNX model."""
    fmt = detect_format(path)
    if fmt is ModelFormat.PT2:
        if work_dir is None:
            msg = f"{path}: this command reads .keras, .h5, SavedModel or .onnx models; export the .pt2 to ONNX first (edgeopt.from_torch) or build it (edgeopt build)"
            raise InputError(msg)
        from edgeopt.load.torch_export import pt2_to_onnx

        done = pt2_to_onnx(path, work_dir, unsafe_load)
        ins, outs = _onnx_specs(done.onnx_path)
        return Source(path, fmt, ins[0].shape, onnx_path=done.onnx_path, output_width=label_width(outs),
                      input_dtype=ins[0].dtype, inputs=ins, outputs=outs, origin=done.origin)
    if fmt in KERAS_FORMATS:
        from edgeopt.convert.savedmodel import input_specs, output_specs

        model = load_keras(path, unsafe=unsafe_load)
        from edgeopt.qat.export import is_qat_model

        qat_model = None
        if is_qat_model(model):  # a model written by `edgeopt qat`: its float twin is the reference
            from edgeopt.qat.wrap import strip_model

            qat_model, model = model, strip_model(model)
        ins, outs = input_specs(model), output_specs(model)
        return Source(path, fmt, ins[0].shape, keras_model=model, output_width=label_width(outs),
                      input_dtype=ins[0].dtype, qat_model=qat_model, inputs=ins, outputs=outs)
    if fmt is ModelFormat.ONNX:
        ins, outs = _onnx_specs(path)
        return Source(path, fmt, ins[0].shape, onnx_path=path, output_width=label_width(outs),
                      input_dtype=ins[0].dtype, inputs=ins, outputs=outs)
    if fmt is ModelFormat.TFLITE:
        ins, outs = _tflite_specs(path)
        return Source(path, fmt, ins[0].shape, tflite_path=path, output_width=label_width(outs),
                      input_dtype=ins[0].dtype, inputs=ins, outputs=outs)
    msg = f"{path}: build needs a .keras, .h5, SavedModel, .onnx, .pt2 or float .tflite model"
    raise InputError(msg)


def label_width(outputs: tuple[IOSpec, ...]) -> int | None:
    """Values per sample of the output labels score (the first class-score output, else the first); None when
    a dimension is dynamic."""
    from edgeopt.validate.metrics import looks_like_classes

    chosen = next((o for o in outputs if looks_like_classes(o.shape)), outputs[0] if outputs else None)
    return None if chosen is None else _width(chosen.shape[1:])


def _width(dims: tuple[Any, ...]) -> int | None:
    if any(d is None for d in dims):
        return None
    return int(np.prod([int(d) for d in dims])) if dims else 1


def _onnx_specs(path: Path) -> tuple[tuple[IOSpec, ...], tuple[IOSpec, ...]]:
    """(inputs, outputs) of a float ONNX model, batch first, None for dynamic dimensions."""
    import onnx

    from edgeopt.runtime.verify_onnx import verify_onnx

    model = verify_onnx(path)
    refuse_quantized_onnx(path, model)
    init = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if not inputs:
        msg = f"{path}: the model has no data input; give a model that takes an input"
        raise InputError(msg)
    specs = []
    for value in inputs:
        elem = value.type.tensor_type.elem_type
        if elem == onnx.TensorProto.FLOAT:
            dtype = "float32"
        elif elem in _INT_TYPES and len(inputs) > 1:
            dtype = _INT_TYPES[elem]
        else:
            msg = f"{path}: input '{value.name}' is not float32; give a float ONNX model"
            raise InputError(msg)
        specs.append(IOSpec(value.name, _dims(value.type.tensor_type.shape.dim), dtype))
    outs = tuple(IOSpec(o.name, _dims(o.type.tensor_type.shape.dim)) for o in model.graph.output)
    return tuple(specs), outs


def refuse_quantized_onnx(path: Path, model: Any) -> None:
    """An already-quantized ONNX model is bad input to a build: edgeopt quantizes float models."""
    from edgeopt.load.quantized_onnx import op_names, quantized_graph

    found = quantized_graph(op_names(model.graph))
    if found is not None:
        msg = (f"{path}: the model is already quantized ({found.describe()}); edgeopt quantizes float models: build "
               "from the float export of this model, or measure this one as it is with `edgeopt bench`")
        raise InputError(msg)


def _tflite_specs(path: Path) -> tuple[tuple[IOSpec, ...], tuple[IOSpec, ...]]:
    """(inputs, outputs) of a float .tflite by the names LiteRT gives them (its signature's keys); a quantized
    .tflite is refused (there is nothing left to quantize from)."""
    from edgeopt.analysis.tflite_graph import read_tflite
    from edgeopt.runtime import open_runner

    graph = read_tflite(path)
    found = Counter(t.dtype for t in graph.tensors
                    if (t.quantized and t.dtype in ("int8", "uint8", "int16")) or (t.dtype == "float16" and t.is_constant))
    if found:
        what = ", ".join(f"{n} {'quantized' if dtype != 'float16' else 'constant'} {dtype} tensor{'s' if n != 1 else ''}"
                         for dtype, n in sorted(found.items()))
        msg = (f"{path}: the .tflite is already quantized ({what}); build from its float32 .tflite (or the Keras/ONNX "
               "model), or measure this one as it is with `edgeopt bench`")
        raise InputError(msg)
    runner = open_runner(path)  # verified and probed in a child before LiteRT reads it here
    ins = tuple(IOSpec(k, tuple(None if d < 0 else d for d in i.shape), i.dtype)
                for k, i in zip(runner.input_keys, runner.inputs, strict=True))
    outs = tuple(IOSpec(k, tuple(None if d < 0 else d for d in o.shape), o.dtype)
                 for k, o in zip(runner.output_keys, runner.outputs, strict=True))
    if not ins or any(s.dtype != "float32" for s in ins):
        msg = f"{path}: the .tflite's inputs are not all float32; give a float .tflite"
        raise InputError(msg)
    return ins, outs


_INT_TYPES = {6: "int32", 7: "int64"}  # onnx.TensorProto.INT32 / INT64: ids or sizes beside a float input


def _dims(dims: Any) -> tuple[int | None, ...]:
    return tuple((d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None) for d in dims)
