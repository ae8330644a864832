"""The probe's child process: `python -m edgeopt.runtime.probe_child RUNTIME PATH THREADS XNNPACK GRAPHOPT`.

Opens the model with the runtime registry and invokes it once on seeded random
inputs; prints one JSON line on stdout ({"ok": true} or the error's class and
message) for edgeopt.runtime.probe to read. Its own module, so the registry (which
calls the probe) and the probe do not import each other.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from edgeopt import errors


def main(argv: list[str]) -> int:
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # native chatter on stdout goes to stderr; stdout carries only the answer
    runtime, path, threads, xnnpack, graph_opt = argv
    answer: dict[str, Any]
    try:
        _open_and_invoke(runtime, Path(path), int(threads), xnnpack == "1", graph_opt)
        answer = {"ok": True}
    except errors.EdgeoptError as exc:
        answer = {"ok": False, "class": type(exc).__name__, "message": str(exc), "ops": list(getattr(exc, "ops", ()))}
    except Exception as exc:  # noqa: BLE001 - a runtime error on a loaded model means the model cannot run
        answer = {"ok": False, "class": "ModelFileError",
                  "message": f"{path}: {runtime} cannot run the model: {errors.first_line(exc)}"}
    proto.write(json.dumps(answer) + "\n")
    proto.flush()
    return 0


def _open_and_invoke(runtime: str, path: Path, threads: int, xnnpack: bool, graph_opt: str) -> None:
    import numpy as np

    from edgeopt.runtime.base import GraphOptimization, RunnerOptions, RuntimeName
    from edgeopt.runtime.registry import RUNTIMES
    from edgeopt.runtime.tensors import random_input

    options = RunnerOptions(threads=threads, xnnpack=xnnpack, graph_optimization=GraphOptimization(graph_opt))
    runner = RUNTIMES[RuntimeName(runtime)](path, options)
    rng = np.random.default_rng(0)
    runner.run([random_input(t, rng) for t in runner.inputs])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
