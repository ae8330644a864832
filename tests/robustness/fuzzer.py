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
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BAD = ("internal", "crash", "hang")
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


def mutate_npz(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Byte mutations of the archive, or valid archives holding hostile arrays."""
    kind = rng.choice(("bytes", "bytes", "shape", "nan", "dtype", "header", "nox", "labels"))
    if kind == "bytes":
        return mutate_bytes(data, rng)
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


def mutate_toml(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(("bytes", "line", "line", "delete", "number"))
    if kind == "bytes":
        return mutate_bytes(data, rng)
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


BENCH_FAST = ("--runs", "1", "--min-seconds", "0", "--warmup-runs", "0", "--warmup-seconds", "0", "--max-seconds", "2")
# target -> (weight, command line builders); {f} is the mutated file, {out} a path that is a file (so build stops
# with exit 2 right after validating every input, before converting)
PLANS = {
    "tflite": (30, (("bench", "{f}", *BENCH_FAST), ("inspect", "{f}"))),
    "onnx": (18, (("bench", "{f}", *BENCH_FAST), ("inspect", "{f}"))),
    "keras": (12, (("inspect", "{f}"), ("build", "{f}", "--target", "mobile-cpu", "--out", "{out}"))),
    "npz": (14, (("bench", "{tflite}", "--input", "{f}", *BENCH_FAST),
                 ("build", "{keras}", "--target", "mobile-cpu", "--calib", "{f}", "--out", "{out}"))),
    "toml": (26, (("targets", "show", "{f}"), ("targets", "show", "{f}", "--json"),
                  ("build", "{keras}", "--target", "{f}", "--out", "{out}"))),
}


def make_cases(corpus: Corpus, n: int, seed: int, first: int = 0) -> list[Case]:
    """n mutated cases numbered from `first`; a long run passes a new `first` per batch so kept files never clash."""
    rng = random.Random(seed)
    originals = {k: getattr(corpus, k).read_bytes() for k in PLANS}
    names = list(PLANS)
    weights = [PLANS[k][0] for k in names]
    out_file = corpus.workdir / "out-is-a-file"
    out_file.write_bytes(b"")
    cases = []
    for i in range(first, first + n):
        target = rng.choices(names, weights)[0]
        data = originals[target]
        if target == "npz":
            mutation, mutated = mutate_npz(data, rng)
        elif target == "toml":
            mutation, mutated = mutate_toml(data, rng)
        else:
            other = originals[rng.choice(names)]
            mutation, mutated = mutate_bytes(data, rng, other)
        suffix = {"tflite": ".tflite", "onnx": ".onnx", "keras": ".keras", "npz": ".npz", "toml": ".toml"}[target]
        path = corpus.workdir / f"case{i:06d}{suffix}"
        path.write_bytes(mutated)
        template = rng.choice(PLANS[target][1])
        args = tuple(a.format(f=path, out=out_file, tflite=corpus.tflite, keras=corpus.keras) for a in template)
        cases.append(Case(i, target, mutation, args))
    return cases


# --------------------------------------------------------------------------- workers


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
                run.outcomes.append(Outcome(w.case, classify(command, a["code"], a["stderr"]), a["code"], a["stderr"], a["seconds"]))
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


def build_corpus(workdir: Path, tflite: Path) -> Corpus:
    """Seed files: a built .tflite, the sample ONNX/Keras models, calibration data and a profile."""
    root = Path(__file__).resolve().parents[2]
    samples = root / "sample_models"
    workdir.mkdir(parents=True, exist_ok=True)
    return Corpus(tflite=tflite, onnx=samples / "digits_mlp.onnx", keras=samples / "digits_dscnn.keras",
                  npz=samples / "digits_dscnn.calib.npz", toml=root / "targets" / "raspberry-pi-4.toml",
                  workdir=workdir)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    sys.exit(_serve())
