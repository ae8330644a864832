"""Find the onnx2tf program (ONNX -> float TFLite) and check it is the version edgeopt is tested with.

onnx2tf needs Python >= 3.12 and pins exact versions of numpy, onnx, onnxruntime and LiteRT, so it never lives
in edgeopt's environment and is never imported: it runs as a separate program. Where it is looked for, in order:

    $EDGEOPT_ONNX2TF            path to an onnx2tf executable
    the managed environment     $XDG_CACHE_HOME/edgeopt/onnx2tf-<version>/ (default ~/.cache), made by
                                `edgeopt tools install-onnx2tf` (edgeopt.convert.onnx2tf_env)
    onnx2tf on PATH

A missing tool or another version is RuntimeUnavailableError (exit 2) whose line gives the install command.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edgeopt.errors import RuntimeUnavailableError

ONNX2TF_VERSION = "2.6.9"  # the version the tests run; another one is refused
ENV_VAR = "EDGEOPT_ONNX2TF"
INSTALL_COMMAND = "edgeopt tools install-onnx2tf"
VERSION_TIMEOUT = 60.0  # seconds for `onnx2tf -V` (it imports onnx and onnxruntime: ~0.7 s here)


class ToolSource(StrEnum):
    ENV = "EDGEOPT_ONNX2TF"
    MANAGED = "edgeopt cache"
    PATH = "PATH"


@dataclass(frozen=True)
class Onnx2tfTool:
    command: tuple[str, ...]  # argv prefix that runs onnx2tf (the managed venv: its python -m onnx2tf)
    version: str
    source: ToolSource


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeopt"


def managed_dir() -> Path:
    """The managed environment of the pinned version: $XDG_CACHE_HOME/edgeopt/onnx2tf-<version>."""
    return cache_root() / f"onnx2tf-{ONNX2TF_VERSION}"


def managed_command(env: Path) -> tuple[str, ...]:
    """`python -m onnx2tf` of a venv: its console script's shebang names the folder the venv was built in, and
    edgeopt builds it in a temporary sibling before renaming it."""
    return (str(env / "bin" / "python"), "-m", "onnx2tf")


def find_onnx2tf() -> Onnx2tfTool:
    """The onnx2tf to run, at the pinned version; RuntimeUnavailableError (exit 2) naming the install command."""
    given = os.environ.get(ENV_VAR, "").strip()
    if given:
        exe = Path(given)
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            msg = (f"{ENV_VAR}={given} is not an executable onnx2tf; point it at one, or unset it and run "
                   f"`{INSTALL_COMMAND}`")
            raise RuntimeUnavailableError(msg)
        return _checked((str(exe),), ToolSource.ENV, f"{ENV_VAR}={given}")
    env = managed_dir()
    if (env / "bin" / "python").is_file():
        return _checked(managed_command(env), ToolSource.MANAGED, str(env))
    on_path = shutil.which("onnx2tf")
    if on_path:
        return _checked((on_path,), ToolSource.PATH, on_path)
    msg = (f"onnx2tf {ONNX2TF_VERSION} is not installed (not in {ENV_VAR}, {env} or PATH); "
           f"install it with `{INSTALL_COMMAND}` (a Python >= 3.12 environment of its own, ~660 MB)")
    raise RuntimeUnavailableError(msg)


_known: dict[tuple[object, ...], str] = {}  # versions already read in this process, by command and file identity


def tool_version(command: tuple[str, ...]) -> str | None:
    """What `onnx2tf -V` prints, or None when it does not run (read once per process and executable file)."""
    try:
        exe = Path(command[0])
        key: tuple[object, ...] = (command, exe.stat().st_mtime_ns, exe.parent.stat().st_ino)
    except OSError:
        return None
    if key in _known:
        return _known[key]
    try:
        proc = subprocess.run([*command, "-V"], stdin=subprocess.DEVNULL, capture_output=True, timeout=VERSION_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"\b(\d+\.\d+\.\d+\S*)", proc.stdout.decode("utf-8", "replace"))
    if proc.returncode != 0 or not found:
        return None
    _known[key] = found.group(1)
    return found.group(1)


def _checked(command: tuple[str, ...], source: ToolSource, where: str) -> Onnx2tfTool:
    version = tool_version(command)
    if version is None:
        msg = f"onnx2tf at {where} does not run (`onnx2tf -V` failed); reinstall it with `{INSTALL_COMMAND}`"
        raise RuntimeUnavailableError(msg)
    if version != ONNX2TF_VERSION:
        msg = (f"onnx2tf at {where} is version {version}, edgeopt is tested with {ONNX2TF_VERSION}; "
               f"install that one with `{INSTALL_COMMAND}`")
        raise RuntimeUnavailableError(msg)
    return Onnx2tfTool(command, version, source)
