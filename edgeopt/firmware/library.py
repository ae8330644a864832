"""The TFLite Micro + CMSIS-NN static library for one core: compiled once per object, cached.

Cache: $XDG_CACHE_HOME/edgeopt/tflm (default ~/.cache/edgeopt/tflm), one folder per
(core flags, compiler version, TFLM tree hash) holding `obj/<source>.o` and `libtflm.a`.

The library grows on demand: the TFLM framework (everything under tensorflow/ except the
kernels and the test/recording helpers) is compiled first; a kernel, CMSIS-NN or signal source is compiled the first time a
link needs a symbol it defines (image.py links, reads the undefined symbols, asks
`provide()`, links again). So the first image for a core compiles the framework plus that
model's kernels, and any later image with the same ops compiles nothing. All objects use
-ffunction-sections -fdata-sections; the image links with --gc-sections.

Concurrency: a build holds the folder's lock file; objects and the archive are written to
temporary names and published with os.replace, so a reader never sees a half-written file.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import InputError
from edgeopt.firmware.cores import CoreSpec
from edgeopt.firmware.toolchain import Toolchain
from edgeopt.firmware.tree import TflmTree

LIBRARY_FORMAT = 1  # bump when the flags or layout below change meaning
OPT = ("-O2",)
COMMON = ("-mthumb", "-ffunction-sections", "-fdata-sections", "-fno-unwind-tables", "-funsigned-char",
          "-fomit-frame-pointer", "-w",
          "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_MCU_DEBUG_LOG", "-DTF_LITE_USE_GLOBAL_CMATH_FUNCTIONS",
          "-DTF_LITE_USE_GLOBAL_MAX", "-DTF_LITE_USE_GLOBAL_MIN", "-DCMSIS_NN", "-DKERNELS_OPTIMIZED_FOR_SPEED")
CXX = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-fno-use-cxa-atexit")
C = ("-std=c11",)
ON_DEMAND = ("tensorflow/lite/micro/kernels/", "third_party/", "signal/")
# Framework files an application does not link (test and recording helpers): compiled only when a link asks.
NOT_IN_BASE = re.compile(r"(^|/)(test_helper[^/]*|mock_[^/]*|fake_[^/]*|recording_[^/]*|hexdump|micro_profiler|"
                         r"system_setup)\.cc$")


@dataclass(frozen=True)
class Library:
    path: Path  # libtflm.a: every object compiled so far for this core, flags and tree
    key: str
    cached: bool  # True when this image needed no compilation at all
    seconds: float  # wall time spent compiling and archiving for this image (0 when cached)
    objects: int  # objects in the archive
    compiled: int  # objects compiled for this image
    flags: tuple[str, ...]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeopt"


def compile_flags(spec: CoreSpec) -> tuple[str, ...]:
    return (*spec.cflags, *OPT, *COMMON)


def library_key(spec: CoreSpec, tc: Toolchain, tree: TflmTree) -> str:
    blob = json.dumps({"format": LIBRARY_FORMAT, "flags": compile_flags(spec), "cxx": CXX, "c": C,
                       "compiler": tc.version, "tree": tree.sha256}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _jobs() -> int:
    env = os.environ.get("EDGEOPT_JOBS", "")
    return max(1, int(env)) if env.isdigit() else max(1, os.cpu_count() or 1)


def _names(symbol: str) -> tuple[str, str]:
    """(identifier, regex of its definition) for a demangled symbol from the linker."""
    s = symbol.strip()
    for prefix in ("vtable for ", "typeinfo for ", "VTT for "):
        if s.startswith(prefix):
            cls = re.sub(r"<.*>", "", s.removeprefix(prefix)).split("::")[-1]
            return cls, rf"(?m)^\S.*\b{re.escape(cls)}::"
    head = s.split("(", 1)[0]
    head = re.sub(r"<[^<>]*>", "", re.sub(r"<[^<>]*>", "", head))
    name = head.split("::")[-1].split()[-1] if head.split("::")[-1].split() else head
    return name, rf"(?m)^\S.*\b{re.escape(name)}\b"


class LibraryCache:
    """The cached objects of one (core, flags, compiler, tree)."""

    def __init__(self, spec: CoreSpec, tc: Toolchain, tree: TflmTree) -> None:
        self.spec, self.tc, self.tree = spec, tc, tree
        self.key = library_key(spec, tc, tree)
        self.flags = compile_flags(spec)
        self.dir = cache_root() / "tflm" / f"{spec.core}-{self.key[:16]}"
        self.archive = self.dir / "libtflm.a"
        self.compiled = 0
        self.seconds = 0.0
        self._texts: dict[Path, str] = {}

    def object_for(self, src: Path) -> Path:
        return self.dir / "obj" / (src.relative_to(self.tree.tree).as_posix() + ".o")

    def _all_sources(self) -> tuple[Path, ...]:
        return self.tree.sources()

    def base_sources(self) -> list[Path]:
        rel = [(s, s.relative_to(self.tree.tree).as_posix()) for s in self._all_sources()]
        return [s for s, r in rel if not r.startswith(ON_DEMAND) and not NOT_IN_BASE.search(r)]

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            (self.dir / "obj").mkdir(parents=True, exist_ok=True)
            with (self.dir / ".lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield
        except OSError as exc:
            msg = (
                f"cannot write the TFLM library cache {self.dir}: {exc.strerror or exc}; "
                             "set XDG_CACHE_HOME to a writable folder"
            )
            raise InputError(msg) from None

    def _compile_one(self, src: Path) -> str:
        obj = self.object_for(src)
        obj.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{obj.name}.", suffix=".tmp", dir=obj.parent)
        os.close(fd)
        cxx = src.suffix in (".cc", ".cpp")
        cmd = [str(self.tc.gxx if cxx else self.tc.gcc), *self.flags, *(CXX if cxx else C), *self.tree.includes(),
               "-c", str(src), "-o", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            Path(tmp).unlink()
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:300])
            return f"{src.relative_to(self.tree.tree)}: {first}"
        Path(tmp).replace(obj)
        return ""

    def compile(self, sources: Iterable[Path]) -> int:
        """Compile the sources that have no cached object yet; refresh the archive. Returns how many."""
        t0 = time.perf_counter()
        with self._locked():
            todo = [s for s in sources if not self.object_for(s).is_file()]
            if todo:
                with ThreadPoolExecutor(max_workers=_jobs()) as pool:
                    errors = [e for e in pool.map(self._compile_one, todo) if e]
                if errors:
                    msg = (
                        f"--tflm {self.tree.root}: the TFLM tree does not compile for {self.spec.core} "
                                     f"({len(errors)} file(s)); first: {errors[0]}"
                    )
                    raise InputError(msg)
            if todo or not self.archive.is_file():
                self._publish_archive()
        self.compiled += len(todo)
        if todo:
            self.seconds += time.perf_counter() - t0
        return len(todo)

    def _objects(self) -> list[Path]:
        return sorted((self.dir / "obj").rglob("*.o"))

    def _publish_archive(self) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".libtflm.", suffix=".a", dir=self.dir)
        os.close(fd)
        Path(tmp).unlink()  # ar creates it
        objs = [str(o) for o in self._objects()]
        proc = subprocess.run([str(self.tc.ar), "rcs", tmp, *objs], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            msg = f"{self.tc.ar} failed on the TFLM objects: {proc.stderr.strip()[:300]}"
            raise InputError(msg)
        Path(tmp).replace(self.archive)
        info = {"core": str(self.spec.core), "flags": list(self.flags), "compiler": self.tc.version,
                "tree": str(self.tree.root), "tree_sha256": self.tree.sha256, "objects": len(objs)}
        fd, meta = tempfile.mkstemp(prefix=".build.", suffix=".json", dir=self.dir)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(info, indent=2) + "\n")
        Path(meta).replace(self.dir / "build.json")

    def provide(self, symbols: Iterable[str]) -> tuple[int, tuple[str, ...]]:
        """Compile the not-yet-compiled sources defining `symbols`. Returns (compiled, symbols nobody defines)."""
        pending = [s for s in self._all_sources() if not self.object_for(s).is_file()]
        for s in pending:
            if s not in self._texts:
                self._texts[s] = s.read_text(errors="replace")
        want: list[Path] = []
        unknown = []
        for sym in symbols:
            name, definition = _names(sym)
            hits = [s for s in pending if name in self._texts[s] and re.search(definition, self._texts[s])]
            if not hits:
                unknown.append(sym)
            want += [h for h in hits if h not in want]
        return (self.compile(want) if want else 0), tuple(unknown)

    def library(self) -> Library:
        return Library(self.archive, self.key, self.compiled == 0, self.seconds, len(self._objects()), self.compiled,
                       self.flags)


def ensure_library(spec: CoreSpec, tc: Toolchain, tree: TflmTree) -> LibraryCache:
    """The library cache for this core with the TFLM framework compiled (kernels follow on demand)."""
    cache = LibraryCache(spec, tc, tree)
    cache.compile(cache.base_sources())
    return cache
