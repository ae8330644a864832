"""Create edgeopt's own environment for onnx2tf: `edgeopt tools install-onnx2tf [--python PATH]`.

onnx2tf needs Python >= 3.12 and exact versions of its dependencies, so it gets a venv of its own in
$XDG_CACHE_HOME/edgeopt/onnx2tf-<version>/ (edgeopt.convert.onnx2tf_tool finds it there). The venv is built in a
temporary sibling folder and renamed into place only once `onnx2tf -V` runs in it, so an interrupted or failed
install never leaves a half environment where the finder looks. `pip install onnx2tf==<version>` is all its
default back end (flatbuffer_direct: no TensorFlow) needs; measured: ~30 s with a warm pip cache, ~3 min cold,
661 MB.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from edgeopt.convert.onnx2tf_tool import (
    ONNX2TF_VERSION,
    cache_root,
    managed_command,
    managed_dir,
    tool_version,
)
from edgeopt.errors import InputError, RuntimeUnavailableError

MIN_PYTHON = (3, 12)
PIP_TIMEOUT = 1800.0  # seconds for the whole pip install
PROBE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Onnx2tfEnvironment:
    path: Path
    python: str  # the interpreter the venv was made from
    version: str  # onnx2tf's
    created: bool  # False when it was already there
    seconds: float
    size_bytes: int


def python_version(python: str) -> tuple[int, int] | None:
    try:
        proc = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = proc.stdout.decode().split()
    return (int(parts[0]), int(parts[1])) if proc.returncode == 0 and len(parts) == 2 else None


def find_python(explicit: str | None = None) -> str:
    """--python, else python3.13 / python3.12 on PATH, else pyenv's under ~/.pyenv/versions: the first >= 3.12."""
    need = ".".join(map(str, MIN_PYTHON))
    if explicit:
        got = python_version(explicit)
        if got is None:
            msg = f"--python {explicit} does not run; give the path of a Python >= {need} interpreter"
            raise InputError(msg)
        if got < MIN_PYTHON:
            msg = f"--python {explicit} is Python {got[0]}.{got[1]}; onnx2tf needs Python >= {need}"
            raise InputError(msg)
        return explicit
    candidates = [p for p in (shutil.which("python3.13"), shutil.which("python3.12")) if p]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    candidates += [str(p) for p in sorted(pyenv.glob("3.1[2-9]*/bin/python3"), reverse=True)]
    for candidate in candidates:
        got = python_version(candidate)
        if got is not None and got >= MIN_PYTHON:
            return candidate
    msg = (f"no Python >= {need} found (python3.13/python3.12 on PATH or under {pyenv}); install one and give it "
           "with --python PATH")
    raise RuntimeUnavailableError(msg)


def install_onnx2tf(python: str | None = None) -> Onnx2tfEnvironment:
    """The managed onnx2tf environment, created when missing (a few minutes the first time)."""
    start = time.perf_counter()
    final = managed_dir()
    if (final / "bin" / "python").is_file() and tool_version(managed_command(final)) == ONNX2TF_VERSION:
        return Onnx2tfEnvironment(final, _base_of(final), ONNX2TF_VERSION, False, 0.0, _size(final))
    interpreter = find_python(python)
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    except OSError as exc:
        msg = f"cannot write the edgeopt cache {root}: {exc.strerror or exc}; set XDG_CACHE_HOME to a writable folder"
        raise InputError(msg) from None
    try:
        _run([interpreter, "-m", "venv", str(tmp)], "creating the venv")
        _run([str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", f"onnx2tf=={ONNX2TF_VERSION}"],
             f"pip install onnx2tf=={ONNX2TF_VERSION}")
        got = tool_version(managed_command(tmp))
        if got != ONNX2TF_VERSION:
            msg = f"the new onnx2tf environment does not run onnx2tf {ONNX2TF_VERSION} (`onnx2tf -V`: {got})"
            raise RuntimeUnavailableError(msg)
        if final.exists() and tool_version(managed_command(final)) != ONNX2TF_VERSION:
            shutil.rmtree(final)  # a broken leftover, replaced by the complete one
        try:
            tmp.rename(final)
        except OSError:  # another install finished first: keep that one (it may be running), drop ours
            if tool_version(managed_command(final)) != ONNX2TF_VERSION:
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return Onnx2tfEnvironment(final, interpreter, ONNX2TF_VERSION, True, round(time.perf_counter() - start, 1),
                              _size(final))


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=PIP_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        msg = f"{what} took over {PIP_TIMEOUT:g} s; check the network / package index and try again"
        raise RuntimeUnavailableError(msg) from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.decode("utf-8", "replace").splitlines()
                 if ln.strip() and "is ignored" not in ln]
        tail = lines[-1].strip()[:300] if lines else f"exit {proc.returncode}"
        msg = f"{what} failed: {tail}"
        raise RuntimeUnavailableError(msg)


def _base_of(env: Path) -> str:
    with contextlib.suppress(OSError):
        for line in (env / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "executable":
                return value.strip()
    return ""


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(dirpath) / name).lstat().st_size
    return total
