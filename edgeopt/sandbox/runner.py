"""Parent side: run one library function in a confined child and take back its typed result.

The child (edgeopt.sandbox.child) may write only the folders the caller names and cannot open TCP
connections (unless `network`); it has CPU-time and memory limits. Its messages are JSON lines; its result
is validated against `result_type`; an edgeopt error inside it is raised here with its class and exit code.
While the child is in a phase (channel.phase), the parent kills it when the phase outlives its limit.
Ctrl-C reaches the child (same process group, default SIGINT) and the parent alike; the parent kills the
child and the KeyboardInterrupt goes on (exit 130 in the CLI).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edgeopt.errors import ModelCodeError
from edgeopt.sandbox.wire import decode_error, encode_error

T = TypeVar("T")
CHILD_MODULE = "edgeopt.sandbox.child"
CPU_ENV = "EDGEOPT_SANDBOX_CPU_S"  # CPU-seconds for the whole confined job (default 12 h)
MEMORY_ENV = "EDGEOPT_SANDBOX_MEMORY_MB"  # address-space limit (default: the machine's RAM)
DEFAULT_CPU_S = 12 * 3600


@dataclass(frozen=True)
class Job:
    target: str  # "module:function", a function of edgeopt's own
    kwargs: dict[str, Any]
    result_type: Any  # what the function returns (a dataclass or pydantic model): the JSON is checked against it
    writable: tuple[Path, ...]  # the only places the child may write (the first one holds its TMPDIR)
    network: bool = False  # TCP allowed (an ssh --remote device)
    services: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)  # run here on request


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def _memory_bytes() -> int:
    mb = _int_env(MEMORY_ENV, 0)
    if mb:
        return mb * 1024 * 1024
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return 16 * 1024**3


def spec_of(job: Job, tmp: Path, confine: bool = True) -> dict[str, Any]:
    """The child's rules: it writes `job.writable` and `tmp`, its TMPDIR (a private folder in the system's)."""
    return {"writable": [str(p) for p in (*job.writable, tmp)], "tmp": str(tmp), "network": job.network,
            "cpu_seconds": _int_env(CPU_ENV, DEFAULT_CPU_S), "memory_bytes": _memory_bytes(), "confine": confine}


def call(job: Job, progress: Callable[[str], None], confine: bool = True) -> Any:
    """Run `job` in a confined child; its result, or the error it raised."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="edgeopt-sandbox-"))  # 0700
    try:
        return _call(job, progress, spec_of(job, tmp, confine))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _call(job: Job, progress: Callable[[str], None], spec: dict[str, Any]) -> Any:
    from pydantic import TypeAdapter

    proc = subprocess.Popen([sys.executable, "-m", CHILD_MODULE, json.dumps(spec)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, close_fds=True)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        blob = pickle.dumps({"target": job.target, "kwargs": job.kwargs, "result_type": job.result_type})
        proc.stdin.write(len(blob).to_bytes(8, "big") + blob)
        proc.stdin.flush()
        phase: tuple[str, float, float] | None = None  # name, limit, deadline
        last = "starting"
        buffer = b""
        fd = proc.stdout.fileno()
        while True:
            wait = None if phase is None else max(0.0, phase[2] - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                assert phase is not None
                msg = (f"{phase[0]} did not finish in {phase[1]:g} s: the model's graph may never end (an endless "
                       "loop); check the model, or raise EDGEOPT_MODEL_TIMEOUT if it is just slow")
                raise ModelCodeError(msg)
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                message = json.loads(line)
                kind = message.get("t")
                if kind == "progress":
                    last = str(message.get("text", ""))
                    progress(last)
                elif kind == "phase":
                    phase = (str(message["name"]), float(message["limit"]), time.monotonic() + float(message["limit"]))
                    last = phase[0]
                elif kind == "phase_end":
                    phase = None
                elif kind == "call":
                    _serve(proc, job, message)
                elif kind == "result":
                    return TypeAdapter(job.result_type).validate_json(message["json"])
                elif kind == "error":
                    raise decode_error(message["error"])
        code = proc.wait()
        raise _death(code, last, spec)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()


def _serve(proc: subprocess.Popen[bytes], job: Job, message: dict[str, Any]) -> None:
    service = job.services.get(str(message.get("service")))
    try:
        if service is None:
            msg = f"the sandboxed build asked for an unknown service {message.get('service')!r}"
            raise ModelCodeError(msg)
        answer: dict[str, Any] = {"ok": service(dict(message.get("payload") or {}))}
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - goes back to the child, which raises it where it asked
        answer = {"error": encode_error(exc)}
    assert proc.stdin is not None
    proc.stdin.write((json.dumps(answer) + "\n").encode())
    proc.stdin.flush()


def _death(code: int, last: str, spec: dict[str, Any]) -> ModelCodeError:
    if code < 0:
        sig = signal.Signals(-code)
        if sig in (signal.SIGXCPU, signal.SIGKILL):
            return ModelCodeError(
                f"the model's code was killed ({sig.name}) during '{last}': it used its CPU-time limit "
                f"({spec['cpu_seconds']} s, {CPU_ENV}) or the system ran out of memory")
        if sig == signal.SIGINT:
            raise KeyboardInterrupt
        return ModelCodeError(f"the model's code crashed ({sig.name}) in the sandbox during '{last}'; a native "
                              "crash in TensorFlow usually means a layer or op it cannot run: try EDGEOPT_DEBUG=1")
    return ModelCodeError(f"the sandboxed build ended (exit {code}) during '{last}' without a result; "
                          "rerun with --debug for its output")


def run_model_code(target: str, kwargs: dict[str, Any], result_type: Any, *, out: Path | None = None,
                   writable: tuple[Path, ...] = (), progress: Callable[[str], None] | None = None) -> Any:
    """Run `target(**kwargs)`, a library function that loads and runs a user's model, confined; in this process
    with EDGEOPT_SANDBOX=off. With `out` (a file the function writes, passed as kwargs["out"]), the child
    writes it into a private folder beside `out`; it is moved into place here once the child succeeded, and
    the result names `out`, never the private folder. `writable`: folders the user named for more outputs."""
    import importlib
    import shutil
    import tempfile

    from edgeopt import confine

    if not confine.enabled():
        module, name = target.split(":")
        return getattr(importlib.import_module(module), name)(**kwargs)
    confine.require()
    parent = Path(out).parent if out is not None else None
    try:
        private = Path(tempfile.mkdtemp(prefix=".edgeopt-staging-", dir=parent))
    except OSError as exc:
        msg = f"cannot write into {parent or tempfile.gettempdir()}: {exc.strerror or exc}"
        raise ModelCodeError(msg) from None
    try:
        private.chmod(0o700)
        staged = None if out is None else private / Path(out).name
        if staged is not None:
            kwargs = {**kwargs, "out": staged}
        job = Job(target=target, kwargs=kwargs, result_type=result_type, writable=(private, *writable))
        result = call(job, progress or (lambda _text: None))
        if staged is None or out is None:
            return result
        _publish(staged, Path(out))
        from pydantic import TypeAdapter

        adapter = TypeAdapter(result_type)
        text = adapter.dump_json(result).decode()
        for form in {str(staged), str(staged.resolve())}:
            text = text.replace(json.dumps(form)[1:-1], json.dumps(str(out))[1:-1])
        return adapter.validate_json(text)
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _publish(staged: Path, out: Path) -> None:
    """Move the child's file into place: a regular file with one link (never a link it planted)."""
    import stat

    try:
        st = os.lstat(staged)
    except OSError:
        msg = f"the confined step did not write {out.name}"
        raise ModelCodeError(msg) from None
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        msg = f"the confined step left {out.name} as something other than a plain file; refused"
        raise ModelCodeError(msg)
    staged.replace(out)
