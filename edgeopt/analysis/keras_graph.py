"""A flat view of a Keras functional/Sequential call graph, nested sub-models inlined.

Tensors get fresh integer keys, so a sub-model called twice yields two sets of nodes.
TensorFlow/Keras is only touched through the model object handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count
from typing import Any

from edgeopt.errors import InputError


@dataclass(frozen=True)
class FlatNode:
    """One call of a layer (or Keras op) in the inlined graph."""

    layer: Any
    arguments: Any  # keras SymbolicArguments of the original call
    arg_ids: tuple[int, ...]  # id() of the KerasTensors in `arguments`, in order
    inputs: tuple[int, ...]  # tensor keys aligned with arg_ids
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class FlatGraph:
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    nodes: tuple[FlatNode, ...]  # topological order
    tensors: dict[int, Any]  # key -> original KerasTensor (shape, dtype)
    input_names: tuple[str, ...]

    def shape(self, key: int) -> tuple[int | None, ...]:
        return tuple(self.tensors[key].shape)

    def call_counts(self) -> dict[int, int]:
        """How many nodes call each layer object (id(layer) -> count)."""
        counts: dict[int, int] = {}
        for node in self.nodes:
            counts[id(node.layer)] = counts.get(id(node.layer), 0) + 1
        return counts


def is_graph_model(op: Any) -> bool:
    """True for a Functional or Sequential model (graphs we can inline)."""
    import keras

    if isinstance(op, keras.Sequential):
        return True
    return isinstance(op, keras.Model) and any(c.__name__ == "Functional" for c in type(op).__mro__)


def _model_io(model: Any) -> tuple[list[Any], list[Any]]:
    import keras

    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        msg = (
            f"model {model.name!r} has no symbolic inputs/outputs; build it from keras.Input "
            "(functional or Sequential with an Input) before pruning or analysis"
        )
        raise InputError(msg)
    return list(keras.tree.flatten(inputs)), list(keras.tree.flatten(outputs))


def _ordered_nodes(model: Any) -> list[Any]:
    """Keras Nodes between the model's inputs and outputs, topologically sorted."""
    inputs, outputs = _model_io(model)
    input_ids = {id(t) for t in inputs}
    order: list[Any] = []
    seen: set[int] = set()
    stack: list[tuple[Any, bool]] = [(t, False) for t in reversed(outputs)]
    while stack:
        tensor, expanded = stack.pop()
        if id(tensor) in input_ids:
            continue
        hist = getattr(tensor, "_keras_history", None)
        if hist is None or hist.operation is None:
            msg = f"model {model.name!r}: a tensor is not connected to the model inputs; rebuild the model"
            raise InputError(msg)
        node = hist.operation._inbound_nodes[hist.node_index]
        if expanded:
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
            continue
        if id(node) in seen:
            continue
        if not node.arguments.keras_tensors and type(hist.operation).__name__ == "InputLayer":
            msg = f"model {model.name!r}: input {hist.operation.name!r} is not among the model inputs"
            raise InputError(msg)
        stack.append((tensor, True))
        for t in reversed(node.arguments.keras_tensors):
            stack.append((t, False))
    return order


def trace(model: Any) -> FlatGraph:
    """Inline `model` (and nested Functional/Sequential sub-models) into a flat node list."""
    inputs, outputs = _model_io(model)
    keys = count()
    tensors: dict[int, Any] = {}
    nodes: list[FlatNode] = []
    in_keys = []
    for t in inputs:
        k = next(keys)
        tensors[k] = t
        in_keys.append(k)
    out_keys = _inline(model, in_keys, nodes, tensors, keys)
    names = tuple(t._keras_history.operation.name for t in inputs)
    return FlatGraph(tuple(in_keys), tuple(out_keys), tuple(nodes), tensors, names)


def _inline(model: Any, in_keys: list[int], nodes: list[FlatNode], tensors: dict[int, Any], keys: Any) -> list[int]:
    inputs, outputs = _model_io(model)
    local = {id(t): k for t, k in zip(inputs, in_keys, strict=True)}
    for node in _ordered_nodes(model):
        op = node.operation
        arg_ids = tuple(id(t) for t in node.arguments.keras_tensors)
        node_in = [local[i] for i in arg_ids]
        if is_graph_model(op) and len(_model_io(op)[0]) == len(node_in):
            sub_out = _inline(op, node_in, nodes, tensors, keys)
            for t, k in zip(node.outputs, sub_out, strict=True):
                local[id(t)] = k
            continue
        out = []
        for t in node.outputs:
            k = next(keys)
            tensors[k] = t
            local[id(t)] = k
            out.append(k)
        nodes.append(FlatNode(op, node.arguments, arg_ids, tuple(node_in), tuple(out)))
    return [local[id(t)] for t in outputs]
