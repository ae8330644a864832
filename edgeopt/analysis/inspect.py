"""What is inside a model file: inputs, outputs, ops, params and MACs per layer.

.tflite and .onnx are read without TensorFlow (edgeopt.analysis.tflite_graph,
edgeopt.analysis.onnx_graph); Keras formats load Keras (the `convert` extra).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.errors import InputError
from edgeopt.load.formats import ModelFormat, detect_format
from edgeopt.load.quantized_onnx import QuantizedGraph, quantized_graph
from edgeopt.runtime.base import TensorInfo


@dataclass(frozen=True)
class LayerInfo:
    name: str
    op: str
    output_shape: tuple[int, ...]  # -1 for a dynamic dimension
    params: int
    macs: int
    scope: str = ""  # "" at top level; else the enclosing control-flow body (its MACs are in the parent's)


@dataclass(frozen=True)
class ModelInfo:
    path: str
    format: str
    bytes: int
    params: int
    macs: int  # per single sample
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    layers: tuple[LayerInfo, ...]
    op_counts: dict[str, int]
    details: dict[str, Any] = field(default_factory=dict)  # format specifics: opsets, schema version, producer...
    notes: tuple[str, ...] = ()  # how control flow and recurrent ops were counted
    quantized: QuantizedGraph | None = None  # an ONNX model already quantized: its kind and quantized nodes

    def to_dict(self) -> dict[str, Any]:
        def tensor(t: TensorInfo) -> dict[str, Any]:
            d: dict[str, Any] = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype}
            if t.scale:
                d.update(scale=t.scale, zero_point=t.zero_point)
            return d

        return {
            "path": self.path, "format": self.format, "bytes": self.bytes, "params": self.params, "macs": self.macs,
            "inputs": [tensor(t) for t in self.inputs], "outputs": [tensor(t) for t in self.outputs],
            "layers": [{"name": x.name, "op": x.op, "output_shape": list(x.output_shape), "params": x.params,
                        "macs": x.macs, "scope": x.scope} for x in self.layers],
            "op_counts": dict(self.op_counts), "details": dict(self.details), "notes": list(self.notes),
            "quantized": None if self.quantized is None else self.quantized.to_dict(),
        }


def inspect_model(path: Path, shapes: Mapping[str, tuple[int, ...]] | None = None, unsafe: bool = False) -> ModelInfo:
    """`shapes`: sizes for symbolic input dimensions (ONNX only), so MACs are counted for them; `unsafe`: a Keras
    model loads with safe mode off (--unsafe-load)."""
    path = Path(path)
    fmt = detect_format(path)
    if shapes and fmt is not ModelFormat.ONNX:
        msg = f"{path}: --shape applies to .onnx models (a {fmt} model's MACs are counted for its own shapes)"
        raise InputError(msg)
    if fmt is ModelFormat.TFLITE:
        return _tflite(path)
    if fmt is ModelFormat.ONNX:
        return _onnx(path, shapes)
    if fmt is ModelFormat.PT2:
        msg = (f"{path}: inspect reads .keras, .h5, SavedModel, .tflite and .onnx models; export the module to ONNX "
               "with edgeopt.from_torch and inspect that, or build the .pt2 (edgeopt build)")
        raise InputError(msg)
    from edgeopt.sandbox.runner import run_model_code

    return run_model_code("edgeopt.analysis.inspect:keras_info",  # type: ignore[no-any-return]
                          {"path": path, "fmt": fmt, "unsafe": unsafe},
                          ModelInfo)  # loading a Keras model or SavedModel runs its code: in the sandbox


def keras_info(path: Path, fmt: ModelFormat, unsafe: bool = False) -> ModelInfo:
    """inspect_model of a Keras file or SavedModel in this process (the sandbox's side)."""
    return _keras(path, fmt, unsafe)


def _tflite(path: Path) -> ModelInfo:
    from edgeopt.analysis.tflite_graph import read_tflite

    g = read_tflite(path)

    def info(t: Any) -> TensorInfo:
        quant = t.quantized and len(t.scale) == 1
        return TensorInfo(name=t.name, shape=tuple(t.shape_signature), dtype=t.dtype,
                          scale=float(t.scale[0]) if quant else 0.0, zero_point=int(t.zero_point[0]) if quant and t.zero_point else 0)

    layers = []
    for sg_index, sg in enumerate(g.subgraphs):
        for op in sg.operators:
            out = sg.tensors[op.outputs[0]] if op.outputs and op.outputs[0] >= 0 else None
            name = out.name if out is not None else f"op_{op.index}"
            layers.append(LayerInfo(name=name if sg_index == 0 else f"{sg.name or sg_index}/{name}", op=op.op,
                                    output_shape=tuple(out.shape_signature) if out is not None else (),
                                    params=op.params, macs=op.macs))
    return ModelInfo(path=str(path), format=str(ModelFormat.TFLITE), bytes=g.size_bytes, params=g.params, macs=g.macs,
                     inputs=tuple(info(t) for t in g.inputs), outputs=tuple(info(t) for t in g.outputs),
                     layers=tuple(layers), op_counts=g.op_counts,
                     details={"schema_version": g.schema_version, "subgraphs": len(g.subgraphs),
                              "description": g.description, "param_bytes": g.param_bytes})


def _onnx(path: Path, shapes: Mapping[str, tuple[int, ...]] | None = None) -> ModelInfo:
    from edgeopt.analysis.onnx_graph import read_onnx

    g = read_onnx(path, shapes)
    layers = tuple(LayerInfo(n.name, n.op, n.output_shape, n.params, n.macs, n.scope) for n in g.nodes)
    quantized = quantized_graph(n.op for n in g.nodes)
    return ModelInfo(path=str(path), format=str(ModelFormat.ONNX), bytes=g.size_bytes, params=g.params, macs=g.macs,
                     inputs=tuple(TensorInfo(t.name, t.shape, t.dtype) for t in g.inputs),
                     outputs=tuple(TensorInfo(t.name, t.shape, t.dtype) for t in g.outputs),
                     layers=layers, op_counts=g.op_counts,
                     details={"ir_version": g.ir_version, "opsets": g.opsets, "producer": g.producer,
                              "shapes_inferred": g.shapes_inferred}, notes=g.notes, quantized=quantized)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _keras(path: Path, fmt: ModelFormat, unsafe: bool = False) -> ModelInfo:
    from edgeopt.load.keras_model import load_keras

    model = load_keras(path, unsafe)

    def shape(s: Any) -> tuple[int, ...]:
        return tuple(-1 if d is None else int(d) for d in s)

    def tinfo(t: Any) -> TensorInfo:
        dt = getattr(t, "dtype", "float32")
        return TensorInfo(name=str(getattr(t, "name", "")), shape=shape(t.shape), dtype=str(getattr(dt, "name", dt)))

    try:
        from edgeopt.analysis.keras_stats import keras_model_stats
    except ImportError:  # pragma: no cover - keras_stats ships with the package
        keras_model_stats = None  # type: ignore[assignment]
    if keras_model_stats is not None:
        stats = keras_model_stats(model)
        layers = tuple(LayerInfo(s.name, s.class_name, (-1, *shape(s.output_shape)), s.params, s.macs) for s in stats.layers)
        params, macs = stats.params, stats.macs
    else:
        layers = tuple(LayerInfo(x.name, type(x).__name__, (), int(x.count_params()) if x.weights else 0, 0) for x in model.layers)
        params, macs = int(model.count_params()), 0
    return ModelInfo(path=str(path), format=str(fmt), bytes=_size(path), params=params, macs=macs,
                     inputs=tuple(tinfo(t) for t in getattr(model, "inputs", []) or []),
                     outputs=tuple(tinfo(t) for t in getattr(model, "outputs", []) or []),
                     layers=layers, op_counts=dict(sorted(Counter(x.op for x in layers).items())),
                     details={"keras_class": type(model).__name__})
