"""Ops tf2onnx leaves in an exported graph that ONNX does not define, rewritten with ONNX ops.

    rewritten = rewrite_non_onnx_ops(proto)  # {"Erfc": 1}: what was replaced, by op

tf2onnx copies some TensorFlow ops through unchanged: exact GELU (`keras.activations.gelu(approximate=False)`,
ConvNeXt's activation) becomes TensorFlow's `Erfc`, which onnx.checker and onnxruntime refuse ("No Op registered
for Erfc"). Each rewrite is exact in float: Erfc(x) = 1 - Erf(x). An op without a rewrite stays, and the
check after export names it (edgeopt.convert.onnx_check).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any


def _erfc(graph: Any, node: Any, make_name: Callable[[str], str]) -> list[Any]:
    """Erfc(x) -> Sub(1, Erf(x)), the 1 a float32 scalar initializer (GELU's dtype in a float Keras model)."""
    import numpy as np
    from onnx import helper, numpy_helper

    one, erf = make_name(f"{node.name}_one"), make_name(f"{node.name}_erf")
    graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
    return [helper.make_node("Erf", [node.input[0]], [erf], name=erf),
            helper.make_node("Sub", [one, erf], [node.output[0]], name=node.name or make_name("erfc_sub"))]


REWRITES: dict[str, Callable[[Any, Any, Callable[[str], str]], list[Any]]] = {"Erfc": _erfc}


def rewrite_non_onnx_ops(proto: Any) -> dict[str, int]:
    """Replace, in the graph and every If/Loop/Scan body, the default-domain nodes REWRITES knows; returns how
    many of each op were replaced."""
    done: Counter[str] = Counter()
    taken = {x for n in proto.graph.node for x in (n.name, *n.input, *n.output)} | {
        t.name for t in proto.graph.initializer}

    def make_name(stem: str) -> str:
        name, i = stem, 0
        while name in taken:
            i += 1
            name = f"{stem}_{i}"
        taken.add(name)
        return name

    def visit(graph: Any) -> None:
        nodes = []
        for node in graph.node:
            for a in node.attribute:
                for body in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                    visit(body)
            rewrite = REWRITES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if rewrite is None:
                nodes.append(node)
                continue
            nodes.extend(rewrite(graph, node, make_name))
            done[node.op_type] += 1
        if done:
            del graph.node[:]
            graph.node.extend(nodes)

    visit(proto.graph)
    return dict(done)
