"""edgeopt: convert, compress and prove trained models for edge devices.

Public calls are resolved lazily (module `__getattr__`), so `import edgeopt` and the CLI's start stay fast and
import no framework: `edgeopt.from_torch` imports torch only when called.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "from_torch": "edgeopt.load.torch_export",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    msg = f"module 'edgeopt' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
