"""Which ops TFLite Micro has, and the MicroMutableOpResolver method that registers each.

The table follows tensorflow/lite/micro/micro_mutable_op_resolver.h (tflite-micro,
2025): one `AddXxx()` method per builtin, and a few custom ops with their own
method. An op missing here is reported by name, with a hint when the cause is common.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeopt.analysis.tflite_graph import TfliteGraph

# BuiltinOperator name -> MicroMutableOpResolver method.
BUILTIN_ADDERS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup", "ELU": "AddElu", "EQUAL": "AddEqual", "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "IF": "AddIf", "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic", "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D", "MIRROR_PAD": "AddMirrorPad", "MEAN": "AddMean", "MINIMUM": "AddMinimum",
    "MUL": "AddMul", "NEG": "AddNeg", "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad",
    "PADV2": "AddPadV2", "PRELU": "AddPrelu", "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQUEEZE": "AddSqueeze", "SQRT": "AddSqrt",
    "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE_CONV": "AddTransposeConv",
    "TRANSPOSE": "AddTranspose", "UNPACK": "AddUnpack",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

# Custom op code -> method (these register themselves by name).
CUSTOM_ADDERS: dict[str, str] = {
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "ethos-u": "AddEthosU",
    "SignalDelay": "AddDelay", "SignalEnergy": "AddEnergy", "SignalFftAutoScale": "AddFftAutoScale",
    "SignalFilterBank": "AddFilterBank", "SignalFilterBankLog": "AddFilterBankLog",
    "SignalFilterBankSquareRoot": "AddFilterBankSquareRoot",
    "SignalFilterBankSpectralSubtraction": "AddFilterBankSpectralSubtraction", "SignalFramer": "AddFramer",
    "SignalIrfft": "AddIrfft", "SignalOverlapAdd": "AddOverlapAdd", "SignalPCAN": "AddPCAN",
    "SignalRfft": "AddRfft", "SignalStacker": "AddStacker", "SignalWindow": "AddWindow",
}

# Common unsupported ops and what usually fixes them.
HINTS: dict[str, str] = {
    "GELU": "use a ReLU/HardSwish activation, or approximate GELU with supported ops",
    "LSTM": "use UNIDIRECTIONAL_SEQUENCE_LSTM (keras.layers.LSTM with unroll=False converts to it)",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "use two unidirectional LSTMs",
    "RESIZE_BICUBIC": "use bilinear or nearest-neighbour resizing",
    "POW": "replace x**n with MUL for small integer n",
    "REDUCE_PROD": "avoid products over axes, or compute them before the model",
    "TOPK_V2": "take the top-k outside the model on the device",
    "NON_MAX_SUPPRESSION_V4": "run NMS outside the model, or use TFLite_Detection_PostProcess",
    "NON_MAX_SUPPRESSION_V5": "run NMS outside the model, or use TFLite_Detection_PostProcess",
    "DENSIFY": "convert without sparsity",
    "CONV_3D": "reshape to CONV_2D",
}


@dataclass(frozen=True)
class OpSupport:
    ops: tuple[str, ...]  # distinct ops of the model, sorted
    unsupported: tuple[str, ...]  # ops TFLM lacks
    hints: tuple[str, ...]  # one line per unsupported op

    @property
    def ok(self) -> bool:
        return not self.unsupported


def adder_for(op: str) -> str | None:
    return BUILTIN_ADDERS.get(op) or CUSTOM_ADDERS.get(op)


def hint_for(op: str, custom: bool) -> str:
    if op.startswith("Flex"):
        return f"{op}: a TensorFlow (Flex/select_tf_ops) op; convert with TFLITE_BUILTINS_INT8 only, no SELECT_TF_OPS"
    if op in HINTS:
        return f"{op}: {HINTS[op]}"
    if custom:
        return f"{op}: a custom op; register your own kernel with AddCustom(\"{op}\", ...) or avoid it at conversion"
    return f"{op}: not in TFLite Micro; replace the layer that produces it"


def check_ops(graph: TfliteGraph) -> OpSupport:
    customs = {op.op for op in graph.operators if op.custom}
    unsupported = tuple(o for o in graph.op_names if adder_for(o) is None)
    return OpSupport(ops=graph.op_names, unsupported=unsupported,
                     hints=tuple(hint_for(o, o in customs) for o in unsupported))


@dataclass(frozen=True)
class Int8Kernel:
    """An op's int8-only registration: links its int8 kernel alone, not the int16 / int4 / float variants."""

    header: str  # the TFLM kernel header declaring it
    registration: str  # e.g. tflite::Register_CONV_2D_INT8
    int32_inputs: frozenset[int] = frozenset()  # input positions that may be int32 (bias, paddings, perm, shape)


# From tensorflow/lite/micro/kernels/*.h (tflite-micro, 2026): each declares Register_<OP>_INT8(), the CMSIS-NN
# int8 kernel or, in a reference build, the generic registration. SVDF (int16 state) and the LSTM are left out.
_K = "tensorflow/lite/micro/kernels/"
INT8_KERNELS: dict[str, Int8Kernel] = {
    "ADD": Int8Kernel(_K + "add.h", "tflite::Register_ADD_INT8"),
    "AVERAGE_POOL_2D": Int8Kernel(_K + "pooling.h", "tflite::Register_AVERAGE_POOL_2D_INT8"),
    "BATCH_MATMUL": Int8Kernel(_K + "batch_matmul.h", "tflite::Register_BATCH_MATMUL_INT8"),
    "CONV_2D": Int8Kernel(_K + "conv.h", "tflite::Register_CONV_2D_INT8", frozenset({2})),
    "DEPTHWISE_CONV_2D": Int8Kernel(_K + "depthwise_conv.h", "tflite::Register_DEPTHWISE_CONV_2D_INT8", frozenset({2})),
    "FULLY_CONNECTED": Int8Kernel(_K + "fully_connected.h", "tflite::Register_FULLY_CONNECTED_INT8", frozenset({2})),
    "MAXIMUM": Int8Kernel(_K + "maximum_minimum.h", "tflite::Register_MAXIMUM_INT8"),
    "MAX_POOL_2D": Int8Kernel(_K + "pooling.h", "tflite::Register_MAX_POOL_2D_INT8"),
    "MINIMUM": Int8Kernel(_K + "maximum_minimum.h", "tflite::Register_MINIMUM_INT8"),
    "MUL": Int8Kernel(_K + "mul.h", "tflite::Register_MUL_INT8"),
    "PAD": Int8Kernel(_K + "pad.h", "tflite::Register_PAD_INT8", frozenset({1})),
    "SOFTMAX": Int8Kernel(_K + "softmax.h", "tflite::Register_SOFTMAX_INT8"),
    "TRANSPOSE": Int8Kernel(_K + "transpose.h", "tflite::Register_TRANSPOSE_INT8", frozenset({1})),
    "TRANSPOSE_CONV": Int8Kernel(_K + "transpose_conv.h", "tflite::Register_TRANSPOSE_CONV_INT8", frozenset({0, 3})),
}


def int8_only_ops(graph: TfliteGraph) -> tuple[str, ...]:
    """The ops (sorted) every instance of which, in every subgraph, has int8 inputs and outputs (int32 only where
    INT8_KERNELS allows it): these can be registered with their int8-only kernel."""
    ok: dict[str, bool] = {}
    for op in graph.operators:
        kernel = INT8_KERNELS.get(op.op)
        if kernel is None or op.custom:
            continue
        ins = all(d in ("", "int8") or (d == "int32" and i in kernel.int32_inputs) for i, d in enumerate(op.input_dtypes))
        outs = all(d == "int8" for d in op.output_dtypes)
        ok[op.op] = ok.get(op.op, True) and ins and outs
    return tuple(sorted(o for o, fine in ok.items() if fine))
