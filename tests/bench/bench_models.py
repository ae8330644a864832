"""Tiny .tflite and .onnx models built in code, without TensorFlow.

TFLite files are written with the flatbuffer object API shipped in ai-edge-litert
(`schema_py_generated`); ONNX files with `onnx.helper`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _tfl():
    from ai_edge_litert import schema_py_generated as s

    return s


def _tensor(s, name, shape, ttype, buffer, scale=None, zp=None):
    t = s.TensorT()
    t.name = name
    t.shape = list(shape)
    t.type = ttype
    t.buffer = buffer
    if scale is not None:
        q = s.QuantizationParametersT()
        q.scale = [float(scale)]
        q.zeroPoint = [int(zp)]
        t.quantization = q
    return t


class _Builder:
    def __init__(self) -> None:
        self.s = _tfl()
        self.buffers = [self.s.BufferT()]  # buffer 0 is the empty sentinel
        self.tensors: list = []
        self.ops: list = []
        self.codes: list = []

    def const(self, name, arr: np.ndarray, ttype, scale=None, zp=None) -> int:
        b = self.s.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), dtype=np.uint8)
        self.buffers.append(b)
        return self.tensor(name, arr.shape, ttype, len(self.buffers) - 1, scale, zp)

    def tensor(self, name, shape, ttype, buffer=0, scale=None, zp=None) -> int:
        if buffer == 0:
            self.buffers.append(self.s.BufferT())
            buffer = len(self.buffers) - 1
        self.tensors.append(_tensor(self.s, name, shape, ttype, buffer, scale, zp))
        return len(self.tensors) - 1

    def code(self, builtin: int | None = None, custom: str | None = None) -> int:
        c = self.s.OperatorCodeT()
        if custom is not None:
            c.builtinCode = self.s.BuiltinOperator.CUSTOM
            c.deprecatedBuiltinCode = self.s.BuiltinOperator.CUSTOM
            c.customCode = custom
        else:
            c.builtinCode = builtin
            c.deprecatedBuiltinCode = min(builtin, 127)
        c.version = 1
        self.codes.append(c)
        return len(self.codes) - 1

    def op(self, code: int, inputs, outputs, options_type=0, options=None) -> None:
        o = self.s.OperatorT()
        o.opcodeIndex = code
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.ops.append(o)

    def save(self, path: Path, inputs, outputs) -> Path:
        import flatbuffers

        s = self.s
        sg = s.SubGraphT()
        sg.tensors, sg.operators, sg.inputs, sg.outputs, sg.name = self.tensors, self.ops, list(inputs), list(outputs), "main"
        m = s.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers, m.description = 3, self.codes, [sg], self.buffers, "edgeopt test"
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        Path(path).write_bytes(bytes(b.Output()))
        return Path(path)


def tflite_mlp(path: Path, int8: bool = False, n_in: int = 64, n_out: int = 32) -> Path:
    """input [1,n_in] -> FULLY_CONNECTED(n_out) -> output [1,n_out]; float32 or full int8 (int8 I/O)."""
    bld = _Builder()
    s = bld.s
    rng = np.random.default_rng(0)
    fc = bld.code(s.BuiltinOperator.FULLY_CONNECTED)
    opts = s.FullyConnectedOptionsT()
    T = s.TensorType
    if int8:
        x = bld.tensor("input", [1, n_in], T.INT8, scale=0.05, zp=0)
        w = bld.const("dense/kernel", rng.integers(-127, 127, (n_out, n_in), dtype=np.int8), T.INT8, 0.01, 0)
        bias = bld.const("dense/bias", np.zeros(n_out, np.int32), T.INT32, 0.05 * 0.01, 0)
        y = bld.tensor("output", [1, n_out], T.INT8, scale=0.5, zp=0)
    else:
        x = bld.tensor("input", [1, n_in], T.FLOAT32)
        w = bld.const("dense/kernel", rng.standard_normal((n_out, n_in)).astype(np.float32), T.FLOAT32)
        bias = bld.const("dense/bias", np.zeros(n_out, np.float32), T.FLOAT32)
        y = bld.tensor("output", [1, n_out], T.FLOAT32)
    bld.op(fc, [x, w, bias], [y], s.BuiltinOptions.FullyConnectedOptions, opts)
    return bld.save(path, [x], [y])


def tflite_cnn(path: Path) -> Path:
    """[1,8,8,1] -> CONV_2D 3x3x4 SAME relu -> RESHAPE [1,256] -> FULLY_CONNECTED(10). MACs 2304 + 2560."""
    bld = _Builder()
    s = bld.s
    T = s.TensorType
    rng = np.random.default_rng(1)
    conv, reshape, fc = (bld.code(s.BuiltinOperator.CONV_2D), bld.code(s.BuiltinOperator.RESHAPE),
                         bld.code(s.BuiltinOperator.FULLY_CONNECTED))
    x = bld.tensor("image", [1, 8, 8, 1], T.FLOAT32)
    f = bld.const("conv/kernel", rng.standard_normal((4, 3, 3, 1)).astype(np.float32), T.FLOAT32)
    fb = bld.const("conv/bias", np.zeros(4, np.float32), T.FLOAT32)
    c = bld.tensor("conv/out", [1, 8, 8, 4], T.FLOAT32)
    co = s.Conv2DOptionsT()
    co.padding, co.strideW, co.strideH = s.Padding.SAME, 1, 1
    co.fusedActivationFunction = s.ActivationFunctionType.RELU
    co.dilationWFactor = co.dilationHFactor = 1
    bld.op(conv, [x, f, fb], [c], s.BuiltinOptions.Conv2DOptions, co)
    shp = bld.const("reshape/shape", np.array([1, 256], np.int32), T.INT32)
    r = bld.tensor("flat", [1, 256], T.FLOAT32)
    ro = s.ReshapeOptionsT()
    ro.newShape = [1, 256]
    bld.op(reshape, [c, shp], [r], s.BuiltinOptions.ReshapeOptions, ro)
    w = bld.const("dense/kernel", rng.standard_normal((10, 256)).astype(np.float32), T.FLOAT32)
    b = bld.const("dense/bias", np.zeros(10, np.float32), T.FLOAT32)
    y = bld.tensor("logits", [1, 10], T.FLOAT32)
    bld.op(fc, [r, w, b], [y], s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT())
    return bld.save(path, [x], [y])


def tflite_crashing(path: Path) -> Path:
    """tflite_cnn with its RESHAPE's shape input marked omitted (-1): it passes every structural check and LiteRT
    dies with SIGSEGV preparing it (found by the fuzzer; tests/robustness/test_security.py has the build's twin)."""
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(tflite_cnn(path).read_bytes(), 0)
    op = next(o for o in m.subgraphs[0].operators
              if m.operatorCodes[o.opcodeIndex].builtinCode == s.BuiltinOperator.RESHAPE)
    op.inputs = [op.inputs[0], -1]
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    Path(path).write_bytes(bytes(b.Output()))
    return Path(path)


def tflite_custom_op(path: Path, op: str = "EdgeoptNoSuchOp") -> Path:
    """One custom op no runtime has."""
    bld = _Builder()
    T = bld.s.TensorType
    code = bld.code(custom=op)
    x = bld.tensor("input", [1, 4], T.FLOAT32)
    y = bld.tensor("output", [1, 4], T.FLOAT32)
    bld.op(code, [x], [y])
    return bld.save(path, [x], [y])


def onnx_mlp(path: Path, n_in: int = 64, hidden: int = 32, n_out: int = 10, opset: int = 17) -> Path:
    """input [N,n_in] -> MatMul+Add -> Relu -> Gemm -> output; MACs n_in*hidden + hidden*n_out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((n_in, hidden)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(hidden, np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, n_out)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(np.zeros(n_out, np.float32), "b2")
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
        helper.make_node("Gemm", ["h2", "w2", "b2"], ["output"], name="fc2"),
    ]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_in])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n_out])], [w1, b1, w2, b2])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.save(m, str(path))
    return Path(path)


def onnx_conv(path: Path) -> Path:
    """[1,3,8,8] -> Conv 4x3x3x3 pads 1 -> [1,4,8,8]; MACs 8*8*4*27 = 6912, params 108 + 4."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.zeros(4, np.float32), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    g = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w, b])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return Path(path)


def onnx_custom_op(path: Path, op: str = "EdgeoptNoSuchOp") -> Path:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(op, ["x"], ["y"], name="mystery", domain="com.edgeopt.test")
    g = helper.make_graph([node], "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.edgeopt.test", 1)],
                          ir_version=8)
    onnx.save(m, str(path))
    return Path(path)


def quantize_onnx_int8(src: Path, dst: Path) -> Path:
    """Static QDQ int8 with onnxruntime.quantization on a few random samples."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self._it = iter([{"input": rng.standard_normal((1, 64)).astype(np.float32)} for _ in range(8)])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self._it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return Path(dst)
