"""Refuse SavedModels whose graphs hold an op outside the allowlist, before TensorFlow runs them.

A SavedModel is a graph of TF ops; they run as soon as `build` loads the model, computes the float reference or
converts. `check_saved_model` parses `saved_model.pb` as a protobuf (nothing executes) and checks every node
against the allowlist (`saved_model_allowlist`): the meta graphs' top-level nodes (which include the init op TF
runs on load) and every function in the function library. A denylist of op names cannot be complete (tf.data
sources, a graph serialized in a string); an allowlist of what a convertible model needs can.

Checkpoint ops are allowed only in the SavedModel's own saver functions: `SaveV2` and friends in the functions
reachable from the saver's save call alone, `RestoreV2` in those reachable from its restore call alone. "Reachable"
starts from the `f` attribute of the (Stateful)PartitionedCall node that `saver_def` names and follows only the
`f` of call nodes; any other function-valued attribute, anywhere, makes its target model code, and so do every
function the object graph names (TF2 loads signatures from there, not from the top-level nodes) and every library
function the saver does not call. A function reachable from both is model code.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from edgeopt.errors import InputError, ModelFileError
from edgeopt.load.saved_model_allowlist import (
    MODEL_OPS,
    PRINT_STREAMS,
    RESTORE_OPS,
    SAVE_OPS,
    refusal_note,
)

CALL_OPS = frozenset(("PartitionedCall", "StatefulPartitionedCall"))
_NAME_CHARS = 120  # names from the file are cut in messages


def _func_attrs(attrs: Any) -> Iterator[str]:
    """Names in every function-valued attribute of an attr map, nested ones included."""
    for value in attrs.values():
        if value.HasField("func"):
            yield value.func.name
            yield from _func_attrs(value.func.attr)
        if value.HasField("list"):
            for func in value.list.func:
                yield func.name
                yield from _func_attrs(func.attr)


def _targets(node: Any, library: dict[str, Any]) -> Iterator[str]:
    """Every library function `node` may run: function-valued attributes, or its op when that names a function."""
    yield from _func_attrs(node.attr)
    if node.op in library:
        yield node.op


def _call_target(node: Any) -> str | None:
    """The function a (Stateful)PartitionedCall node calls through its own `f` attribute."""
    if node.op in CALL_OPS and "f" in node.attr and node.attr["f"].HasField("func"):
        return str(node.attr["f"].func.name)
    return None


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


def _short(name: str) -> str:
    return name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS] + "..."


def _problem(node: Any, allowed: frozenset[str], library: dict[str, Any]) -> str | None:
    op = node.op
    if op not in allowed and op not in library:
        return f"{_short(op)} ({refusal_note(op)})"
    unknown = next((name for name in _func_attrs(node.attr) if name not in library), None)
    if unknown is not None:
        return (f"{_short(op)} (calls '{_short(unknown)}', which is not a function of the SavedModel: TensorFlow "
                "would run the op of that name, unchecked)")
    if op == "PrintV2":
        stream = node.attr["output_stream"].s.decode("utf-8", "replace") if "output_stream" in node.attr else "stderr"
        if stream not in PRINT_STREAMS:
            return f"{op} (prints to '{_short(stream)}', not the console or the log: it can write a file)"
    return None


def _object_graph_functions(meta: Any) -> Iterator[str]:
    """Every function the object graph names: TF2 loads signatures and methods from there, not from the graph."""
    graph = meta.object_graph_def
    yield from graph.concrete_functions.keys()
    for obj in graph.nodes:
        kind = obj.WhichOneof("kind")
        if kind == "function":
            yield from obj.function.concrete_functions
        elif kind == "bare_concrete_function":
            yield obj.bare_concrete_function.concrete_function_name
        elif kind == "captured_tensor":
            yield obj.captured_tensor.concrete_function


def _saver_roots(graph: Any, node_name: str, library: dict[str, Any]) -> tuple[str, set[str]]:
    """(the saver node's name, the library function its own `f` calls, if any)."""
    name = node_name.split(":")[0]
    node = next((n for n in graph.node if n.name == name), None) if name else None
    target = _call_target(node) if node is not None else None
    return name, {target} if target is not None and target in library else set()


def refused_ops(saved_model: Any) -> list[tuple[str, str]]:
    """(where, problem) for every refused node of a parsed `saved_model_pb2.SavedModel`."""
    found: list[tuple[str, str]] = []
    for meta in saved_model.meta_graphs:
        graph = meta.graph_def
        functions = list(graph.library.function)  # all of them, a repeated name included
        library = {f.signature.name: f for f in functions}
        calls: dict[str, set[str]] = {}
        every: dict[str, set[str]] = {}
        for func in functions:
            name = func.signature.name
            calls.setdefault(name, set()).update(t for n in func.node_def if (t := _call_target(n)) is not None and t in library)
            every.setdefault(name, set()).update(t for n in func.node_def for t in _targets(n, library))
        save_node, save_roots = _saver_roots(graph, meta.saver_def.save_tensor_name, library)
        restore_node, restore_roots = _saver_roots(graph, meta.saver_def.restore_op_name, library)
        save_reach = _reach(save_roots, calls)
        restore_reach = _reach(restore_roots, calls)
        # Model code: whatever any top-level node may run (a saver node's extra attributes included), every
        # function the object graph names, and every library function the saver does not call, with all they
        # may run.
        top = [t for n in graph.node for t in _targets(n, library)
               if not (n.name in (save_node, restore_node) and t == _call_target(n))]
        unsaved = (n for n in library if n not in save_reach | restore_reach)
        other_reach = _reach([*top, *_object_graph_functions(meta), *unsaved], every)
        save_only = save_reach - other_reach - restore_reach
        restore_only = restore_reach - other_reach - save_reach
        for node in graph.node:
            problem = _problem(node, MODEL_OPS, library)
            if problem:
                found.append((f"graph node '{_short(node.name)}'", problem))
        # Model code first, so the message names the op a user most needs to see, then the saver's functions.
        for func in sorted(functions, key=lambda f: f.signature.name in save_reach | restore_reach):
            name = func.signature.name
            allowed = MODEL_OPS | (SAVE_OPS if name in save_only else frozenset()) | (
                RESTORE_OPS if name in restore_only else frozenset())
            for node in func.node_def:
                problem = _problem(node, allowed, library)
                if problem:
                    found.append((f"function '{_short(name)}'", problem))
    return found


def check_saved_model(path: Path) -> None:
    """Raise InputError naming the op and where it is if the SavedModel folder `path` holds an op outside the
    allowlist."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(path) / "saved_model.pb"
    sm = saved_model_pb2.SavedModel()
    try:
        sm.ParseFromString(pb.read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        msg = f"{pb}: not a SavedModel protobuf ({type(exc).__name__}); the file is corrupt"
        raise ModelFileError(msg) from None
    found = refused_ops(sm)
    if found:
        where, problem = found[0]
        more = f" (and {len(found) - 1} more refused node(s))" if len(found) > 1 else ""
        msg = (
            f"{path}: SavedModel {where} uses op {problem}{more}; edgeopt loads a SavedModel only when every op is "
            "on its allowlist of convertible math and TensorFlow plumbing: --unsafe-load skips this scan, pass it "
            "only if you trust this file"
        )
        raise InputError(msg)
