"""Errors across the sandbox boundary as JSON: an edgeopt error keeps its class, message and exit code.

The parent never unpickles what the confined child sends (it ran someone else's code): every message is
JSON, results are validated against their declared type, and an error class is looked up only among
edgeopt's own modules.
"""

from __future__ import annotations

import importlib
import traceback
from typing import Any

from edgeopt.errors import BudgetViolation, EdgeoptError

_ATTRS = ("ops", "op", "node", "detail")


class SandboxedInternalError(EdgeoptError):
    """An unexpected exception inside the confined child (a bug to report): exit 1, its type and first line."""


def encode_error(exc: BaseException) -> dict[str, Any]:
    import errno

    if isinstance(exc, EdgeoptError):
        out: dict[str, Any] = {"module": type(exc).__module__, "cls": type(exc).__qualname__,
                               "message": str(exc), "exit_code": exc.exit_code}
        for name in _ATTRS:
            if hasattr(exc, name):
                value = getattr(exc, name)
                out.setdefault("attrs", {})[name] = list(value) if isinstance(value, tuple) else value
        if hasattr(exc, "violations"):
            out["violations"] = [vars(v) for v in exc.violations]
        return out
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):  # the CLI says where and how much
        name = exc.filename
        return {"oserror": [exc.errno, exc.strerror, None if name is None else str(name),
                            None if exc.filename2 is None else str(exc.filename2)]}
    if isinstance(exc, MemoryError):
        return {"module": "edgeopt.errors", "cls": "InputError", "exit_code": 2,
                "message": "the model's code ran out of memory in the sandbox; try a smaller model or fewer samples"}
    if type(exc).__module__.startswith("tensorflow"):  # the model's graph failed as it ran: the file's fault
        from edgeopt.errors import cause_of

        why = "refused by the sandbox: " if "PermissionDenied" in type(exc).__name__ else ""
        return {"module": "edgeopt.errors", "cls": "ModelCodeError", "exit_code": 2,
                "message": f"the model's own code failed ({why}{type(exc).__name__}): {cause_of(exc, 400)}"}
    line = (str(exc).strip().splitlines() or [""])[0][:300]
    return {"module": __name__, "cls": "SandboxedInternalError", "exit_code": 1,
            "message": f"internal error: {type(exc).__name__}: {line}",
            "traceback": "".join(traceback.format_exception(exc))}


def decode_error(data: dict[str, Any]) -> BaseException:
    if isinstance(data.get("oserror"), list) and len(data["oserror"]) == 4:  # a full disk: as if raised here
        code, text, name, name2 = data["oserror"]
        return OSError(int(code), str(text), name, None, name2)
    module, name = str(data.get("module", "")), str(data.get("cls", ""))
    cls: type[EdgeoptError] = SandboxedInternalError
    if module == "edgeopt" or module.startswith("edgeopt."):
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            found = None
        if isinstance(found, type) and issubclass(found, EdgeoptError):
            cls = found
    exc = cls.__new__(cls)
    Exception.__init__(exc, str(data.get("message", "")))
    exc.exit_code = int(data.get("exit_code", cls.exit_code))
    for key, value in (data.get("attrs") or {}).items():
        if key in _ATTRS:
            setattr(exc, key, tuple(value) if isinstance(value, list) else value)
    if "violations" in data:
        exc.violations = tuple(BudgetViolation(**v) for v in data["violations"])  # type: ignore[attr-defined]
    if data.get("traceback"):
        exc.child_traceback = str(data["traceback"])  # type: ignore[attr-defined]
    return exc
