"""A stateful (streaming) model's resource variables, as TFLite Micro needs them.

VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE keep state between invocations (a streaming model's buffers,
carried from one 10 ms audio frame to the next); CALL_ONCE runs the subgraph that initialises them on the
first Invoke(). TFLM keeps the variables in a `tflite::MicroResourceVariables` table the application creates
with room for N entries, one per distinct (container, shared_name) of the model's VAR_HANDLE ops; without it
VAR_HANDLE fails in Prepare ("VAR_HANDLE requires resource variables").
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeopt.analysis.tflite_graph import TfliteGraph
from edgeopt.errors import UnsupportedOpError

STATE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"})
STATEFUL_FRAMES = 20  # consecutive invocations compared for a stateful model (state carried), by default


@dataclass(frozen=True)
class ResourceVariables:
    names: tuple[str, ...]  # shared_name of each distinct variable ("container/shared_name" with a container)

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def stateful(self) -> bool:
        return self.count > 0


def resource_variables(graph: TfliteGraph, source: str) -> ResourceVariables:
    """The model's resource variables; a VAR_HANDLE without a shared_name is refused (exit 2).

    TFLM matches variables by strcmp on the shared_name: a missing one is a null pointer it would dereference."""
    unnamed = [f"{op.op}#{op.index}" for op in graph.operators if op.variable is not None and not op.variable[1]]
    if unnamed:
        msg = (f"{source}: {', '.join(unnamed[:4])} names no resource variable (empty shared_name), which TFLite Micro "
               "cannot look up; convert with experimental_enable_resource_variables = True from named tf.Variables")
        raise UnsupportedOpError(msg, ("VAR_HANDLE",))
    return ResourceVariables(tuple(f"{c}/{n}" if c else n for c, n in graph.resource_variables))
