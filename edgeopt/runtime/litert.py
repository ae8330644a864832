"""LiteRT backend: ai_edge_litert, then tflite_runtime, then tf.lite as a last resort."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import ModelFileError, RuntimeUnavailableError, UnsupportedOpError, first_line
from edgeopt.runtime.base import RunnerOptions, RuntimeName, TensorInfo

# (module holding Interpreter, distribution name for the version)
IMPLEMENTATIONS = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)

# `delegate` of a runner whose model XNNPACK would not prepare: it runs on the builtin kernels.
XNNPACK_REFUSED = "none (xnnpack refused)"


def _interpreter_module() -> tuple[Any, str, str]:
    from importlib import metadata

    for modname, dist in IMPLEMENTATIONS:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "unknown"
        impl = modname.rsplit(".interpreter", 1)[0]
        return mod, impl, version
    msg = "no TFLite runtime found; install one with: pip install ai-edge-litert"
    raise RuntimeUnavailableError(msg)


def _info(d: dict[str, Any]) -> TensorInfo:
    scale, zp = d.get("quantization", (0.0, 0))
    shape = tuple(int(s) for s in d.get("shape_signature", d["shape"]))
    return TensorInfo(name=d["name"], shape=shape, dtype=np.dtype(d["dtype"]).name,
                      scale=float(scale), zero_point=int(zp))


class LiteRTRunner:
    runtime = RuntimeName.LITERT

    def __init__(self, path: Path, options: RunnerOptions) -> None:
        mod, self.implementation, self.version = _interpreter_module()
        kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": options.threads}
        if options.reference_kernels:
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_REF
        elif not options.xnnpack:
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.delegate = "none (reference kernels)" if options.reference_kernels else "xnnpack" if options.xnnpack else "none"
        try:
            self._it = _open(mod, kwargs)
        except (ValueError, RuntimeError) as exc:
            if not (options.xnnpack and not options.reference_kernels and "XNNPACK" in str(exc)):
                raise _translate(path, exc) from None
            # XNNPACK refuses some valid models (e.g. an int8 scale from an activation that was constant
            # during calibration). LiteRT's builtin kernels still run them: say so, never hide it.
            kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            try:
                self._it = _open(mod, kwargs)
            except (ValueError, RuntimeError) as exc2:
                raise _translate(path, exc2) from None
            self.delegate = XNNPACK_REFUSED
        self.inputs = tuple(_info(d) for d in self._it.get_input_details())
        self.outputs = tuple(_info(d) for d in self._it.get_output_details())
        self._in_idx = [d["index"] for d in self._it.get_input_details()]
        self._out_idx = [d["index"] for d in self._it.get_output_details()]
        self._shapes = [tuple(int(s) for s in d["shape"]) for d in self._it.get_input_details()]
        self.input_keys, self.output_keys = _signature_keys(self._it, self._in_idx, self._out_idx, self.inputs,
                                                            self.outputs)
        # The interpreter's own bound method: the benchmark loop adds no Python frame of ours.
        self.invoke = self._it.invoke

    def run(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        self.set_inputs(feeds)
        self._it.invoke()
        return [self._it.get_tensor(idx).copy() for idx in self._out_idx]

    def set_inputs(self, feeds: list[np.ndarray]) -> None:
        it = self._it
        for i, (idx, x) in enumerate(zip(self._in_idx, feeds, strict=True)):
            if tuple(x.shape) != self._shapes[i]:
                it.resize_tensor_input(idx, list(x.shape))
                it.allocate_tensors()
                self._shapes[i] = tuple(x.shape)
            it.set_tensor(idx, x)


def _signature_keys(it: Any, in_idx: list[int], out_idx: list[int], inputs: tuple[TensorInfo, ...],
                    outputs: tuple[TensorInfo, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The name of every input and output as the model's only signature names it (the converter reorders
    tensors, the signature keeps the SavedModel's names: input names, `output_0`, `output_1`, ... in Keras
    order); the tensor names when there is no single signature."""
    plain = tuple(t.name for t in inputs), tuple(t.name for t in outputs)
    try:
        sigs = it._get_full_signature_list()  # {key: {"inputs": {name: tensor index}, "outputs": {...}}}
    except Exception:  # noqa: BLE001 - an implementation without signatures
        return plain
    if not isinstance(sigs, dict) or len(sigs) != 1:
        return plain
    sig = next(iter(sigs.values()))
    by_in = {int(v): k for k, v in sig.get("inputs", {}).items()}
    by_out = {int(v): k for k, v in sig.get("outputs", {}).items()}
    if set(by_in) != set(in_idx) or set(by_out) != set(out_idx):
        return plain
    return tuple(by_in[i] for i in in_idx), tuple(by_out[i] for i in out_idx)


def _open(mod: Any, kwargs: dict[str, Any]) -> Any:
    from edgeopt.runtime.quiet import native_quiet

    with native_quiet():
        it = mod.Interpreter(**kwargs)
        it.allocate_tensors()
    return it


def _translate(path: Path, exc: Exception) -> Exception:
    text = str(exc)
    if "Didn't find op for builtin opcode" in text or "Encountered unresolved custom op" in text:
        import re

        ops = tuple(sorted(set(re.findall(r"(?:builtin opcode '|custom op: )([A-Za-z0-9_]+)", text))))
        return UnsupportedOpError(f"{path}: LiteRT lacks op(s) {', '.join(ops) or '?'}; rebuild with builtin ops only or upgrade the runtime", ops)
    return ModelFileError(f"{path}: LiteRT cannot load the model: {first_line(exc)}")
