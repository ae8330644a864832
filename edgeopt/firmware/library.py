"""The TFLite Micro + CMSIS-NN static library for one core: compiled once per object, cached.

Cache: $XDG_CACHE_HOME/edgeopt/tflm (default ~/.cache/edgeopt/tflm), one folder per
(core flags, compiler version, TFLM tree hash) holding `obj/<source>.o` and `libtflm.a`.

The library grows on demand: the TFLM framework (everything under tensorflow/ except the
kernels and the test/recording helpers) is compiled first; a kernel, CMSIS-NN or signal source is compiled the first time a
link needs a symbol it defines (image.py links, reads the undefined symbols, asks
`provide()`, links again). So the first image for a core compiles the framework plus that
model's kernels, and any later image with the same ops compiles nothing. All objects use
-ffunction-sections -fdata-sections; the image links with --gc-sections.

Concurrency: a build holds the folder's lock file (opened like the build lock, edgeopt.atomic.open_lock_file:
a planted symbolic link, hard link or FIFO is refused, nothing is truncated); objects and the archive are written
to temporary names (.NAME.RANDOM.tmp) and published with os.replace, so a reader never sees a half-written file.
Temporary files a killed build left are swept when the lock is taken (every write happens under the lock).
Compilers get PR_SET_PDEATHSIG (edgeopt.parent_death; their cc1plus/as via Toolchain.wrapper) and a timeout: a
SIGKILLed edgeopt leaves none running.

Trust: the folders are private (edgeopt.firmware.cache_folder: 0700, refused when others can write them) and every
object and libtflm.a is content-addressed (edgeopt.firmware.cache_index: sha256 recorded when built, checked under
the lock before every link). A file that fails its hash or that the index does not know is rebuilt, never linked,
and the firmware result says so in its notes.
"""

from __future__ import annotations

import contextlib
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

from edgeopt.atomic import open_lock_file, write_text_atomic
from edgeopt.errors import InputError
from edgeopt.firmware.cache_folder import TEMP_SUFFIX, private_folders, sweep_temporary
from edgeopt.firmware.cache_index import CacheIndex, file_sha256
from edgeopt.firmware.cores import CoreSpec
from edgeopt.firmware.toolchain import Toolchain
from edgeopt.firmware.tree import TflmTree
from edgeopt.parent_death import preexec

LIBRARY_FORMAT = 2  # bump when the flags or layout below change meaning (2: content index, private folders)
COMPILE_TIMEOUT_S = 600.0  # one translation unit
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
    notes: tuple[str, ...] = ()  # what the cache check found and repaired ("TFLM cache: ...")


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


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
    """The cached objects of one (core, flags, compiler, tree); its folders are checked (and made) at once."""

    def __init__(self, spec: CoreSpec, tc: Toolchain, tree: TflmTree) -> None:
        self.spec, self.tc, self.tree = spec, tc, tree
        self.key = library_key(spec, tc, tree)
        self.flags = compile_flags(spec)
        self.dir = cache_root() / "tflm" / f"{spec.core}-{self.key[:16]}"
        self.obj = self.dir / "obj"
        self.archive = self.dir / "libtflm.a"
        self.compiled = 0
        self.seconds = 0.0
        self.notes: list[str] = []
        self._texts: dict[Path, str] = {}
        self._folders()

    def _folders(self) -> None:
        """The cache root, tflm/, this key's folder and obj/: private (0700 when made), else InputError."""
        root = cache_root()
        try:
            root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot create the cache folder {root.parent}: {exc.strerror or exc}; set XDG_CACHE_HOME to a writable folder"
            raise InputError(msg) from None
        private_folders(root, "tflm", self.dir.name, "obj")

    def object_for(self, src: Path) -> Path:
        return self.obj / self._rel(src)

    def _rel(self, src: Path) -> str:
        """The object's path under obj/ (the index key): the source's path in the tree + .o."""
        return src.relative_to(self.tree.tree).as_posix() + ".o"

    def _all_sources(self) -> tuple[Path, ...]:
        return self.tree.sources()

    def base_sources(self) -> list[Path]:
        rel = [(s, s.relative_to(self.tree.tree).as_posix()) for s in self._all_sources()]
        return [s for s, r in rel if not r.startswith(ON_DEMAND) and not NOT_IN_BASE.search(r)]

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    @contextmanager
    def _locked(self) -> Iterator[CacheIndex]:
        """Hold the folder's lock; sweep what a killed build left; check every recorded hash. Yields the index."""
        self._folders()  # again: a folder may have changed since this cache was opened
        fd = open_lock_file(self.dir / ".lock")  # OutputError (exit 2) for a planted link or FIFO
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            swept = sweep_temporary(self.dir)
            if swept:
                self._note(f"TFLM cache: removed {_plural(swept, 'temporary file', 'temporary files')} an "
                           "interrupted build left")
            self._drop_links()
            index = CacheIndex.load(self.dir)
            self._drop_unrecorded(index)
            yield index
        except OSError as exc:
            msg = (
                f"cannot write the TFLM library cache {self.dir}: {exc.strerror or exc}; "
                "set XDG_CACHE_HOME to a writable folder"
            )
            raise InputError(msg) from None
        finally:
            os.close(fd)

    def _drop_links(self) -> None:
        """Remove every symbolic link under obj/ (never followed): a folder linked elsewhere would get objects
        compiled into it, a linked object never passes its hash. What they stood for is rebuilt."""
        found = []
        for dirpath, dirnames, filenames in os.walk(self.obj):  # os.walk does not descend into linked folders
            here = Path(dirpath)
            found += [here / n for n in [*dirnames, *filenames] if (here / n).is_symlink()]
        for p in found:
            with contextlib.suppress(OSError):
                p.unlink()
        if found:
            self._note(f"TFLM cache: removed {_plural(len(found), 'symbolic link', 'symbolic links')} from obj/")

    def _drop_unrecorded(self, index: CacheIndex) -> None:
        """Remove objects the index does not know (planted, or published by a build killed before recording them)."""
        found = [p for p in self.obj.rglob("*.o") if p.relative_to(self.obj).as_posix() not in index.objects]
        for p in found:
            with contextlib.suppress(OSError):
                p.unlink()
        if found:
            self._note(f"TFLM cache: removed {_plural(len(found), 'object', 'objects')} with no recorded hash "
                       "(not built by edgeopt here, or by a build that was killed)")

    def _check_objects(self, index: CacheIndex) -> list[Path]:
        """Drop every recorded object whose bytes fail their hash; the sources to compile again."""
        bad = [rel for rel, digest in index.objects.items() if file_sha256(self.obj / rel) != digest]
        for rel in bad:
            del index.objects[rel]
            with contextlib.suppress(OSError):
                (self.obj / rel).unlink()
        if bad:
            self._note(f"TFLM cache: {_plural(len(bad), 'object', 'objects')} failed "
                       f"{'its' if len(bad) == 1 else 'their'} hash, rebuilt")
        sources = [self.tree.tree / rel.removesuffix(".o") for rel in bad]
        return [s for s in sources if s.is_file()]

    def _compile_one(self, src: Path) -> tuple[Path, str, str]:
        """(source, error or "", sha256 of the object published or "")."""
        obj = self.object_for(src)
        obj.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{obj.name}.", suffix=TEMP_SUFFIX, dir=obj.parent)
        os.close(fd)
        cxx = src.suffix in (".cc", ".cpp")
        cmd = [str(self.tc.gxx if cxx else self.tc.gcc), *self.tc.wrapper, *self.flags, *(CXX if cxx else C),
               *self.tree.includes(), "-c", str(src), "-o", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=COMPILE_TIMEOUT_S,
                                  preexec_fn=preexec())  # noqa: PLW1509 - one libc call, resolved beforehand
        except subprocess.TimeoutExpired:
            Path(tmp).unlink(missing_ok=True)
            return src, f"{src.relative_to(self.tree.tree)}: the compiler ran over {COMPILE_TIMEOUT_S:.0f} s", ""
        if proc.returncode != 0:
            Path(tmp).unlink(missing_ok=True)
            first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr.strip()[:300])
            return src, f"{src.relative_to(self.tree.tree)}: {first}", ""
        digest = file_sha256(Path(tmp)) or ""
        Path(tmp).replace(obj)
        return src, "", digest

    def compile(self, sources: Iterable[Path]) -> int:
        """Check the cache; compile the sources with no verified object yet and refresh the archive. Returns how many."""
        t0 = time.perf_counter()
        with self._locked() as index:
            failed = self._check_objects(index)
            todo = list(dict.fromkeys(s for s in [*failed, *sources] if self._rel(s) not in index.objects))
            if todo:
                self._compile_all(todo, index)
            self._check_archive(index, changed=bool(todo))
        self.compiled += len(todo)
        if todo:
            self.seconds += time.perf_counter() - t0
        return len(todo)

    def _compile_all(self, todo: list[Path], index: CacheIndex) -> None:
        errors: list[str] = []
        saved = time.monotonic()
        try:
            with ThreadPoolExecutor(max_workers=_jobs()) as pool:  # each thread waits for its compiler
                for src, error, digest in pool.map(self._compile_one, todo):
                    if error:
                        errors.append(error)
                        continue
                    index.objects[self._rel(src)] = digest
                    if time.monotonic() - saved > 5:  # a killed build keeps what it recorded
                        index.save()
                        saved = time.monotonic()
        finally:
            index.save()
        if errors:
            msg = (
                f"--tflm {self.tree.root}: the TFLM tree does not compile for {self.spec.core} "
                f"({len(errors)} file(s)); first: {errors[0]}"
            )
            raise InputError(msg)

    def _check_archive(self, index: CacheIndex, *, changed: bool) -> None:
        """Rebuild libtflm.a from the verified objects when they changed or it fails its recorded hash."""
        members = sorted(index.objects)
        if not changed and index.archive_objects == members:
            if file_sha256(self.archive) == index.archive:
                return
            if index.archive is not None:
                self._note("TFLM cache: libtflm.a failed its hash, rebuilt")
        self._publish_archive(index, members)

    def _publish_archive(self, index: CacheIndex, members: list[str]) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".libtflm.a.", suffix=TEMP_SUFFIX, dir=self.dir)
        os.close(fd)
        Path(tmp).unlink()  # ar creates it
        proc = subprocess.run([str(self.tc.ar), "rcs", tmp, *(str(self.obj / m) for m in members)], capture_output=True,
                              text=True, check=False, timeout=COMPILE_TIMEOUT_S, preexec_fn=preexec())  # noqa: PLW1509
        if proc.returncode != 0:
            Path(tmp).unlink(missing_ok=True)
            msg = f"{self.tc.ar} failed on the TFLM objects: {proc.stderr.strip()[:300]}"
            raise InputError(msg)
        index.archive, index.archive_objects = file_sha256(Path(tmp)), members
        Path(tmp).replace(self.archive)
        index.save()
        info = {"core": str(self.spec.core), "flags": list(self.flags), "compiler": self.tc.version,
                "tree": str(self.tree.root), "tree_sha256": self.tree.sha256, "objects": len(members),
                "archive_sha256": index.archive}
        write_text_atomic(self.dir / "build.json", json.dumps(info, indent=2) + "\n")

    def checked_archive(self) -> Path:
        """libtflm.a after every object and the archive passed their hash (a failing one is rebuilt): what a link uses."""
        self.compile(())
        return self.archive

    def provide(self, symbols: Iterable[str]) -> tuple[int, tuple[str, ...]]:
        """Compile the not-yet-compiled sources defining `symbols`. Returns (compiled, symbols nobody defines)."""
        known = CacheIndex.load(self.dir).objects
        pending = [s for s in self._all_sources() if self._rel(s) not in known]
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

    def with_framework(self) -> LibraryCache:
        """The TFLM framework compiled (checked, when cached); kernels follow on demand. Returns self."""
        self.compile(self.base_sources())
        return self

    def library(self) -> Library:
        return Library(self.archive, self.key, self.compiled == 0, self.seconds, len(CacheIndex.load(self.dir).objects),
                       self.compiled, self.flags, tuple(self.notes))


def ensure_library(spec: CoreSpec, tc: Toolchain, tree: TflmTree) -> LibraryCache:
    """The library cache for this core with the TFLM framework compiled (kernels follow on demand)."""
    return LibraryCache(spec, tc, tree).with_framework()
