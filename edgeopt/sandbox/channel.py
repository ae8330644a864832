"""The confined side's line to its parent: progress, time-limited phases, services the parent runs.

Outside a sandbox child (EDGEOPT_SANDBOX=off, or library code called directly) every call is local:
progress goes to the callback given, phases are not timed, services run in this process.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

LOAD_TIMEOUT_ENV = "EDGEOPT_MODEL_TIMEOUT"  # seconds for loading the model and for the float reference
DEFAULT_LOAD_TIMEOUT_S = 600.0

_lock = threading.Lock()
_out: IO[str] | None = None  # the protocol stream to the parent (set by edgeopt.sandbox.child)
_in: IO[str] | None = None
_depth = 0  # nested phases: only the outermost is timed


def attach(out: IO[str], inp: IO[str]) -> None:
    global _out, _in
    _out, _in = out, inp


def confined() -> bool:
    return _out is not None


def send(message: dict[str, Any]) -> None:
    assert _out is not None
    with _lock:
        _out.write(json.dumps(message) + "\n")
        _out.flush()


def model_timeout() -> float:
    raw = os.environ.get(LOAD_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_LOAD_TIMEOUT_S
    except ValueError:
        value = DEFAULT_LOAD_TIMEOUT_S
    return value if value > 0 else DEFAULT_LOAD_TIMEOUT_S


@contextmanager
def phase(name: str, limit_s: float | None = None) -> Iterator[None]:
    """A step of the model's own code that must end within `limit_s` (default: $EDGEOPT_MODEL_TIMEOUT): the
    parent kills the child past it (a graph with an endless loop never returns to Python to be stopped).
    In the sandbox, an exception other than edgeopt's from inside the step is the model's code failing (a
    write the sandbox refused, a layer that raises): ModelCodeError, exit 2. Phases may nest; the outer
    one is timed."""
    global _depth
    if _out is None:
        yield
        return
    from edgeopt.errors import EdgeoptError, ModelCodeError

    if _depth == 0:
        send({"t": "phase", "name": name, "limit": limit_s or model_timeout()})
    _depth += 1
    try:
        yield
    except (EdgeoptError, KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except OSError as exc:
        import errno

        if exc.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk is not the model's doing
            raise
        raise ModelCodeError(_phase_message(name, exc)) from exc
    except Exception as exc:
        raise ModelCodeError(_phase_message(name, exc)) from exc
    finally:
        _depth -= 1
        if _depth == 0:
            send({"t": "phase_end"})


def _phase_message(name: str, exc: BaseException) -> str:
    from edgeopt.errors import cause_of

    denied = _denied(exc)
    refused = "" if denied is None else f" (refused by the sandbox: {cause_of(denied, 200)})"
    return f"{name} failed in the model's own code{refused}: {type(exc).__name__}: {cause_of(exc, 400)}"


def _denied(exc: BaseException) -> BaseException | None:
    """The permission error in `exc`'s chain, if any (Keras re-raises a Lambda's error as another type)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PermissionError) or "PermissionDenied" in type(current).__name__:
            return current
        current = current.__cause__ or current.__context__
    return None


def ask(service: str, payload: dict[str, Any]) -> Any:
    """Ask the parent to run `service` (e.g. the firmware build, which writes the compile cache the child may
    not touch). Returns its JSON answer; an error there is re-raised here."""
    assert _out is not None and _in is not None
    send({"t": "call", "service": service, "payload": payload})
    answer = json.loads(_in.readline())
    if "error" in answer:
        from edgeopt.sandbox.wire import decode_error

        raise decode_error(answer["error"])
    return answer["ok"]
