"""How a firmware engineer feeds and reads a .tflite: per input and output its shape, element type, quantization
(real = scale x (q - zero_point)) and dimension order, and where that order is known from.

An artifact built from an ONNX model has the order in its build's report (stages.conversion: NHWC where onnx2tf
moved the source model's NCHW, with the source's shape). The report is used when the .tflite sits in its build
folder and that folder's manifest.json lists this very file and that report.json with their sha256 (a report of
another file, or a copied .tflite, says nothing about this one). Otherwise the order is the .tflite's own, and
said so: its shapes, types and quantization are read from the file itself either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from edgeopt.analysis.tflite_graph import TfliteGraph, TfliteTensor
from edgeopt.errors import InputError
from edgeopt.input_files import read_regular

MAX_JSON_BYTES = 16 << 20
OWN = "as in the .tflite (its own order: no build report beside it says more)"


class Role(StrEnum):
    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True)
class IoTensor:
    role: Role
    index: int
    name: str
    shape: tuple[int, ...]  # the artifact's, -1 for a dynamic dimension
    dtype: str
    scale: float  # 0.0: not quantized (the first channel's when per-channel)
    zero_point: int
    layout: str  # "NHWC (the source model's NCHW)", "as the source model", or OWN
    source_name: str | None = None  # the source model's tensor, when a build report says
    source_shape: tuple[int | None, ...] | None = None

    def quantization(self) -> str:
        if not self.scale:
            return f"{self.dtype}, not quantized"
        return f"{self.dtype}, real = {self.scale:.9g} x (q - {self.zero_point})"

    def describe(self) -> str:
        src = "" if self.source_name is None else \
            f"; source '{self.source_name}' {_dims(self.source_shape or ())}"
        return f"{self.role} {self.index} '{self.name}' {_dims(self.shape)}: {self.layout}{src}; {self.quantization()}"

    def to_dict(self) -> dict[str, Any]:
        return {"role": str(self.role), "index": self.index, "name": self.name, "shape": list(self.shape),
                "dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point, "layout": self.layout,
                "source_name": self.source_name,
                "source_shape": None if self.source_shape is None else list(self.source_shape)}


@dataclass(frozen=True)
class IoLayout:
    tensors: tuple[IoTensor, ...]
    origin: str  # where the dimension order comes from

    def c_layouts(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The LAYOUT string of each input and output, for the C header (edgeopt.mcu.c_export)."""
        def one(t: IoTensor) -> str:
            layout = t.layout.replace("the source model's ", "source model: ")  # no quote marks in C text
            return layout if t.source_shape is None else f"{layout}; source shape {_dims(t.source_shape)}"

        return (tuple(one(t) for t in self.tensors if t.role is Role.INPUT),
                tuple(one(t) for t in self.tensors if t.role is Role.OUTPUT))

    def c_notes(self) -> tuple[str, ...]:
        """Comment lines for the C header: where the order comes from, and every tensor in one line."""
        return (f"I/O layout {self.origin}.",
                *(t.describe().replace("the source model's ", "source model: ").replace("'", "") for t in self.tensors))

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "tensors": [t.to_dict() for t in self.tensors]}


def io_layout(model: Path, graph: TfliteGraph) -> IoLayout:
    """The I/O of `model` (already read into `graph`), with the dimension order of its build report when it has one."""
    found = _build_report(Path(model))
    layouts: dict[str, list[dict[str, Any]]] = {}
    origin = "from the .tflite itself: no build report.json with a manifest.json listing this file beside it"
    if found is not None:
        report, why = found
        conversion = (report.get("stages") or {}).get("conversion") if isinstance(report, dict) else None
        if isinstance(conversion, dict):
            layouts = {"input": _entries(conversion.get("inputs_layout")),
                       "output": _entries(conversion.get("outputs_layout"))}
            origin = f"from {why}; converted by {conversion.get('converter', 'its converter')}"
        else:
            origin = f"from the .tflite itself ({why} has no conversion stage: the model was not converted)"
    tensors = [*_tensors(Role.INPUT, graph.inputs, layouts.get("input", [])),
               *_tensors(Role.OUTPUT, graph.outputs, layouts.get("output", []))]
    return IoLayout(tuple(tensors), origin)


def _tensors(role: Role, tensors: Sequence[TfliteTensor], entries: list[dict[str, Any]]) -> list[IoTensor]:
    out = []
    for i, t in enumerate(tensors):
        hit = _match(t.name, entries, len(tensors))
        shape = tuple(t.shape_signature if len(t.shape_signature) == len(t.shape) else t.shape)
        scale = float(t.scale[0]) if t.quantized else 0.0
        zp = int(t.zero_point[0]) if t.quantized and t.zero_point else 0
        if hit is None:
            out.append(IoTensor(role, i, t.name, shape, t.dtype, scale, zp, OWN if not entries else
                                "as in the .tflite (the build report does not name this tensor)"))
            continue
        src = tuple(None if d is None else int(d) for d in hit["source_shape"])
        out.append(IoTensor(role, i, t.name, shape, t.dtype, scale, zp, str(hit["layout"]), str(hit["name"]), src))
    return out


def _match(name: str, entries: list[dict[str, Any]], count: int) -> dict[str, Any] | None:
    """The report entry of the artifact tensor `name`: by name (a quantizer may add _quantized / _dequant), else the
    only one of a single-tensor side."""
    plain = name.removesuffix("_quantized").removesuffix("_dequant")
    hit = next((e for e in entries if name == e["artifact_name"] or plain == e["artifact_name"]), None)
    if hit is None and len(entries) == 1 == count:
        hit = entries[0]
    return hit


def _entries(value: Any) -> list[dict[str, Any]]:
    """The well-formed TensorLayout entries of a report (anything else is ignored, not trusted)."""
    if not isinstance(value, list):
        return []
    ok = []
    for e in value:
        if (isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("artifact_name"), str)
                and isinstance(e.get("layout"), str) and isinstance(e.get("source_shape"), list)
                and all(d is None or isinstance(d, int) for d in e["source_shape"])):
            ok.append(e)
    return ok


def _build_report(model: Path) -> tuple[Any, str] | None:
    """report.json beside `model` and the words saying so, when manifest.json beside it lists both files with their
    sha256 as they are now; None otherwise."""
    folder = model.parent
    manifest_path, report_path = folder / "manifest.json", folder / "report.json"
    if not (manifest_path.is_file() and report_path.is_file()):
        return None
    try:
        manifest = json.loads(read_regular(manifest_path, "manifest", InputError, MAX_JSON_BYTES))
        report_bytes = read_regular(report_path, "build report", InputError, MAX_JSON_BYTES)
        model_bytes = read_regular(model, "model", InputError)
        artifacts = manifest.get("artifacts") if isinstance(manifest, dict) else None
        if not isinstance(artifacts, dict):
            return None
        for name, data in ((model.name, model_bytes), ("report.json", report_bytes)):
            entry = artifacts.get(name)
            if not isinstance(entry, dict) or entry.get("sha256") != hashlib.sha256(data).hexdigest():
                return None
        return json.loads(report_bytes), f"report.json beside {model.name} (its build, checked by manifest.json)"
    except (InputError, ValueError, UnicodeDecodeError):
        return None  # unreadable or not ours: the .tflite's own order is said instead


def _dims(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None or d < 0 else str(d) for d in shape) + "]" if shape else "[] (scalar)"
