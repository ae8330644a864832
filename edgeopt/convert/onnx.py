"""Keras -> ONNX with tf2onnx, with an explicit input signature (dynamic batch).

Two gaps of tf2onnx with Keras 3 are closed here:
- tensors a layer holds as constants (a `Normalization` layer's mean and
  variance) are captured by the traced function and left by tf2onnx as extra
  graph inputs; they are folded back into initializers with their values;
- Keras runs grouped convolutions (`groups > 1`) through an XLA-compiled inner
  function, which tf2onnx leaves as an opaque `StatefulPartitionedCall` node;
  while tracing for export the convolution is emitted as a plain TF Conv2D,
  which tf2onnx converts to an ONNX `Conv` with `group`.
TensorFlow ops tf2onnx copies through unchanged (exact GELU's `Erfc`) are rewritten with ONNX ops
(edgeopt.convert.onnx_rewrite).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from edgeopt.convert.onnx_rewrite import rewrite_non_onnx_ops
from edgeopt.convert.savedmodel import input_specs, output_specs
from edgeopt.errors import ConversionError, RuntimeUnavailableError, cause_of


def keras_to_onnx(model: Any, opset: int) -> bytes:
    """Return the serialized ONNX model; deterministic for the same weights."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    try:
        import tf2onnx
    except ImportError:
        msg = "ONNX export needs tf2onnx; install it with: pip install 'edgeopt[convert]'"
        raise RuntimeUnavailableError(msg) from None
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    ins = input_specs(model)
    specs = [tf.TensorSpec((None, *s.shape[1:]), tf.as_dtype(s.dtype), name=s.name) for s in ins]

    @tf.function
    def forward(*xs: Any) -> Any:
        return model(xs[0] if len(xs) == 1 else list(xs), training=False)

    try:
        from edgeopt.runtime.quiet import native_quiet

        with native_quiet(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                _grouped_conv_without_xla():
            captured = _captured_constants(forward.get_concrete_function(*specs))
            proto, _ = tf2onnx.convert.from_function(forward, input_signature=specs, opset=opset)
    except Exception as exc:  # noqa: BLE001
        msg = f"ONNX export failed: {type(exc).__name__}: {cause_of(exc)}"
        raise ConversionError(msg) from None
    _fold_captured_inputs(proto, captured)
    rewrite_non_onnx_ops(proto)  # exact GELU's Erfc -> 1 - Erf
    outs = output_specs(model)
    return normalize_onnx(proto, [o.name for o in outs] if len(outs) > 1 else None).SerializeToString()


def _captured_constants(concrete: Any) -> dict[str, Any]:
    """Placeholder name -> value of the constant tensors the traced function captured (not variables)."""
    import tensorflow as tf

    out = {}
    for external, internal in concrete.graph.captures:
        if internal.dtype != tf.resource and hasattr(external, "numpy"):
            out[internal.name] = external.numpy()
    return out


def _fold_captured_inputs(proto: Any, captured: dict[str, Any]) -> None:
    """Turn graph inputs that are captured constants into initializers; the model keeps only its data input."""
    from onnx import numpy_helper

    g = proto.graph
    extra = [v for v in g.input if v.name in captured]
    if not extra:
        return
    keep = [v for v in g.input if v.name not in captured]
    del g.input[:]
    g.input.extend(keep)
    used = {x for n in g.node for x in n.input}  # tf2onnx may have folded some of them away already
    g.initializer.extend(numpy_helper.from_array(captured[v.name], v.name) for v in extra if v.name in used)


@contextlib.contextmanager
def _grouped_conv_without_xla() -> Iterator[None]:
    """While tracing, emit grouped convolutions as one TF Conv2D instead of Keras's XLA-compiled inner function.

    Keras 3 (TensorFlow backend) wraps grouped convolutions in `tf.function(jit_compile=True)` because TF's CPU
    kernel lacks them; the export only traces the graph, never runs it on TF, so the plain op is what we want.
    This replaces `keras.src.backend.tensorflow.nn.conv` for the duration; if Keras moves it, nothing is patched
    and the onnxruntime check after export names the unconverted node.
    """
    try:
        from keras.src.backend.tensorflow import nn as tf_nn
    except ImportError:
        yield
        return
    original = getattr(tf_nn, "conv", None)
    if original is None:
        yield
        return

    def conv(inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid", data_format: Any = None,
             dilation_rate: Any = 1) -> Any:
        import tensorflow as tf

        fmt = tf_nn.backend.standardize_data_format(data_format)
        channels = inputs.shape[-1] if fmt == "channels_last" else inputs.shape[1]
        if len(inputs.shape) != 4 or channels is None or channels == kernel.shape[-2]:
            return original(inputs, kernel, strides, padding, data_format, dilation_rate)
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(),
                                 data_format=tf_nn._convert_data_format(fmt, 4), dilations=dilation_rate)

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = original


def normalize_onnx(proto: Any, output_names: list[str] | None = None) -> Any:
    """Make the output names and metadata stable so the bytes are reproducible: one output is `output`,
    several take `output_names` (the Keras output names, in the traced function's order) when given."""
    proto.producer_name = "edgeopt+tf2onnx"
    proto.producer_version = ""
    proto.doc_string = ""
    proto.graph.doc_string = ""
    if len(proto.graph.output) == 1:
        old = proto.graph.output[0].name
        if old != "output":
            for node in proto.graph.node:
                node.output[:] = ["output" if o == old else o for o in node.output]
                node.input[:] = ["output" if i == old else i for i in node.input]
            proto.graph.output[0].name = "output"
    elif output_names is not None and len(output_names) == len(proto.graph.output):
        for value, new in zip(proto.graph.output, output_names, strict=True):
            _rename(proto, value.name, new)
    _canonical_names(proto)
    _canonical_dims(proto)
    return proto


def _rename(proto: Any, old: str, new: str) -> None:
    if old == new:
        return
    for node in proto.graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for value in proto.graph.output:
        if value.name == old:
            value.name = new


def _canonical_dims(proto: Any) -> None:
    """Name symbolic dimensions by position: tf2onnx's `unk__<counter>` names depend on what ran before."""
    g = proto.graph
    for value in [*g.input, *g.output, *g.value_info]:
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param") and dim.dim_param.startswith("unk__"):
                dim.dim_param = "batch" if i == 0 else f"dim{i}"


_GENERATED = re.compile(r"__\d+")


def _canonical_names(proto: Any) -> None:
    """Renumber tf2onnx's generated names (`NAME__<counter>`) by first use, and order initializers by first use.

    tf2onnx numbers new names with a process-wide counter and, when it merges
    duplicate constants, keeps whichever its (hash-randomised) set iteration meets
    first; so two runs give the same graph under different names and initializer
    orders. Renaming generated names by position makes the bytes reproducible.
    Graphs with subgraphs (If/Loop bodies may refer to outer names) are left as they are.
    """
    g = proto.graph
    if any(a.g.node or a.graphs for n in g.node for a in n.attribute):
        return
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    inits = {t.name for t in g.initializer}
    mapping: dict[str, str] = {}

    def canon(name: str) -> str:
        if not name or name in keep or not _GENERATED.search(name):
            return name
        if name not in mapping:
            base = "const" if name in inits else _GENERATED.sub("", name)
            mapping[name] = f"{base}__e{len(mapping)}"
        return mapping[name]

    first_use: dict[str, int] = {}  # position of the first reference, over all node inputs in order
    for i, node in enumerate(g.node):
        for x in node.input:
            first_use.setdefault(x, len(first_use))
        node.input[:] = [canon(x) for x in node.input]
        node.output[:] = [canon(x) for x in node.output]
        if _GENERATED.search(node.name):
            node.name = f"{_GENERATED.sub('', node.name)}__n{i}"
    for vi in g.value_info:
        vi.name = canon(vi.name)
    ordered = sorted(g.initializer, key=lambda t: (first_use.get(t.name, len(first_use)), t.name))
    for t in ordered:
        t.name = canon(t.name)
    ordered = [type(t).FromString(t.SerializeToString()) for t in ordered]
    del g.initializer[:]
    g.initializer.extend(ordered)
