"""Refuse SavedModels whose graphs touch the file system or the outside world, before TensorFlow runs them.

A SavedModel is a graph of TF ops; ops such as `WriteFile` run as soon as `build` computes the float
reference or converts. `check_saved_model` parses `saved_model.pb` as a protobuf (nothing executes) and
walks every node: the meta graphs' top-level nodes (which include the init op TF runs on load) and every
function in the function library. The denylist below is explicit; SECURITY.md lists it.

Checkpoint ops (`SaveV2`, `RestoreV2`, ...) are allowed only in the functions the SavedModel's own saver
uses (reachable from `saver_def` and from nothing else): TensorFlow writes those for every model that has
variables, and they run only when the model is saved again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from edgeopt.errors import InputError, ModelFileError

# Ops that read, write or list files, open databases or sockets, or call back into Python.
SIDE_EFFECT_OPS: dict[str, str] = {
    **dict.fromkeys(("WriteFile", "ReadFile", "MatchingFiles", "ImmutableConst", "InitializeTableFromTextFile",
                     "InitializeTableFromTextFileV2", "LoadAndRemapMatrix", "GenerateVocabRemapping"),
                    "reads or writes files"),
    **dict.fromkeys(("WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "TFRecordReader",
                     "TFRecordReaderV2", "FixedLengthRecordReader", "FixedLengthRecordReaderV2", "LMDBReader"),
                    "reads files"),
    **dict.fromkeys(("TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset", "FixedLengthRecordDataset",
                     "FixedLengthRecordDatasetV2", "SqlDataset", "ExperimentalSqlDataset", "LMDBDataset",
                     "ExperimentalLMDBDataset", "CacheDataset", "CacheDatasetV2", "SnapshotDataset",
                     "SnapshotDatasetV2", "SnapshotDatasetReader", "SaveDataset", "SaveDatasetV2", "LoadDataset",
                     "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "DistributedSave"),
                    "reads or writes dataset files"),
    **dict.fromkeys(("DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
                     "RegisterDataset", "RegisterDatasetV2"), "talks to a tf.data service over the network"),
    **dict.fromkeys(("CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary", "WriteRawProtoSummary",
                     "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
                     "WriteGraphSummary", "ImportEvent", "FlushSummaryWriter", "CloseSummaryWriter"),
                    "writes summary files"),
    **dict.fromkeys(("DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount", "DebugNumericSummary",
                     "DebugNumericSummaryV2"), "writes debug dumps to files or sockets"),
    **dict.fromkeys(("PyFunc", "PyFuncStateless", "EagerPyFunc"), "calls Python code"),
}
# Checkpoint ops: allowed only inside the SavedModel's own saver functions.
CHECKPOINT_OPS = frozenset(("Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
                            "MergeV2Checkpoints"))
# PrintV2 is refused when its output stream is a file ("file://...").
PRINT_OPS = frozenset(("PrintV2",))


def _called(nodes: Iterable[Any]) -> Iterator[str]:
    """Names of the functions that `nodes` call through function-valued attributes (calls, If/While/Case...)."""
    for node in nodes:
        for value in node.attr.values():
            if value.HasField("func"):
                yield value.func.name
            if value.HasField("list"):
                yield from (f.name for f in value.list.func)


def _reach(start: Iterable[str], callees: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(callees.get(name, ()))
    return seen


def _problem(node: Any, saver: bool) -> str | None:
    op = node.op
    if op in SIDE_EFFECT_OPS:
        return f"{op} ({SIDE_EFFECT_OPS[op]})"
    if op in CHECKPOINT_OPS and not saver:
        return f"{op} (reads or writes checkpoint files outside the variables machinery)"
    if op in PRINT_OPS and "output_stream" in node.attr:
        stream = node.attr["output_stream"].s.decode("utf-8", "replace")
        if stream.startswith("file://"):
            return f"{op} (prints to a file)"
    return None


def side_effect_ops(saved_model: Any) -> list[tuple[str, str]]:
    """(where, problem) for every refused node of a parsed `saved_model_pb2.SavedModel`."""
    found: list[tuple[str, str]] = []
    for meta in saved_model.meta_graphs:
        graph = meta.graph_def
        library = {f.signature.name: f for f in graph.library.function}
        callees = {name: set(_called(f.node_def)) for name, f in library.items()}
        saver_nodes = {meta.saver_def.save_tensor_name.split(":")[0], meta.saver_def.restore_op_name.split(":")[0]}
        saver_nodes.discard("")
        top_saver = [n for n in graph.node if n.name in saver_nodes]
        top_other = [n for n in graph.node if n.name not in saver_nodes]
        saver_reach = _reach(_called(top_saver), callees)
        # Anything a non-saver node calls, and any function the saver does not call (the object graph can
        # call any library function by name), is model code.
        other_reach = _reach([*_called(top_other), *(n for n in library if n not in saver_reach)], callees)
        saver_only = saver_reach - other_reach
        for node in graph.node:
            problem = _problem(node, saver=node.name in saver_nodes)
            if problem:
                found.append((f"graph node '{node.name}'", problem))
        for name, func in library.items():
            for node in func.node_def:
                problem = _problem(node, saver=name in saver_only)
                if problem:
                    found.append((f"function '{name}'", problem))
    return found


def check_saved_model(path: Path) -> None:
    """Raise InputError naming the op if the SavedModel folder `path` has a side-effecting op."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(path) / "saved_model.pb"
    sm = saved_model_pb2.SavedModel()
    try:
        sm.ParseFromString(pb.read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        msg = f"{pb}: not a SavedModel protobuf ({type(exc).__name__}); the file is corrupt"
        raise ModelFileError(msg) from None
    found = side_effect_ops(sm)
    if found:
        where, problem = found[0]
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        msg = (
            f"{path}: SavedModel {where} uses op {problem}{more}; a model file must not touch the "
                         "file system or run code, so it is refused: pass --unsafe-load only if you trust this file"
        )
        raise InputError(msg)
