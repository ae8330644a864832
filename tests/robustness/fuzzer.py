"""Mutation fuzzer for the edgeopt CLI: corrupt model, data and profile files must end in exit 0 or 2.

Cases run in long-lived worker processes (`python fuzzer.py --worker`) that
invoke the real CLI app in-process, so TensorFlow and the runtimes load once.
Native code that may crash on a model file runs first in edgeopt's own child
process probe; if anything still kills a worker (a signal) or a case hangs past
its timeout, the parent records that case and starts a new worker. Outcomes:

    ok        exit 0
    rejected  exit 2 with one "error: ..." line on stderr and no traceback
    budget    exit 3 (build only: a data mutation can fail the accuracy budget)
    internal  exit 1, a traceback, a multi-line error, or another exit code   -> bug
    crash     the worker died of a signal                                        -> bug
    hang      no answer within the timeout                                       -> bug
    escape    the case changed its own sentinel folder (wrote, removed or modified outside its own
              folder; checked after every case of the folder kinds, fuzz_classes.py)  -> bug

Folder kinds (fuzz_classes.py: SavedModels, ONNX function fan-out, TFLM cache folders, search OUTs) join the
file kinds when make_cases gets `kinds`; the TFLM cache and search cases run a library entry point
(`fuzz-lib ...`, tests/robustness/fuzz_lib.py) instead of an edgeopt command.

Used by tests/robustness/test_fuzz.py (a few hundred cases) and
benchmarks/fuzz_long.py (10,000+).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BAD = ("internal", "crash", "hang", "escape")
HUGE = (0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 1 << 20, 1 << 16, 0)


# --------------------------------------------------------------------------- mutators


def mutate_bytes(data: bytes, rng: random.Random, other: bytes = b"") -> tuple[str, bytes]:
    b = bytearray(data)
    kind = rng.choice(("flip", "flip", "truncate", "splice", "huge", "huge"))
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        b = b[: rng.randrange(len(b))]
    elif kind == "splice":
        src = other or data
        n = rng.randint(1, 512)
        i, j = rng.randrange(len(src)), rng.randrange(len(b))
        b[j : j + n] = src[i : i + n]
    else:  # a 32-bit field (offset, length, dimension, index) set to an extreme value
        i = rng.randrange(0, max(len(b) - 4, 1)) & ~3
        b[i : i + 4] = rng.choice(HUGE).to_bytes(4, "little")
    return kind, bytes(b)


def _tflite_vectors(data: bytes) -> list[tuple[int, int, bool]]:
    """(start, length, holds_offsets) of the vectors of a .tflite: tables of tables, and int vectors."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(data, 0)
    found: list[tuple[int, int, bool]] = []

    def vec(tab, slot: int, offsets: bool) -> None:
        o = tab.Offset(slot)
        if o:
            found.append((tab.Vector(o), tab.VectorLen(o), offsets))

    vec(m._tab, 6, True)  # operator_codes
    vec(m._tab, 8, True)  # subgraphs
    vec(m._tab, 12, True)  # buffers
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        vec(sg._tab, 4, True)  # tensors
        vec(sg._tab, 6, False)  # inputs
        vec(sg._tab, 8, False)  # outputs
        vec(sg._tab, 10, True)  # operators
        for i in range(min(sg.TensorsLength(), 64)):
            vec(sg.Tensors(i)._tab, 4, False)  # shape
        for i in range(min(sg.OperatorsLength(), 64)):
            vec(sg.Operators(i)._tab, 6, False)  # op inputs
    return found


def mutate_tflite(data: bytes, rng: random.Random, other: bytes = b"") -> tuple[str, bytes]:
    """Structure-aware: alias every entry of a table vector to one table, or inflate a vector's length."""
    kind = rng.choice(("bytes", "bytes", "alias", "inflate"))
    vectors = [] if kind == "bytes" else _tflite_vectors(data)
    if kind == "alias":
        vectors = [v for v in vectors if v[2] and v[1] > 1]
    if not vectors:
        return mutate_bytes(data, rng, other)
    b = bytearray(data)
    start, length, _ = rng.choice(vectors)
    if kind == "alias":  # every slot points at the table of slot k (uoffsets are relative to the slot)
        k = rng.randrange(length)
        target = start + 4 * k + int.from_bytes(b[start + 4 * k:start + 4 * k + 4], "little")
        for i in range(length):
            b[start + 4 * i:start + 4 * i + 4] = (target - (start + 4 * i)).to_bytes(4, "little", signed=True)
    else:  # the length word before the vector: just past the file, far past, or absurd
        new = rng.choice((length + 1, length * 1000 + 7, (len(b) - start) // 4, 0x7FFFFFFF, 0xFFFFFFFF))
        b[start - 4:start] = (new & 0xFFFFFFFF).to_bytes(4, "little")
    return kind, bytes(b)


def mutate_onnx(data: bytes, rng: random.Random, other: bytes = b"", workdir: Path | None = None) -> tuple[str, bytes]:
    """Structure-aware: point an initializer's external data at hostile places."""
    if rng.random() < 0.6 or workdir is None:
        return mutate_bytes(data, rng, other)
    import onnx

    model = onnx.load_from_string(data)
    inits = list(model.graph.initializer)
    if not inits:
        return mutate_bytes(data, rng, other)
    t = rng.choice(inits)
    location = rng.choice(("../../../../etc/passwd", "/etc/hosts", "/dev/zero", "zero.bin", "fifo.bin", "loop.bin",
                           "missing.bin", "sub/../../x.bin", "", "weights.bin", "weights.bin\x00.txt"))
    for field_ in ("float_data", "int32_data", "int64_data", "double_data", "raw_data"):
        t.ClearField(field_)
    t.data_location = onnx.TensorProto.EXTERNAL
    del t.external_data[:]
    for key, value in (("location", location), ("offset", str(rng.choice((0, 4, 2**40, -1)))),
                       ("length", str(rng.choice((4, 2**31, 2**62, 0))))):
        e = t.external_data.add()
        e.key, e.value = key, value
    return f"external:{location or 'empty'}", model.SerializeToString()


def mutate_npz(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Byte mutations of the archive, or valid archives holding hostile arrays."""
    kind = rng.choice(("bytes", "bytes", "shape", "nan", "dtype", "header", "nox", "labels", "bomb", "ylabels"))
    if kind == "bytes":
        return mutate_bytes(data, rng)
    if kind == "bomb":  # a member declaring gigabytes (as a zip bomb does) in a 5 KB file
        return kind, npz_declaring(rng.choice((1 << 31, 3 << 30, 0xFFFFFFF0)))
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    x = arrays["x"]
    if kind == "shape":
        arrays["x"] = x.reshape(x.shape[0], -1)[:, : rng.randint(1, 50)]
    elif kind == "nan":
        x = x.astype(np.float32).copy()
        x.flat[rng.randrange(x.size)] = rng.choice((np.nan, np.inf))
        arrays["x"] = x
    elif kind == "dtype":
        arrays["x"] = rng.choice((x.astype(np.complex64), x.astype(np.float16), np.array(["a"] * x.shape[0])))
    elif kind == "nox":
        arrays = {"data": x}
    elif kind == "labels":
        arrays["y"] = np.arange(rng.randint(0, 3))
    elif kind == "ylabels":  # labels of the right count but wrong type, sign, range or rank
        n = x.shape[0]
        arrays["y"] = rng.choice((np.zeros(n, np.float32), -np.ones(n, np.int64), np.full(n, 10**6),
                                  np.zeros((n, 10), np.int64), np.full(n, 2**62, np.int64)))
    if kind == "header":  # a .npy header claiming a huge shape
        buf = io.BytesIO()
        np.save(buf, x)
        raw = buf.getvalue().replace(str(x.shape[0]).encode() + b",", str(rng.choice((2**31, 2**40, 10**15))).encode() + b",", 1)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("x.npy", raw)
        return kind, out.getvalue()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return kind, buf.getvalue()


TOML_LINES = ('extends = "../../../etc/passwd"', 'extends = "/etc/hosts"', 'extends = "./../x.toml"',
              'extends = "mobile-cpu"', 'extends = 5', "threads = 99999999999999999999", "runs = -1",
              'scheme = "int3"', "[quantize]\n[quantize]", "calibration_samples = 1e309", 'name = "\\u0000"',
              "max_model_kb = -5", "opset = 999", "[budgets]\nmax_latency_ms = nan", "= = =", "[[x]]", "\x00\xff")


def npz_declaring(declared: int) -> bytes:
    """A small .npz whose x.npy member declares `declared` uncompressed bytes (central directory and local header)."""
    import struct

    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f4", "fortran_order": False,
                                               "shape": (declared // 256, 8, 8, 1)})
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", hdr.getvalue() + bytes(4096))
    data = bytearray(out.getvalue())
    struct.pack_into("<I", data, data.find(b"PK\x03\x04") + 22, declared)
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, declared)
    return bytes(data)


def mutate_toml(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(("bytes", "line", "line", "delete", "number", "deep"))
    if kind == "bytes":
        return mutate_bytes(data, rng)
    if kind == "deep":  # nesting that recursive parsers and validators cannot take
        depth = rng.choice((9, 100, 1000, 5000, 50_000))
        body = rng.choice(("x = " + "[" * depth + "]" * depth, "[" + ".".join(["a"] * depth) + "]\nk = 1",
                           "[" + ".".join(["runtime"] * depth) + "]\nk = 1", "x = " + "{a = " * depth + "1" + "}" * depth))
        return kind, data + b"\n" + body.encode() + b"\n"
    lines = data.decode("utf-8", "replace").splitlines()
    if kind == "line":
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(TOML_LINES))
    elif kind == "delete" and lines:
        del lines[rng.randrange(len(lines))]
    else:
        idx = [i for i, ln in enumerate(lines) if "=" in ln and ln.split("=", 1)[1].strip()[:1].isdigit()]
        if idx:
            i = rng.choice(idx)
            lines[i] = lines[i].split("=", 1)[0] + "= " + str(rng.choice((0, -1, 2**63, 10**30, 1e-300, 3.5)))
    return kind, ("\n".join(lines) + "\n").encode("utf-8", "replace")


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Corpus:
    tflite: Path
    onnx: Path
    keras: Path
    npz: Path  # calibration data of `keras` (x only)
    toml: Path
    workdir: Path


@dataclass(frozen=True)
class Case:
    id: int
    target: str  # what was mutated: tflite, onnx, keras, npz, toml
    mutation: str
    args: tuple[str, ...]
    sentinel: str = ""  # the case's sentinel folder, checked after it (fuzz_classes.sentinel_state); "" = none


BENCH_FAST = ("--runs", "1", "--min-seconds", "0", "--warmup-runs", "0", "--warmup-seconds", "0", "--max-seconds", "2")
# target -> (weight, command line builders); {f} is the mutated file, {out} a path that is a file (so build stops
# with exit 2 right after validating every input, before converting)
PLANS = {
    "tflite": (30, (("bench", "{f}", *BENCH_FAST), ("inspect", "{f}"))),
    "onnx": (18, (("bench", "{f}", *BENCH_FAST), ("inspect", "{f}"))),
    "keras": (12, (("inspect", "{f}"), ("build", "{f}", "--target", "mobile-cpu", "--out", "{out}"))),
    "npz": (14, (("bench", "{tflite}", "--input", "{f}", *BENCH_FAST),
                 ("build", "{keras}", "--target", "mobile-cpu", "--calib", "{f}", "--out", "{out}"),
                 ("build", "{keras}", "--target", "mobile-cpu", "--eval", "{f}", "--out", "{out}"))),
    "toml": (26, (("targets", "show", "{f}"), ("targets", "show", "{f}", "--json"),
                  ("build", "{keras}", "--target", "{f}", "--out", "{out}"))),
}


FOLDER_PLANS = {
    "savedmodel": (5, (("inspect", "{f}"),)),  # TF loads the model: ~20 s a case here; build would stop at {out}
    "onnxfn": (10, (("inspect", "{f}"), ("bench", "{f}", *BENCH_FAST))),
    "tflmcache": (8, (("fuzz-lib", "tflm-cache", "{f}"),)),
    "searchdb": (8, (("fuzz-lib", "search-best", "{f}"),)),
}
OLD_KINDS = tuple(PLANS)
ALL_KINDS = (*PLANS, *FOLDER_PLANS)


def _folder_case(corpus: Corpus, target: str, i: int, rng: random.Random, bases: dict[str, Path]) -> tuple[str, Path]:
    """(mutation, path) of one folder-kind case, made in corpus.workdir beside its sentinel folder
    (caseNNNNNN.sentinel); the base inputs are built once."""
    from tests.robustness import fuzz_classes as fc

    sentinel = fc.make_sentinel(corpus.workdir / f"case{i:06d}.sentinel")
    path = corpus.workdir / (f"case{i:06d}.onnx" if target == "onnxfn" else f"case{i:06d}.d")
    if target == "onnxfn":
        return fc.make_onnx_functions(path, rng), path
    if target not in bases:
        bases[target] = {"savedmodel": fc.base_saved_model, "tflmcache": lambda: fc.base_tflm_cache(corpus.workdir),
                         "searchdb": lambda: fc.base_search_out(corpus.workdir)}[target]()
    if target == "savedmodel":
        path.mkdir()
        return fc.mutate_saved_model(bases[target], path / "model", sentinel, i, rng), path / "model"
    if target == "tflmcache":
        return fc.mutate_tflm_cache(bases[target], path, sentinel, rng), path
    return fc.mutate_search_out(bases[target], path, sentinel, rng), path


def _light(template: tuple[str, ...]) -> bool:
    """Commands that never import TensorFlow (about 1 s in a fresh process)."""
    return template[0] in ("bench", "inspect", "targets") and not template[1].startswith("{keras}")


def make_cases(corpus: Corpus, n: int, seed: int, first: int = 0, light: bool = False,
               kinds: tuple[str, ...] = OLD_KINDS) -> list[Case]:
    """n mutated cases numbered from `first`; a long run passes a new `first` per batch so kept files never clash.

    `light` keeps only the commands that do not import TensorFlow (for fresh-process runs in the test suite).
    `kinds`: the input kinds to draw from (ALL_KINDS adds the folder kinds of fuzz_classes.py).
    """
    rng = random.Random(seed)
    every = {**PLANS, **FOLDER_PLANS}
    plans = {k: (w, tuple(t for t in ts if _light(t) and k not in ("keras", "savedmodel")) if light else ts)
             for k, (w, ts) in every.items() if k in kinds}
    plans = {k: v for k, v in plans.items() if v[1]}
    originals = {k: getattr(corpus, k).read_bytes() for k in PLANS if k in plans}
    bases: dict[str, Path] = {}
    names = list(plans)
    weights = [plans[k][0] for k in names]
    out_file = corpus.workdir / "out-is-a-file"
    out_file.write_bytes(b"")
    cases = []
    for i in range(first, first + n):
        target = rng.choices(names, weights)[0]
        if target in FOLDER_PLANS:
            mutation, path = _folder_case(corpus, target, i, rng, bases)
            template = rng.choice(plans[target][1])
            args = tuple(a.format(f=path, out=out_file) for a in template)
            cases.append(Case(i, target, mutation, args, str(corpus.workdir / f"case{i:06d}.sentinel")))
            continue
        data = originals[target]
        if target == "npz":
            mutation, mutated = mutate_npz(data, rng)
        elif target == "toml":
            mutation, mutated = mutate_toml(data, rng)
        elif target == "tflite":
            mutation, mutated = mutate_tflite(data, rng, originals.get(rng.choice(names), b""))
        elif target == "onnx":
            mutation, mutated = mutate_onnx(data, rng, originals.get(rng.choice(names), b""), corpus.workdir)
        else:
            mutation, mutated = mutate_bytes(data, rng, originals.get(rng.choice(names), b""))
        suffix = {"tflite": ".tflite", "onnx": ".onnx", "keras": ".keras", "npz": ".npz", "toml": ".toml"}[target]
        path = corpus.workdir / f"case{i:06d}{suffix}"
        path.write_bytes(mutated)
        template = rng.choice(plans[target][1])
        args = tuple(a.format(f=path, out=out_file, tflite=corpus.tflite, keras=corpus.keras) for a in template)
        cases.append(Case(i, target, mutation, args))
    return cases


# --------------------------------------------------------------------------- workers


def escaped(case: Case) -> str:
    """"" if the case left the sentinel folder as it was; else what changed (and the folder is restored)."""
    if not case.sentinel:
        return ""
    from tests.robustness import fuzz_classes as fc

    sentinel = Path(case.sentinel)
    found = fc.sentinel_state(sentinel)
    if found == fc.sentinel_state(_fresh_sentinel()):
        return ""
    import shutil

    if sentinel.is_symlink():
        sentinel.unlink()
    else:
        shutil.rmtree(sentinel, ignore_errors=True)
    fc.make_sentinel(sentinel)
    return f"the sentinel folder changed: {found}"


_SENTINEL_REF: list[Path] = []


def _fresh_sentinel() -> Path:
    """A pristine sentinel folder to compare with (made once per process)."""
    if not _SENTINEL_REF:
        from tests.robustness import fuzz_classes as fc

        _SENTINEL_REF.append(fc.make_sentinel(Path(tempfile.mkdtemp(prefix="edgeopt-fuzz-ref-")) / "sentinel"))
    return _SENTINEL_REF[0]


def _judged(case: Case, outcome: str, code: int | None, stderr: str, seconds: float) -> Outcome:
    """The outcome of a finished case, turned into "escape" when the sentinel folder changed."""
    why = escaped(case)
    if why:
        return Outcome(case, "escape", code, f"{why}\n{stderr[-1500:]}", seconds)
    return Outcome(case, outcome, code, stderr, seconds)


def classify(command: str, code: int, stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("error:", "internal error:"))]
    if "Traceback" in stderr or code == 1 or any(ln.startswith("internal error:") for ln in lines):
        return "internal"
    if code == 0:
        return "ok"
    if code == 2 and len(errors) == 1 and lines and lines[-1].startswith("error:"):
        return "rejected"
    if code == 3 and command == "build":
        return "budget"
    return "internal"


def _serve() -> int:
    """Worker: one JSON case per stdin line, one JSON answer per stdout line (on a private fd)."""
    proto = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # stray native output must not corrupt the protocol
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    runner = CliRunner()
    for line in sys.stdin:
        case = json.loads(line)
        t0 = time.perf_counter()
        if case["args"][0] == "fuzz-lib":
            from tests.robustness.fuzz_lib import main as lib_main

            buf = io.StringIO()
            with contextlib.redirect_stderr(buf):
                try:
                    code = lib_main(case["args"][1:])
                except BaseException:  # noqa: BLE001 - reported as a traceback, like an uncaught exception
                    import traceback

                    code = 1
                    buf.write(traceback.format_exc())
            answer = {"id": case["id"], "code": code, "stderr": buf.getvalue()[-2000:],
                      "seconds": time.perf_counter() - t0}
            proto.write(json.dumps(answer) + "\n")
            proto.flush()
            continue
        result = runner.invoke(app, case["args"], catch_exceptions=True)
        stderr = result.stderr
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            import traceback

            stderr += "Traceback (uncaught in the CLI)\n" + "".join(traceback.format_exception(result.exception))
        answer = {"id": case["id"], "code": result.exit_code, "stderr": stderr[-2000:],
                  "seconds": time.perf_counter() - t0}
        proto.write(json.dumps(answer) + "\n")
        proto.flush()
    return 0


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
                                     start_new_session=True, cwd=Path(__file__).resolve().parents[2])
        self.case: Case | None = None
        self.started = 0.0

    def send(self, case: Case) -> None:
        self.case, self.started = case, time.monotonic()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": case.id, "args": list(case.args)}) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@dataclass
class Outcome:
    case: Case
    outcome: str
    code: int | None
    stderr: str
    seconds: float


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(o.outcome for o in self.outcomes)

    def bad(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.outcome in BAD]


def run_cases(cases: list[Case], workers: int = 2, timeout: float = 60.0, first_timeout: float = 120.0,
              progress: bool = False) -> Run:
    """Run `cases` over `workers` long-lived worker processes; each case gets `timeout` seconds."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    env.pop("EDGEOPT_DEBUG", None)
    todo = list(reversed(cases))
    pool = [Worker(env) for _ in range(min(workers, len(cases)))]
    fresh = {id(w): True for w in pool}
    run = Run()
    by_fd: dict[int, Worker] = {}
    t_start = time.monotonic()

    def feed(w: Worker) -> None:
        if todo:
            w.send(todo.pop())
            assert w.proc.stdout is not None
            by_fd[w.proc.stdout.fileno()] = w

    for w in pool:
        feed(w)
    while by_fd:
        ready, _, _ = select.select(list(by_fd), [], [], 1.0)
        now = time.monotonic()
        for fd in ready:
            w = by_fd.pop(fd)
            assert w.proc.stdout is not None and w.case is not None
            line = w.proc.stdout.readline()
            if line:
                a = json.loads(line)
                command = w.case.args[0]
                run.outcomes.append(_judged(w.case, classify(command, a["code"], a["stderr"]), a["code"], a["stderr"],
                                            a["seconds"]))
                fresh[id(w)] = False
                feed(w)
            else:  # the worker died
                code = w.proc.wait()
                outcome = "crash" if code < 0 else "internal"
                run.outcomes.append(Outcome(w.case, outcome, code, f"worker died with {code}", now - w.started))
                nw = Worker(env)
                pool[pool.index(w)] = nw
                fresh[id(nw)] = True
                feed(nw)
        for fd, w in list(by_fd.items()):
            limit = first_timeout if fresh[id(w)] else timeout
            if w.case is not None and now - w.started > limit:
                by_fd.pop(fd)
                w.kill()
                run.outcomes.append(Outcome(w.case, "hang", None, f"no answer in {limit:g} s", now - w.started))
                nw = Worker(env)
                pool[pool.index(w)] = nw
                fresh[id(nw)] = True
                feed(nw)
        if progress and len(run.outcomes) % 100 == 0 and run.outcomes:
            print(f"\r{len(run.outcomes)}/{len(cases)} {dict(run.counts)} {time.monotonic() - t_start:.0f}s",
                  end="", file=sys.stderr, flush=True)
    for w in pool:
        if w.proc.stdin is not None:
            w.proc.stdin.close()
        w.proc.wait(timeout=30)
    return run


def run_fresh(cases: list[Case], workers: int = 2, timeout: float = 60.0, progress: bool = False) -> Run:
    """Run each case in a fresh `python -m edgeopt` process: a signal is the process's own death, a hang is real."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    env.pop("EDGEOPT_DEBUG", None)
    todo = list(reversed(cases))
    running: list[tuple[Case, subprocess.Popen[bytes], float, Any]] = []
    run = Run()
    while todo or running:
        while todo and len(running) < workers:
            case = todo.pop()
            err = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the case ends; a pipe could fill up and stall the child
            argv = ["tests.robustness.fuzz_lib", *case.args[1:]] if case.args[0] == "fuzz-lib" else ["edgeopt", *case.args]
            proc = subprocess.Popen([sys.executable, "-m", *argv], stdout=subprocess.DEVNULL,
                                    stderr=err, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True, cwd=Path(__file__).resolve().parents[2])
            running.append((case, proc, time.monotonic(), err))
        time.sleep(0.05)
        for item in list(running):
            case, proc, started, err = item
            elapsed = time.monotonic() - started
            if proc.poll() is None and elapsed <= timeout:
                continue
            running.remove(item)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                err.close()
                run.outcomes.append(Outcome(case, "hang", None, f"no answer in {timeout:g} s", elapsed))
                continue
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
            err.close()
            code = proc.returncode
            outcome = "crash" if code < 0 else classify(case.args[0], code, stderr)
            run.outcomes.append(_judged(case, outcome, code, stderr[-2000:], elapsed))
        if progress and run.outcomes and len(run.outcomes) % 50 == 0:
            print(f"\r{len(run.outcomes)}/{len(cases)} {dict(run.counts)}", end="", file=sys.stderr, flush=True)
    return run


# --------------------------------------------------------------------------- fork server

# Imported once by the fork server so a case's process starts warm. TensorFlow is imported but never run
# (no op, no thread pool) before forking; the only threads at fork time are idle BLAS/runtime workers.
ZYGOTE_PRELOAD = ("edgeopt.cli.app", "edgeopt.cli.errors", "edgeopt.runtime.litert", "edgeopt.runtime.onnxrt",
                  "ai_edge_litert.interpreter", "onnxruntime", "onnx", "tensorflow", "keras",
                  "edgeopt.load.keras_model", "edgeopt.pipeline.build")


def _zygote_child(case: dict[str, Any], proto_fd: int) -> None:
    """In the forked child: own session, stdio and argv, then the real `edgeopt` entry point; never returns."""
    code = 1
    try:
        os.close(proto_fd)
        os.setsid()  # its own process group: the parent kills a hung case with everything it started
        err = os.open(case["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(err, 2)
        os.close(err)
        os.close(null)
        random.seed()  # a fresh process seeds from the OS, not from the server's state
        np.random.seed()
        sys.argv = ["edgeopt", *case["args"]]
        from edgeopt.cli.app import main

        if case["args"][0] == "fuzz-lib":
            from tests.robustness.fuzz_lib import main as lib_main

            def main() -> None:
                sys.exit(lib_main(case["args"][1:]))
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                sys.stderr.write(exc.code + "\n")
        import atexit

        atexit._run_exitfuncs()  # what interpreter shutdown would run
    except BaseException:  # noqa: BLE001 - reported as the process's own traceback and exit 1, like python -m
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _zygote() -> int:
    """Fork server: import the CLI and runtimes once, then fork one process per case (JSON lines on stdin).

    Answers on stdout: {"id", "pid"} when a case's process starts, {"id", "status"} (os.waitstatus_to_exitcode:
    negative = killed by that signal) when it ends. Native output of the server itself goes to /dev/null.
    """
    import importlib

    proto_fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    for name in ZYGOTE_PRELOAD:
        importlib.import_module(name)

    def say(obj: dict[str, Any] | str) -> None:
        os.write(proto_fd, ((obj if isinstance(obj, str) else json.dumps(obj)) + "\n").encode())

    say("ready")
    children: dict[int, int] = {}
    buf, open_ = b"", True
    while open_ or children:
        ready, _, _ = select.select([0] if open_ else [], [], [], 0.02)
        if ready:
            data = os.read(0, 1 << 16)
            open_ = bool(data)
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                case = json.loads(line)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _zygote_child(case, proto_fd)
                children[pid] = case["id"]
                say({"id": case["id"], "pid": pid})
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            say({"id": children.pop(pid), "status": os.waitstatus_to_exitcode(status)})
    return 0


def run_forked(cases: list[Case], workers: int = 2, timeout: float = 60.0, progress: bool = False) -> Run:
    """Like run_fresh (a new process per case, real signals and hangs) but forked from a warm server.

    The server (`fuzzer.py --zygote`) has imported the CLI, the runtimes and TensorFlow once; each case is a
    fork of it that runs `edgeopt.cli.app.main` with the case's argv, so exit codes, signal handlers and
    stderr are those of `python -m edgeopt`, without the 1-9 s of imports per case.
    """
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(root))
    env.pop("EDGEOPT_DEBUG", None)
    errdir = Path(tempfile.mkdtemp(prefix="edgeopt-zygote-"))
    server = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--zygote"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=root,
                              start_new_session=True)
    assert server.stdin is not None and server.stdout is not None
    out_fd = server.stdout.fileno()
    pending = b""

    def lines(wait: float) -> list[str]:
        nonlocal pending
        ready, _, _ = select.select([out_fd], [], [], wait)
        if not ready:
            return []
        data = os.read(out_fd, 1 << 16)
        if not data:
            why = f"the fork server died ({server.wait()})"
            raise RuntimeError(why)
        pending += data
        *done, pending = pending.split(b"\n")
        return [d.decode() for d in done]

    deadline = time.monotonic() + 300
    while "ready" not in lines(1.0):
        if time.monotonic() > deadline:
            server.kill()
            why = "the fork server did not start"
            raise RuntimeError(why)
    todo = list(reversed(cases))
    by_id: dict[int, Case] = {}
    started: dict[int, float] = {}
    pids: dict[int, int] = {}
    hung: set[int] = set()
    run = Run()
    try:
        while todo or by_id:
            while todo and len(by_id) < workers:
                case = todo.pop()
                by_id[case.id] = case
                started[case.id] = time.monotonic()
                msg = {"id": case.id, "args": list(case.args), "stderr": str(errdir / f"{case.id}.err")}
                server.stdin.write((json.dumps(msg) + "\n").encode())
                server.stdin.flush()
            for line in lines(0.05):
                a = json.loads(line)
                if "pid" in a:
                    pids[a["id"]] = a["pid"]
                    continue
                case = by_id.pop(a["id"])
                elapsed = time.monotonic() - started.pop(case.id)
                pids.pop(case.id, None)
                err = errdir / f"{case.id}.err"
                stderr = err.read_text("utf-8", "replace") if err.exists() else ""
                err.unlink(missing_ok=True)
                code = a["status"]
                if case.id in hung:
                    run.outcomes.append(_judged(case, "hang", None, f"no answer in {timeout:g} s", elapsed))
                    continue
                outcome = "crash" if code < 0 else classify(case.args[0], code, stderr)
                run.outcomes.append(_judged(case, outcome, code, stderr[-2000:], elapsed))
            now = time.monotonic()
            for cid, t0 in started.items():
                if cid not in hung and cid in pids and now - t0 > timeout:
                    hung.add(cid)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pids[cid], signal.SIGKILL)
            if progress and run.outcomes and len(run.outcomes) % 50 == 0:
                print(f"\r{len(run.outcomes)}/{len(cases)} {dict(run.counts)}", end="", file=sys.stderr, flush=True)
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        import shutil

        shutil.rmtree(errdir, ignore_errors=True)
    return run


def build_corpus(workdir: Path, tflite: Path) -> Corpus:
    """Seed files: a built .tflite, the sample ONNX/Keras models, calibration data and a profile."""
    root = Path(__file__).resolve().parents[2]
    samples = root / "sample_models"
    workdir.mkdir(parents=True, exist_ok=True)
    # targets for the ONNX external-data mutations: a device, a FIFO, a symlink loop, a small regular file
    for name, make in (("zero.bin", lambda p: p.symlink_to("/dev/zero")), ("fifo.bin", os.mkfifo),
                       ("loop.bin", lambda p: p.symlink_to(p)), ("weights.bin", lambda p: p.write_bytes(bytes(16)))):
        if not (workdir / name).is_symlink() and not (workdir / name).exists():
            make(workdir / name)
    return Corpus(tflite=tflite, onnx=samples / "digits_mlp.onnx", keras=samples / "digits_dscnn.keras",
                  npz=samples / "digits_dscnn.calib.npz", toml=root / "targets" / "raspberry-pi-4.toml",
                  workdir=workdir)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_serve())
if __name__ == "__main__" and sys.argv[1:] == ["--zygote"]:
    sys.exit(_zygote())
