"""Check a .tflite file before LiteRT or TFLite Micro sees it.

`edgeopt.analysis.tflite_graph.read_tflite` already walks every table with bounds
checks (offsets, vector lengths, tensor/buffer/opcode indices). Fuzzing showed
that LiteRT also crashes (SIGSEGV) on files that are *structurally* fine but
semantically impossible, so this module adds the semantic checks we can make
without an op-by-op table of the runtime's kernels:

- quantization: zero points inside the tensor type's range, finite positive
  scales, one scale per tensor or one per channel of `quantized_dimension`;
- shapes: no negative static dimensions, no tensor above MAX_TENSOR_BYTES;
- constants: the buffer holds exactly `elements * itemsize` bytes.

What this cannot catch (e.g. a missing input that a kernel dereferences) is
caught by the child-process probe (`edgeopt.runtime.probe`). Pure Python, no TF.
"""

from __future__ import annotations

import math
from pathlib import Path

from edgeopt.errors import ModelFileError

MAX_TENSOR_BYTES = 2**31 - 1  # TFLite sizes tensors with int32 dimensions; larger means a corrupt shape

_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1, "int16": 2,
             "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1, "complex64": 8,
             "complex128": 16}
_QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int4": (-8, 7), "uint4": (0, 15)}


def verify_tflite(path: Path | bytes) -> None:
    """Raise ModelFileError (one line) if `path` is not a sound .tflite model."""
    from edgeopt.analysis.tflite_graph import read_tflite

    if isinstance(path, bytes):
        data, label = path, "<bytes>"
    else:
        from edgeopt.input_files import read_regular

        label = str(path)
        data = read_regular(Path(path), "model", ModelFileError)
    try:
        graph = read_tflite(data)
    except ModelFileError as exc:
        raise ModelFileError(str(exc).replace("<bytes>", label, 1)) from None
    sparse = _sparse_tensors(data)
    for s, sg in enumerate(graph.subgraphs):
        for t in sg.tensors:
            where = f"subgraph {s} tensor {t.index} ('{t.name[:60]}')"
            _check_shape(label, where, t.shape, t.shape_signature, t.dtype)
            _check_quant(label, where, t)
            if (s, t.index) not in sparse:
                _check_constant(label, where, t)


def _sparse_tensors(data: bytes) -> set[tuple[int, int]]:
    """(subgraph, tensor) of sparse constants, whose buffers are smaller than their dense shape."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    found = set()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for i in range(sg.TensorsLength()):
            if sg.Tensors(i).Sparsity() is not None:
                found.add((s, i))
    return found


def _fail(label: str, what: str) -> ModelFileError:
    return ModelFileError(f"{label}: corrupt .tflite model: {what}; re-export the model")


def _dims(shape: tuple[int, ...], limit: int = 8) -> str:
    """A shape for a message; a corrupt file can claim thousands of dimensions."""
    if len(shape) <= limit:
        return str(list(shape))
    return f"[{', '.join(map(str, shape[:limit - 1]))}, ... {shape[-1]}] (rank {len(shape)})"


def _check_shape(label: str, where: str, shape: tuple[int, ...], sig: tuple[int, ...], dtype: str) -> None:
    if any(d < 0 for d in shape):
        raise _fail(label, f"{where} has a negative dimension {_dims(shape)}")
    if any(d < -1 for d in sig):
        raise _fail(label, f"{where} has an invalid shape signature {_dims(sig)}")
    if len(sig) != len(shape):
        raise _fail(label, f"{where} has a shape signature of rank {len(sig)} for a shape of rank {len(shape)}")
    if any(g != -1 and g != d for g, d in zip(sig, shape, strict=True)):
        raise _fail(label, f"{where} has shape {_dims(shape)} but shape signature {_dims(sig)}")
    if math.prod(shape) * _ITEMSIZE.get(dtype, 1) > MAX_TENSOR_BYTES:
        raise _fail(label, f"{where} has an impossible shape {_dims(shape)} (over 2 GB)")


def _check_quant(label: str, where: str, t: object) -> None:
    scale: tuple[float, ...] = t.scale  # type: ignore[attr-defined]
    zp: tuple[int, ...] = t.zero_point  # type: ignore[attr-defined]
    if not scale and not zp:
        return
    if any(not math.isfinite(s) or s < 0 for s in scale):
        raise _fail(label, f"{where} has an invalid quantization scale")
    if zp and scale and len(zp) != len(scale):
        raise _fail(label, f"{where} has {len(scale)} scales but {len(zp)} zero points")
    rng = _QRANGE.get(t.dtype)  # type: ignore[attr-defined]
    if rng is not None and any(not rng[0] <= z <= rng[1] for z in zp):
        raise _fail(label, f"{where} has a zero point outside the {t.dtype} range")  # type: ignore[attr-defined]
    shape: tuple[int, ...] = t.shape  # type: ignore[attr-defined]
    if len(scale) > 1:
        dim = t.quantized_dimension  # type: ignore[attr-defined]
        if not 0 <= dim < len(shape) or shape[dim] != len(scale):
            raise _fail(label, f"{where} has {len(scale)} per-channel scales for shape {_dims(shape)} "
                               f"on dimension {dim}")


def _check_constant(label: str, where: str, t: object) -> None:
    nbytes: int = t.const_bytes  # type: ignore[attr-defined]
    item = _ITEMSIZE.get(t.dtype)  # type: ignore[attr-defined]
    if nbytes == 0 or item is None:
        return  # activations, strings, packed int4 and exotic types are left to the runtime probe
    want = math.prod(t.shape) * item  # type: ignore[attr-defined]
    if nbytes < want:  # a larger buffer is harmless: kernels read `want` bytes
        raise _fail(label, f"{where} holds {nbytes} bytes of data for {want} bytes of {t.dtype} "  # type: ignore[attr-defined]
                           f"{_dims(t.shape)}")  # type: ignore[attr-defined]
