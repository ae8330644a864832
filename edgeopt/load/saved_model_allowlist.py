"""The TF op types a SavedModel may hold before TensorFlow loads it: an allowlist (SECURITY.md describes it).

Derived from the SavedModels of the sample models and the Keras models the tests build (Conv1D/2D/3D, depthwise,
separable and transposed convolutions, Dense, BatchNormalization, LayerNormalization, LSTM/GRU/SimpleRNN with and
without `unroll`, Bidirectional, ConvLSTM2D, MultiHeadAttention, Attention, Embedding, Resizing, UpSampling,
pooling, every Keras activation, the augmentation and lookup layers), exported with `model.export`, edgeopt's own
export (fixed and dynamic batch) and `tf.saved_model.save` of a `tf.Module` with a variable, a lookup table and
`tf.print`; every op type found was reviewed, and the list completed with the TF ops the TFLite converter lowers
to builtins.

Nothing here reads or writes files, lists folders, opens sockets, calls Python or runs a program held in a string
(a serialized GraphDef, function or StableHLO module): those ops are simply absent. An op TensorFlow adds later is
refused until it is reviewed and added here.
"""

from __future__ import annotations

# Plumbing TensorFlow puts into every SavedModel: constants, feeds, variables, calls and control flow (the functions
# they call are scanned too), tensor lists (RNN loops), lookup tables built from tensors (not from files).
PLUMBING_OPS = frozenset((
    "Const", "Placeholder", "PlaceholderWithDefault", "Identity", "IdentityN", "NoOp", "StopGradient",
    "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics",
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
    "VarIsInitializedOp", "DisableCopyOnRead", "DestroyResourceOp", "ResourceGather",
    "StatefulPartitionedCall", "PartitionedCall", "While", "StatelessWhile", "If", "StatelessIf", "Case",
    "StatelessCase",
    "Switch", "Merge", "Enter", "Exit", "NextIteration", "LoopCond",  # TF1 control flow (functionalized)
    "TensorListReserve", "TensorListFromTensor", "TensorListGetItem", "TensorListSetItem", "TensorListStack",
    "TensorListLength", "TensorListElementShape", "TensorListPushBack", "TensorListPopBack", "EmptyTensorList",
    "HashTableV2", "LookupTableImportV2", "LookupTableFindV2", "LookupTableSizeV2", "InitializeTableV2",
    "Assert", "StringFormat", "PrintV2",  # logging; PrintV2 only to the console or the log (checked by the scan)
))

# Math, array and neural-network ops the TFLite converter turns into builtins.
MATH_OPS = frozenset((
    "Abs", "Add", "AddV2", "AddN", "All", "Any", "ArgMax", "ArgMin", "Atan2", "AvgPool", "AvgPool3D",
    "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "BatchToSpaceND", "BiasAdd", "Bitcast", "BitwiseXor",
    "BroadcastArgs", "BroadcastTo", "Bucketize", "Cast", "Ceil", "ClipByValue", "ComplexAbs", "Concat", "ConcatV2",
    "Conv2D", "Conv2DBackpropInput", "Conv3D", "Conv3DBackpropInputV2", "Cos", "Cumsum", "DepthToSpace",
    "DepthwiseConv2dNative", "Div", "DivNoNan", "Einsum", "Elu", "Equal", "Erf", "Erfc", "Exp", "ExpandDims",
    "FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel", "Fill", "Floor",
    "FloorDiv", "FloorMod", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "Gather", "GatherNd",
    "GatherV2", "Greater", "GreaterEqual", "Imag", "LeakyRelu", "Less", "LessEqual", "Log", "Log1p", "LogSoftmax",
    "LogicalAnd", "LogicalNot", "LogicalOr", "LRN", "MatMul", "MatrixBandPart", "MatrixDiag", "MatrixDiagV2",
    "MatrixDiagV3", "MatrixSetDiag", "MatrixSetDiagV2", "MatrixSetDiagV3", "Max", "MaxPool", "MaxPoolV2",
    "MaxPool3D", "Maximum", "Mean", "Min", "Minimum", "MirrorPad", "Mul", "Neg", "NonMaxSuppressionV4",
    "NonMaxSuppressionV5", "NotEqual", "OneHot", "OnesLike", "Pack", "Pad", "PadV2", "Pow", "Prod",
    "QuantizeAndDequantizeV2", "QuantizeAndDequantizeV4", "Range", "Rank", "Real", "RealDiv", "Reciprocal", "Relu",
    "Relu6", "Reshape", "ResizeBilinear", "ResizeNearestNeighbor", "ReverseSequence", "ReverseV2", "RFFT", "RFFT2D",
    "RightShift", "Round", "Rsqrt", "ScatterNd", "SegmentSum", "Select", "SelectV2", "Selu", "Shape", "ShapeN",
    "Sigmoid", "Sign", "Sin", "Size", "Slice", "Softmax", "Softplus", "Softsign", "SpaceToBatchND", "SpaceToDepth",
    "SparseToDense", "Split", "SplitV", "Sqrt", "Square", "SquaredDifference", "Squeeze", "StridedSlice", "Sub",
    "Sum", "Tanh", "TensorScatterUpdate", "Tile", "TopKV2", "Transpose", "Unique", "Unpack", "UnsortedSegmentMax",
    "UnsortedSegmentMin", "UnsortedSegmentProd", "UnsortedSegmentSum", "Where", "ZerosLike",
))

# Inert ops Keras preprocessing and augmentation layers write (RandomFlip/Rotation/Zoom/Contrast/Translation,
# GaussianNoise, CategoryEncoding): random numbers, image transforms, counting. Not TFLite builtins; at inference they
# are dead branches or need Select TF ops, but they touch nothing outside the tensors.
PREPROCESSING_OPS = frozenset((
    "StatelessRandomGetKeyCounter", "StatelessRandomGetAlg", "StatelessRandomUniformV2", "StatelessRandomNormalV2",
    "StatelessRandomUniformIntV2", "StatelessTruncatedNormalV2", "RandomUniform", "RandomStandardNormal",
    "RandomUniformInt", "ImageProjectiveTransformV3", "Tan", "DenseBincount",
))

# Allowed anywhere in the SavedModel.
MODEL_OPS = PLUMBING_OPS | MATH_OPS | PREPROCESSING_OPS

# Allowed only in functions reachable from the saver's save call and from nothing else: they run when the model is
# saved again, writing the checkpoint TensorFlow names (TensorFlow writes them for every model with variables).
SAVE_OPS = frozenset(("SaveV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "StaticRegexFullMatch"))
# Allowed only in functions reachable from the saver's restore call and from nothing else (it reads the variables).
RESTORE_OPS = frozenset(("RestoreV2",))

# PrintV2 streams that stay on the console or in the log (anything else, "file://...", writes a file).
PRINT_STREAMS = frozenset(("stderr", "stdout", "log(info)", "log(warning)", "log(error)"))

# Why some ops that are absent from the lists are refused, to make the message clear; the decision is the lists'.
REFUSAL_NOTES: dict[str, str] = {
    **dict.fromkeys(("DatasetFromGraph", "XlaCallModule", "RemoteCall", "TPUPartitionedCall", "TPUCompile",
                     "_TPUCompileMlir", "XlaLaunch"),
                    "runs a graph or program serialized in a string, which a scan cannot see into"),
    **dict.fromkeys(("WriteFile", "ReadFile", "MatchingFiles", "ImmutableConst", "InitializeTableFromTextFile",
                     "InitializeTableFromTextFileV2", "LoadAndRemapMatrix", "RecordInput", "DecodeProtoV2"),
                    "can read, write or list files"),
    **dict.fromkeys(("Save", "SaveSlices", "SaveV2", "MergeV2Checkpoints", "Restore", "RestoreSlice", "RestoreV2"),
                    "checkpoint file I/O, allowed only in the SavedModel's own saver functions"),
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc"), "calls Python code"),
}


def refusal_note(op: str) -> str:
    """Why `op` (not allowed where it is) is refused, in a few words."""
    if op in REFUSAL_NOTES:
        return REFUSAL_NOTES[op]
    if op.endswith(("Dataset", "DatasetV2", "DatasetV3", "DatasetV4")):
        return "a tf.data op: datasets can read files"
    if op.endswith(("Reader", "ReaderV2")) or "Summary" in op:
        return "can read or write files"
    return "not on the allowlist of ops a convertible model needs"
