"""How many nodes an ONNX model expands to, counted in linear time before any onnx C++ code expands it.

    bound_expansion(path, model)   # ModelFileError (exit 2) when over EDGEOPT_MAX_ONNX_NODES, or recursive

Model-local functions are inlined by onnx.shape_inference, onnx.inliner and
onnxruntime's session: a 1.3 KB file with 40 nested functions, each calling the
next twice, expands to 2^40 nodes, and that work runs in C++ where Ctrl-C and
SIGTERM are not seen. Here the expanded size is computed without expanding:
the cost of a function is its own nodes (those of its If/Loop/Scan bodies
included) plus, per call it makes, the cost of the callee; each function's cost
is computed once (memoised, an explicit stack, no Python recursion), so the
count is linear in the file. A call node counts itself as well as the body it
expands to (a chain of calls to an empty function is still work). Recursion
between functions and two definitions of one function are refused, as
onnx.checker and onnxruntime do, but before they run.

    EDGEOPT_MAX_ONNX_NODES=1000000   the cap on the expanded node count
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from edgeopt.errors import InputError, ModelFileError

DEFAULT_MAX_NODES = 1_000_000
MAX_SETTING = 10**12
SATURATE = 10**18  # counts stop growing here: a deep enough chain would otherwise build huge integers

_FunctionId = tuple[str, str, str]  # (domain, name, overload)


def max_nodes() -> int:
    """EDGEOPT_MAX_ONNX_NODES: a whole number in [1, 10^12]; anything else is exit 2."""
    raw = os.environ.get("EDGEOPT_MAX_ONNX_NODES", "").strip()
    if not raw:
        return DEFAULT_MAX_NODES
    value = int(raw.replace("_", "")) if raw.replace("_", "").isdigit() else 0
    if not 1 <= value <= MAX_SETTING:
        msg = (
            f"EDGEOPT_MAX_ONNX_NODES={raw[:40]!r} is not a node count (a whole number from 1 to {MAX_SETTING:,}); "
            f"unset it for {DEFAULT_MAX_NODES:,}"
        )
        raise InputError(msg)
    return value


def bound_expansion(path: Path, model: Any) -> int:
    """The expanded node count of `model`; ModelFileError if over the cap, recursive or a function is defined twice."""
    cap = max_nodes()
    count = expanded_nodes(path, model)
    if count > cap:
        shown = f"more than {SATURATE:.0e}" if count >= SATURATE else f"{count:,}"
        msg = (
            f"{path}: the ONNX model expands to {shown} nodes (model-local functions inlined), over the cap of "
            f"{cap:,}; refused before onnx or onnxruntime expand it (EDGEOPT_MAX_ONNX_NODES raises the cap for a "
            "file you trust)"
        )
        raise ModelFileError(msg)
    return count


def expanded_nodes(path: Path, model: Any) -> int:
    """Nodes of the main graph with every call of a model-local function expanded (saturates at SATURATE)."""
    bodies: dict[_FunctionId, Any] = {}
    for f in model.functions:
        key = (_domain(f.domain), f.name, getattr(f, "overload", ""))
        if key in bodies:
            msg = f"{path}: the ONNX model defines function '{_name(key)}' twice; the file is malformed, re-export it"
            raise ModelFileError(msg)
        bodies[key] = f.node
    scans = {key: _scan(nodes, bodies) for key, nodes in bodies.items()}
    cost = _function_costs(path, scans)
    own, calls = _scan(model.graph.node, bodies)
    return _total(own, calls, cost)


def _domain(domain: str) -> str:
    return "" if domain == "ai.onnx" else domain


def _name(key: _FunctionId) -> str:
    domain, name, overload = key
    return f"{domain}:{name}" + (f" (overload {overload})" if overload else "")


def _scan(nodes: Any, bodies: dict[_FunctionId, Any]) -> tuple[int, Counter[_FunctionId]]:
    """(nodes in `nodes` and in their subgraphs, calls of each local function among them): an explicit stack."""
    own = 0
    calls: Counter[_FunctionId] = Counter()
    stack = [nodes]
    while stack:
        for n in stack.pop():
            own += 1
            key = (_domain(n.domain), n.op_type, getattr(n, "overload", ""))
            if key in bodies:
                calls[key] += 1
            for a in n.attribute:
                if a.HasField("g"):
                    stack.append(a.g.node)
                stack.extend(g.node for g in a.graphs)
    return own, calls


def _total(own: int, calls: Counter[_FunctionId], cost: dict[_FunctionId, int]) -> int:
    total = own
    for key, times in calls.items():
        total = min(SATURATE, total + times * cost[key])
    return total


def _function_costs(path: Path, scans: dict[_FunctionId, tuple[int, Counter[_FunctionId]]]) -> dict[_FunctionId, int]:
    """Each function's expanded node count, callees first (depth first on an explicit stack); a cycle is refused."""
    cost: dict[_FunctionId, int] = {}
    open_: set[_FunctionId] = set()  # on the current call path
    for root in scans:
        if root in cost:
            continue
        stack = [(root, iter(scans[root][1]))]
        open_.add(root)
        while stack:
            key, callees = stack[-1]
            callee = next(callees, None)
            if callee is None:
                cost[key] = _total(*scans[key], cost)
                open_.discard(key)
                stack.pop()
            elif callee in open_:
                chain = [k for k, _ in stack]
                loop = [_name(k)[:60] for k in [*chain[chain.index(callee):], callee]]
                if len(loop) > 6:
                    loop = [*loop[:3], f"... {len(loop) - 5} more", *loop[-2:]]
                cycle = " -> ".join(loop)
                msg = (
                    f"{path}: the ONNX model's functions call each other in a cycle ({cycle}); ONNX functions "
                    "cannot be recursive, the file is malformed"
                )
                raise ModelFileError(msg)
            elif callee not in cost:
                open_.add(callee)
                stack.append((callee, iter(scans[callee][1])))
    return cost
