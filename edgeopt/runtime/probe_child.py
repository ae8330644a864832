"""The probe's child process: `python -m edgeopt.runtime.probe_child`, one per edgeopt process (and thread).

It serves jobs, one JSON line each on stdin: {"runtime", "path", "threads", "xnnpack", "graph_opt", "shapes",
"feeds", "int_range"}. For each it opens the model with the runtime registry and invokes it once on the
caller's data (`feeds`: an .npz of the sample the benchmark feeds), else on seeded random inputs (`shapes` for
symbolic dims; integers from `int_range` [LO, HI]); it answers one JSON line on stdout ({"ok": true} or the
error's class and message) for edgeopt.runtime.probe to read, then waits for the next job. It dies with
edgeopt (PR_SET_PDEATHSIG, edgeopt.parent_death). Its own module, so the registry (which calls the probe) and
the probe do not import each other.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from edgeopt import errors
from edgeopt.parent_death import die_with_parent


def main(argv: list[str]) -> int:
    die_with_parent()
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # native chatter on stdout goes to stderr; stdout carries only the answers
    for line in sys.stdin:
        if line.strip():
            proto.write(json.dumps(_job(line)) + "\n")
            proto.flush()
    return 0


def _job(line: str) -> dict[str, Any]:
    path, runtime = "?", "?"
    try:
        job = json.loads(line)
        path, runtime = str(job["path"]), str(job["runtime"])
        lo_hi = job.get("int_range")
        _open_and_invoke(runtime, Path(path), int(job["threads"]), bool(job["xnnpack"]), str(job["graph_opt"]),
                         {k: tuple(v) for k, v in (job.get("shapes") or {}).items()}, str(job.get("feeds") or ""),
                         (int(lo_hi[0]), int(lo_hi[1])) if lo_hi else None)
    except errors.EdgeoptError as exc:
        return {"ok": False, "class": type(exc).__name__, "message": str(exc), "ops": list(getattr(exc, "ops", ()))}
    except Exception as exc:  # noqa: BLE001 - a runtime error on a loaded model means the model cannot run
        return {"ok": False, "class": "ModelFileError",
                "message": f"{path}: {runtime} cannot run the model: {errors.first_line(exc)}"}
    return {"ok": True}


def _open_and_invoke(runtime: str, path: Path, threads: int, xnnpack: bool, graph_opt: str,
                     shapes: dict[str, tuple[int, ...]] | None = None, feeds: str = "",
                     int_range: tuple[int, int] | None = None) -> None:
    import numpy as np

    from edgeopt.runtime.base import GraphOptimization, RunnerOptions, RuntimeName
    from edgeopt.runtime.registry import RUNTIMES
    from edgeopt.runtime.shapes import data_sample, describe_shapes, order_arrays, resolve_inputs, shape_hint
    from edgeopt.runtime.tensors import INT_RANGE, random_input

    options = RunnerOptions(threads=threads, xnnpack=xnnpack, graph_optimization=GraphOptimization(graph_opt))
    runner = RUNTIMES[RuntimeName(runtime)](path, options)
    rng = np.random.default_rng(0)
    if feeds:  # the caller's data, as the benchmark will feed it
        with np.load(feeds, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        values = [data_sample(t, a) for t, a in zip(runner.inputs, order_arrays(runner.inputs, data), strict=True)]
        runner.run(values)
        return
    infos = resolve_inputs(runner.inputs, shapes or {})
    try:
        runner.run([random_input(t, rng, int_range=int_range or INT_RANGE) for t in infos])
    except errors.EdgeoptError:
        raise
    except Exception as exc:  # noqa: BLE001 - say when the size we guessed may be the cause
        unsized = [t for t in infos if any(d <= 0 for d in t.shape)]
        if not unsized:
            raise
        msg = (
            f"{path}: {runtime} cannot run the model with its symbolic dimensions fed as 1 "
            f"({describe_shapes(tuple(unsized))}): {errors.first_line(exc)}; give the real "
            f"size with {shape_hint((t.name, t.shape) for t in unsized)} "
            "or data with --input"
        )
        raise errors.ModelFileError(msg) from None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
