"""The TFLite converter and calibrator run in a child process, so a native crash is one line, not our death.

TensorFlow's converter is C++: on some valid models it dies with SIGSEGV or SIGABRT instead of raising
(issue 12: a Keras LSTM under int8 calibration). Conversions, calibrations and the quantization
debugger of a build run in one persistent worker (`python -m edgeopt.convert.child`): TensorFlow is
imported once per edgeopt process, not once per conversion, so partial quantization's many re-conversions
stay cheap. A job names a function `edgeopt.<module>:job_<name>(params, arrays, state)`; its parameters
travel as one JSON line, its arrays as .npy files and its .tflite bytes back as a file, all in a private
`mkdtemp` folder that is removed afterwards. The worker is in our process group (Ctrl-C reaches it) and
inherits no file descriptor but its pipes (so never the build lock).

A death by signal becomes ConversionCrashed (exit 2) naming the stage and the likely cause; SIGINT, SIGTERM
or SIGHUP become KeyboardInterrupt (the CLI reports Ctrl-C); an edgeopt error the job raised comes back
with its class and message.

    EDGEOPT_ISOLATE=0                run jobs in this process (debugging; a native crash then kills edgeopt)
    EDGEOPT_TEST_CRASH_STAGE=KEY     test only, read by the child alone: it kills itself with SIGSEGV when a
                                     job of stage KEY starts (convert | calibrate | debug); see tests/robustness
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from edgeopt import errors, switches
from edgeopt.errors import ConversionCrashed, ConversionError

CHILD_MODULE = "edgeopt.convert.child"
JobResult = bytes | dict[str, Any] | list[Any] | str | int | float | None


@dataclass(frozen=True)
class Stage:
    """What a job does, for the message when the child dies during it."""

    name: str  # "int8 calibration", "TFLite conversion": "... crashed (SIGSEGV) during <name>"
    key: str  # convert | calibrate | debug (EDGEOPT_TEST_CRASH_STAGE)
    hint: str  # the likely cause and the fix


def enabled() -> bool:
    return switches.switch("EDGEOPT_ISOLATE", default=True)


def resolve(function: str) -> Any:
    """`edgeopt.module:job_name` -> the function; anything else is refused (the child runs only our jobs)."""
    import importlib

    module, _, name = function.partition(":")
    if not (module.startswith("edgeopt.") and name.startswith("job_")):
        msg = f"not an edgeopt job: {function!r}"
        raise ValueError(msg)
    return getattr(importlib.import_module(module), name)


_STATE: dict[str, Any] = {}  # jobs' state when run in-process (EDGEOPT_ISOLATE=0)


def run(function: str, stage: Stage, params: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Any:
    """Run job `function` with JSON `params` and `arrays` in the worker; return what it returned (bytes or JSON)."""
    if not enabled():
        return resolve(function)(params, dict(arrays or {}), _STATE)
    global _worker
    if _worker is not None and _worker.proc.poll() is not None:  # died between jobs
        _worker.close()
        _worker = None
    if _worker is None:
        _worker = _Worker()
    worker = _worker
    try:
        return worker.call(function, stage, params, arrays or {})
    except BaseException:
        if worker.proc.poll() is not None or not worker.idle:
            worker.close()
            _worker = None
        raise


class _Worker:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="edgeopt-convert-"))
        self.log_path = self.dir / "child.log"
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        debug = switches.debug()  # --debug: native logs on our stderr
        with self.log_path.open("ab") as log:  # O_APPEND: the child truncates it at each job
            self.proc = subprocess.Popen([sys.executable, "-m", CHILD_MODULE, *([] if debug else ["--private-log"])],
                                         stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=None if debug else log, env=env,
                                         close_fds=True)
        self.idle = True
        self.jobs = 0

    def call(self, function: str, stage: Stage, params: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
        self.jobs += 1
        job_dir = self.dir / f"job{self.jobs}"
        job_dir.mkdir(mode=0o700)
        try:
            files = {}
            for name, value in arrays.items():
                files[name] = str(job_dir / f"{name}.npy")
                np.save(files[name], np.asarray(value), allow_pickle=False)
            out = job_dir / "out.bin"
            line = json.dumps({"function": function, "stage": stage.key, "params": params, "arrays": files,
                               "out": str(out)}) + "\n"
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.idle = False
            try:
                self.proc.stdin.write(line.encode())
                self.proc.stdin.flush()
                answer = self.proc.stdout.readline()
            except BrokenPipeError:
                answer = b""
            if not answer:
                raise _death(self.proc.wait(), stage, self._log_tail())
            self.idle = True
            result = json.loads(answer)
            if not result.get("ok"):
                raise _error(result)
            return out.read_bytes() if result.get("bytes") else result.get("value")
        finally:
            shutil.rmtree(job_dir, ignore_errors=True)

    def _log_tail(self) -> str:
        """The last native fatal line (TensorFlow's `F ... Check failed`), if the child wrote one."""
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(max(0, self.log_path.stat().st_size - 8192))
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        fatal = [ln for ln in lines if "Check failed" in ln or ln.startswith("F") or "Fatal" in ln or "Aborted" in ln]
        return " ".join((fatal[-1] if fatal else "").split())[:200]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:  # nothing in the child is worth waiting for: a prewarmed one may still be importing TF
                self.proc.wait(timeout=1 if self.idle and self.jobs else 0.05)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_worker: _Worker | None = None


def prewarm() -> None:
    """Start the worker now, so its TensorFlow import overlaps the caller's own work (a build loading its model)."""
    global _worker
    if enabled() and (_worker is None or _worker.proc.poll() is not None):
        _worker = _Worker()


def close() -> None:
    """Stop the worker (at exit; a later job starts a new one)."""
    global _worker
    if _worker is not None:
        _worker.close()
        _worker = None


atexit.register(close)


def _death(code: int, stage: Stage, tail: str) -> BaseException:
    if code < 0:
        sig = -code
        if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # Ctrl-C or kill reached the whole group
            return KeyboardInterrupt()
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        if sig == signal.SIGKILL:
            return ConversionCrashed(f"the TFLite converter was killed (SIGKILL, usually the kernel's out-of-memory "
                                     f"killer) during {stage.name}; give it more memory, fewer calibration samples "
                                     "(--calib) or a smaller model")
        native = f" ({tail})" if tail else ""
        return ConversionCrashed(f"the TFLite converter crashed ({name}) during {stage.name}{native}; {stage.hint}")
    return ConversionCrashed(f"the TFLite converter's child process exited with code {code} during {stage.name}"
                             f"{' (' + tail + ')' if tail else ''}; {stage.hint}")


def _error(result: dict[str, Any]) -> BaseException:
    """The job's exception, rebuilt: an edgeopt error keeps its class; anything else stays an internal error."""
    name = str(result.get("class", ""))
    message = (str(result.get("message", "")).splitlines() or ["unknown error"])[0][:600]
    cls = getattr(errors, name, None)
    if cls is errors.UnsupportedOpError:
        return errors.UnsupportedOpError(message, tuple(result.get("ops", ())))
    if isinstance(cls, type) and issubclass(cls, errors.EdgeoptError):
        try:
            return cls(message)
        except TypeError:
            return ConversionError(message)
    return RuntimeError(f"{name}: {message} (in the converter's child process)")


def serve(stdin: IO[bytes], proto: IO[str], private_log: bool) -> int:
    """The child's loop (edgeopt.convert.child): one JSON job per stdin line, one JSON answer per line.

    `private_log`: fd 2 is the parent's log file of this child (truncated at each job), not a user's stderr.
    """
    state: dict[str, Any] = {}
    crash_stage = os.environ.get("EDGEOPT_TEST_CRASH_STAGE", "")
    for raw in stdin:
        if not raw.strip():
            continue
        job = json.loads(raw)
        if private_log:
            with contextlib.suppress(OSError):
                os.ftruncate(2, 0)  # the log holds the current job's native lines only
        if crash_stage and crash_stage == job.get("stage"):
            os.kill(os.getpid(), signal.SIGSEGV)  # test only: a real native-style death in this stage
        answer: dict[str, Any]
        try:
            arrays = {k: np.load(v, allow_pickle=False) for k, v in job.get("arrays", {}).items()}
            value = resolve(job["function"])(job.get("params", {}), arrays, state)
            if isinstance(value, bytes | bytearray):
                Path(job["out"]).write_bytes(bytes(value))
                answer = {"ok": True, "bytes": True}
            else:
                answer = {"ok": True, "value": value}
        except errors.EdgeoptError as exc:
            answer = {"ok": False, "class": type(exc).__name__, "message": str(exc),
                      "ops": list(getattr(exc, "ops", ()))}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it as internal
            answer = {"ok": False, "class": type(exc).__name__, "message": errors.first_line(exc)}
        proto.write(json.dumps(answer) + "\n")
        proto.flush()
    return 0
