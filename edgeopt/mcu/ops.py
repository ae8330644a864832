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
