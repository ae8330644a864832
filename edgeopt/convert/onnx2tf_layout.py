"""Where each tensor of an ONNX model went in its onnx2tf .tflite: data in the ONNX layout moved to the .tflite's.

onnx2tf makes image inputs channels-last (NCHW -> NHWC) and may rename tensors; the build keeps the user's data
in the ONNX layout and moves it here, per input by its permutation, and moves each .tflite output back, so every
output is compared by its ONNX name. A float .tflite given as the build input has the identity layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.convert.onnx2tf import Onnx2tfConversion, TensorMatch
from edgeopt.data.tensors import Batch, IOSpec


@dataclass(frozen=True)
class Moved:
    """One tensor: its ONNX name, the .tflite tensor (name, signature key) and the ONNX -> .tflite permutation."""

    onnx_name: str
    tflite_name: str
    key: str
    onnx_shape: tuple[int | None, ...]
    tflite_shape: tuple[int, ...]
    perm: tuple[int, ...] | None

    @property
    def moves(self) -> bool:
        return self.perm is not None and self.perm != tuple(range(len(self.perm)))

    @property
    def layout(self) -> str:
        """How a firmware engineer feeds / reads it: 'NHWC (moved from NCHW)' or 'as the ONNX model'."""
        if not self.moves:
            return "as the source model"
        letters = {3: "NCW", 4: "NCHW", 5: "NCDHW"}.get(len(self.onnx_shape))
        assert self.perm is not None
        if letters is None:
            return f"permuted {list(self.perm)} from the source model"
        return f"{''.join(letters[i] for i in self.perm)} (the source model's {letters})"


@dataclass(frozen=True)
class TfliteLayout:
    inputs: tuple[Moved, ...]
    outputs: tuple[Moved, ...]

    @classmethod
    def of(cls, conversion: Onnx2tfConversion) -> TfliteLayout:
        def moved(ms: Sequence[TensorMatch]) -> tuple[Moved, ...]:
            return tuple(Moved(m.onnx_name, m.tflite_name, m.signature_key, m.onnx_shape, m.tflite_shape, m.perm)
                         for m in ms)
        return cls(moved(conversion.inputs), moved(conversion.outputs))

    def feed(self, x: Batch) -> Batch:
        """`x` (one array, or arrays by ONNX input name, in the ONNX layout) as the .tflite takes it: one array, or
        arrays by the .tflite's signature keys."""
        if isinstance(x, np.ndarray):
            return _move(x, self.inputs[0].perm) if len(self.inputs) == 1 else x
        by_name = {m.onnx_name: m for m in self.inputs}
        out = {}
        for name, a in x.items():
            m = by_name.get(name)
            out[m.key if m is not None else name] = _move(a, m.perm if m is not None else None)
        return out

    def c_layouts(self, artifact: Path) -> tuple[tuple[str | None, ...], tuple[str | None, ...]]:
        """Each input's and output's dimension order in `artifact` (the converted model, quantized or not), in the
        artifact's order: found by tensor name or signature key (a quantizer may rename an I/O tensor), else by
        position when there is one."""
        from edgeopt.analysis.tflite_graph import read_tflite

        graph = read_tflite(artifact)

        def find(tensors: Sequence[object], moved: tuple[Moved, ...]) -> tuple[str | None, ...]:
            out: list[str | None] = []
            for t in tensors:
                name = str(getattr(t, "name", ""))
                hit = next((m for m in moved if name in (m.tflite_name, m.key)
                            or name.removesuffix("_quantized").removesuffix("_dequant") in (m.tflite_name, m.key)), None)
                if hit is None and len(moved) == 1 == len(tensors):
                    hit = moved[0]
                out.append(None if hit is None else _c_layout(hit))
            return tuple(out)

        return find(graph.inputs, self.inputs), find(graph.outputs, self.outputs)

    def output_specs(self, outputs: Sequence[IOSpec]) -> tuple[IOSpec, ...]:
        """The source model's outputs under their .tflite names (so a .tflite output is found by name)."""
        by_name = {m.onnx_name: m for m in self.outputs}
        def spec(o: IOSpec, m: Moved) -> IOSpec:
            perm = m.perm if m.moves and m.perm is not None and len(m.perm) == len(o.shape) else None
            return IOSpec(m.key, o.shape if perm is None else tuple(o.shape[i] for i in perm), o.dtype)

        return tuple(spec(o, by_name[o.name]) if o.name in by_name else o for o in outputs)

    def back(self, outputs: Sequence[IOSpec], arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """.tflite outputs (in `outputs` order) moved back to the ONNX layout."""
        by_name = {m.onnx_name: m for m in self.outputs}
        return [_move(a, _inverse(by_name[o.name].perm)) if o.name in by_name else a
                for o, a in zip(outputs, arrays, strict=True)]


def _c_layout(m: Moved) -> str:
    """For a C header (no quotes): "NHWC (ONNX model: NCHW)", "NCHW (as in the ONNX model)"."""
    letters = {3: "NCW", 4: "NCHW", 5: "NCDHW"}.get(len(m.onnx_shape))
    if not m.moves:
        return f"{letters} (as in the ONNX model)" if letters else "as in the ONNX model"
    return m.layout.replace(f"(the source model's {letters})", f"(ONNX model: {letters})")


def _move(a: np.ndarray, perm: tuple[int, ...] | None) -> np.ndarray:
    if perm is None or perm == tuple(range(len(perm))) or a.ndim != len(perm):
        return a
    return np.ascontiguousarray(a.transpose(perm))


def _inverse(perm: tuple[int, ...] | None) -> tuple[int, ...] | None:
    return None if perm is None else tuple(int(i) for i in np.argsort(perm))
