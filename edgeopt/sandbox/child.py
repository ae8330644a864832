"""The confined child: `python -m edgeopt.sandbox.child SPEC` (started by edgeopt.sandbox.runner).

SPEC (JSON) says what the child may write; the confinement is applied first, before numpy or TensorFlow
start threads. Then the job (trusted: it comes from the parent) is read from stdin, run, and its result
sent back as JSON on the original stdout; native output goes to stderr. Ctrl-C kills it at once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from edgeopt import switches


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from edgeopt.parent_death import die_with_parent

    die_with_parent()
    spec = json.loads(sys.argv[1])
    tmp = Path(spec["tmp"])
    os.environ["TMPDIR"] = str(tmp)
    os.environ["KERAS_HOME"] = str(tmp / "keras")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if spec.get("confine", True):
        from edgeopt.confine import Confinement, apply

        apply(Confinement(writable=tuple(Path(p) for p in spec["writable"]), network=bool(spec.get("network")),
                          cpu_seconds=spec.get("cpu_seconds"), memory_bytes=spec.get("memory_bytes")))
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stray native prints must not corrupt the protocol
    import io
    import pickle

    raw = sys.stdin.buffer
    size = int.from_bytes(raw.read(8), "big")
    job = pickle.loads(raw.read(size))  # noqa: S301 - written by the parent edgeopt process, before any model code ran
    from edgeopt.sandbox import channel
    from edgeopt.sandbox.wire import encode_error

    channel.attach(proto, io.TextIOWrapper(raw, encoding="utf-8"))
    try:
        import importlib

        module, name = job["target"].split(":")
        result = getattr(importlib.import_module(module), name)(**job["kwargs"])
        from pydantic import TypeAdapter

        channel.send({"t": "result", "json": TypeAdapter(job["result_type"]).dump_json(result).decode()})
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as JSON
        if switches.debug():
            import traceback

            traceback.print_exception(exc)
        channel.send({"t": "error", "error": encode_error(exc)})
    if "edgeopt.convert.isolated" in sys.modules:  # end the converter's child and reap it (its CPU time is ours)
        sys.modules["edgeopt.convert.isolated"].close()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: TensorFlow's threads can take seconds to wind down
