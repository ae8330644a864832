"""`inspect` and `bench` over the ONNX backend node tests (onnx.backend.test.case.node), counted by exit code.

For every node test case the installed `onnx` generates (~1,900 single-op models with their
reference inputs), this writes model.onnx and inputs.npz (one array per input name), then runs:

    ort          onnxruntime loads the model, and runs it on the test's own inputs (no edgeopt)
    inspect      edgeopt inspect model.onnx --json                           (every test)
    bench        edgeopt bench model.onnx  (random inputs, few iterations)   (tests onnxruntime loads)
    bench-input  edgeopt bench model.onnx --input inputs.npz                 (... and whose inputs fit an .npz)

Cases run in long-lived worker processes that call the CLI in-process (typer's CliRunner), so the
runtimes import once; a case that exceeds --timeout is recorded as `hang` and its worker replaced,
a worker killed by a signal is recorded as `signal`. Workers run under an address-space limit
(--memory-gb) so a probe that tries to allocate tens of GB fails instead of taking the machine.

    python benchmarks/onnx_node_suite.py --work /tmp/nodesuite [--repo TREE] [--label after]
        [--ops Add,Loop] [--limit N] [--every K] [--timeout 30] [--workers 2] [--results]

--repo runs another checkout's edgeopt (e.g. a worktree of the commit before a fix) with this
script; --rows/--restrict-to re-summarize an earlier run (e.g. the full "after" on the
tests of a sampled "before"); --results writes the counts to the section of benchmarks/RESULTS.md between
<!-- nodesuite:begin --> and <!-- nodesuite:end -->, one table per --label.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
BEGIN, END = "<!-- nodesuite:begin -->", "<!-- nodesuite:end -->"
FAST = ("--runs", "1", "--min-seconds", "0", "--warmup-runs", "0", "--warmup-seconds", "0", "--max-seconds", "1")


# --------------------------------------------------------------------------- the test cases on disk


def _npz_array(value: Any) -> np.ndarray | None:
    """The test's input as an array np.load(allow_pickle=False) gives back, or None (sequence, optional, ...)."""
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        return None
    if value.dtype == object:  # string tensors: store as unicode
        try:
            return np.asarray(value.tolist(), dtype=str).reshape(value.shape)
        except (TypeError, ValueError):
            return None
    if value.dtype.kind == "V" or value.dtype.names:
        return None
    return value


def write_cases(work: Path, ops: set[str] | None, limit: int | None, every: int = 1) -> list[dict[str, Any]]:
    """Write each node test's model.onnx (+ inputs.npz where every input is a plain array); return their index."""
    import onnx
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = [c for c in collect_testcases() if c.kind == "node"]
    index = []
    for case in sorted(cases, key=lambda c: c.name)[::every]:
        op = case.model.graph.node[0].op_type if case.model.graph.node else ""
        if ops and op not in ops:
            continue
        d = work / case.name
        d.mkdir(parents=True, exist_ok=True)
        model_path = d / "model.onnx"
        if not model_path.exists():
            onnx.save(case.model, model_path)
        inputs, _ = case.data_sets[0]
        names = [i.name for i in case.model.graph.input]
        arrays = [_npz_array(v) for v in inputs]
        npz = d / "inputs.npz"
        has_npz = len(arrays) == len(names) and all(a is not None for a in arrays)
        if has_npz and not npz.exists():
            np.savez(npz, **{n: a for n, a in zip(names, arrays, strict=True)})
        floats = all(i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for i in case.model.graph.input) and \
            all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in case.model.graph.output)
        index.append({"name": case.name, "op": op, "dir": str(d), "npz": has_npz, "inputs": len(names),
                      "float": bool(names) and floats})
        if limit and len(index) >= limit:
            break
    return index


# --------------------------------------------------------------------------- worker (one case per stdin line)


def _ort_case(d: Path, with_data: bool) -> dict[str, Any]:
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any load failure counts as "does not load"
        return {"loads": False, "runs": False, "why": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}
    if not with_data:
        return {"loads": True, "runs": None}
    with np.load(d / "inputs.npz", allow_pickle=False) as z:
        feeds = {k: (z[k].astype(object) if z[k].dtype.kind == "U" else z[k]) for k in z.files}
    try:
        sess.run(None, feeds)
    except Exception as exc:  # noqa: BLE001
        return {"loads": True, "runs": False, "why": str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}
    return {"loads": True, "runs": True}


def _serve() -> int:
    proto = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # native chatter must not corrupt the protocol
    import typer.testing
    from typer.testing import CliRunner

    from edgeopt.cli.app import app

    # typer builds the click command on every CliRunner.invoke (~0.5 s for this app, more than most cases take):
    # build it once here (a benchmark-harness shortcut; the command and its behaviour are the same).
    command = typer.main.get_command(app)
    typer.testing._get_command = lambda _app: command  # type: ignore[attr-defined]  # noqa: SLF001
    runner = CliRunner()
    for line in sys.stdin:
        case = json.loads(line)
        t0 = time.perf_counter()
        if case["kind"] == "ort":
            answer: dict[str, Any] = _ort_case(Path(case["dir"]), case["npz"])
        else:
            result = runner.invoke(app, case["args"], catch_exceptions=True, prog_name="edgeopt")
            stderr = result.stderr
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                import traceback

                stderr += "Traceback (uncaught in the CLI)\n" + "".join(traceback.format_exception(result.exception))
            answer = {"code": result.exit_code, "stderr": stderr[-1500:]}
        answer.update(id=case["id"], seconds=time.perf_counter() - t0)
        proto.write(json.dumps(answer) + "\n")
        proto.flush()
    return 0


@dataclass
class Worker:
    proc: subprocess.Popen[str]
    case: dict[str, Any] | None = None
    started: float = 0.0

    @classmethod
    def start(cls, env: dict[str, str], memory_gb: float) -> Worker:
        limit = int(memory_gb * (1 << 30))

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
                                start_new_session=True, preexec_fn=cap if memory_gb > 0 else None)
        return cls(proc)

    def send(self, case: dict[str, Any]) -> None:
        self.case, self.started = case, time.monotonic()
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def run_cases(cases: list[dict[str, Any]], repo: Path, workers: int, timeout: float, memory_gb: float) -> dict[int, dict[str, Any]]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(repo), EDGEOPT_PROBE_TIMEOUT=str(timeout * 2))
    env.pop("EDGEOPT_DEBUG", None)
    todo = list(reversed(cases))
    answers: dict[int, dict[str, Any]] = {}
    pool = [Worker.start(env, memory_gb) for _ in range(min(workers, len(cases)))]
    fresh = {id(w): True for w in pool}
    busy: dict[int, Worker] = {}
    t0, shown = time.monotonic(), 0

    def feed(w: Worker) -> None:
        if todo:
            w.send(todo.pop())
            assert w.proc.stdout is not None
            busy[w.proc.stdout.fileno()] = w

    def replace(w: Worker) -> None:
        nw = Worker.start(env, memory_gb)
        pool[pool.index(w)] = nw
        fresh[id(nw)] = True
        feed(nw)

    for w in pool:
        feed(w)
    while busy:
        ready, _, _ = select.select(list(busy), [], [], 0.5)
        now = time.monotonic()
        for fd in ready:
            w = busy.pop(fd)
            assert w.proc.stdout is not None and w.case is not None
            line = w.proc.stdout.readline()
            if line:
                a = json.loads(line)
                answers[a["id"]] = a
                fresh[id(w)] = False
                feed(w)
            else:
                code = w.proc.wait()
                answers[w.case["id"]] = {"code": "signal" if code < 0 else code, "stderr": f"worker died with {code}",
                                         "seconds": now - w.started, "loads": False, "runs": False}
                replace(w)
        for fd, w in list(busy.items()):
            limit = timeout + (20 if fresh[id(w)] else 0)  # a new worker imports the CLI first
            if w.case is not None and now - w.started > limit:
                busy.pop(fd)
                w.kill()
                answers[w.case["id"]] = {"code": "hang", "stderr": f"no answer in {limit:g} s", "seconds": limit,
                                         "loads": False, "runs": False}
                replace(w)
        if len(answers) // 100 != shown:
            shown = len(answers) // 100
            print(f"\r{len(answers)}/{len(cases)} {time.monotonic() - t0:.0f}s", end="", file=sys.stderr, flush=True)
    for w in pool:
        if w.proc.stdin is not None:
            w.proc.stdin.close()
        try:
            w.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()
    print(file=sys.stderr)
    return answers


# --------------------------------------------------------------------------- the suite


def outcome(a: dict[str, Any]) -> str:
    """exit 0 / exit 2 / exit 1 / hang / signal / other exit codes; a traceback counts as exit 1."""
    code = a["code"]
    if code in ("hang", "signal"):
        return str(code)
    if "Traceback" in a.get("stderr", "") or code == 1:
        return "exit 1"
    return f"exit {code}"


def run_suite(index: list[dict[str, Any]], repo: Path, workers: int, timeout: float, memory_gb: float,
              builds: bool = False) -> list[dict[str, Any]]:
    ids = iter(range(1 << 30))
    phase1: list[dict[str, Any]] = []
    for t in index:
        m = str(Path(t["dir"]) / "model.onnx")
        t["ort_id"], t["inspect_id"] = next(ids), next(ids)
        phase1.append({"id": t["ort_id"], "kind": "ort", "dir": t["dir"], "npz": t["npz"]})
        phase1.append({"id": t["inspect_id"], "kind": "cli", "args": ["inspect", m, "--json"]})
    a1 = run_cases(phase1, repo, workers, timeout, memory_gb)
    phase2: list[dict[str, Any]] = []
    for t in index:
        o = a1[t["ort_id"]]
        t["loads"], t["runs_own"] = bool(o.get("loads")), o.get("runs")
        t["inspect"] = outcome(a1[t["inspect_id"]])
        t["inspect_err"] = a1[t["inspect_id"]].get("stderr", "")[-300:]
        if not t["loads"]:
            continue
        m = str(Path(t["dir"]) / "model.onnx")
        t["bench_id"] = next(ids)
        phase2.append({"id": t["bench_id"], "kind": "cli", "args": ["bench", m, *FAST, "--json"]})
        if t["npz"]:
            t["input_id"] = next(ids)
            phase2.append({"id": t["input_id"], "kind": "cli",
                           "args": ["bench", m, "--input", str(Path(t["dir"]) / "inputs.npz"), *FAST, "--json"]})
    a2 = run_cases(phase2, repo, workers, timeout, memory_gb)
    for t in index:
        for key in ("bench", "input"):
            if f"{key}_id" in t:
                a = a2[t.pop(f"{key}_id")]
                t[key], t[f"{key}_err"] = outcome(a), a.get("stderr", "")[-300:]
        t.pop("ort_id"), t.pop("inspect_id")
    if builds:  # float models that run on their own data: a whole edge-server build at the data's shapes
        phase3: list[dict[str, Any]] = []
        for t in index:
            if t.get("float") and t.get("runs_own") and t.get("input") == "exit 0":
                d = Path(t["dir"])
                t["build_id"] = next(ids)
                phase3.append({"id": t["build_id"], "kind": "cli", "args": [
                    "build", str(d / "model.onnx"), "--target", "edge-server", "--calib", str(d / "inputs.npz"),
                    "--eval", str(d / "inputs.npz"), "--out", str(d / "build"), "--no-bench", "--force", "--json"]})
        a3 = run_cases(phase3, repo, workers, timeout, memory_gb)
        for t in index:
            if "build_id" in t:
                a = a3[t.pop("build_id")]
                t["build"], t["build_err"] = outcome(a), a.get("stderr", "")[-300:]
    return index


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    loads = [r for r in rows if r["loads"]]
    with_npz = [r for r in loads if r["npz"]]
    runs_own = [r for r in with_npz if r["runs_own"]]
    return {
        "tests": len(rows),
        "ort_loads": len(loads),
        "with_npz": len(with_npz),
        "ort_runs_own_data": len(runs_own),
        "inspect": dict(Counter(r["inspect"] for r in rows)),
        "bench": dict(Counter(r["bench"] for r in loads)),
        "bench_refused_but_ort_runs_own": sum(1 for r in runs_own if r["bench"] != "exit 0"),
        "bench_input": dict(Counter(r["input"] for r in with_npz)),
        "bench_input_on_runs_own": dict(Counter(r["input"] for r in runs_own)),
        "float_runs_own": sum(1 for r in runs_own if r.get("float")),
        "build": dict(Counter(r["build"] for r in rows if "build" in r)),
    }


def _counts(c: dict[str, int]) -> str:
    order = ["exit 0", "exit 2", "exit 1", "hang", "signal"]
    keys = [k for k in order if k in c] + sorted(k for k in c if k not in order)
    return ", ".join(f"{k}: {c[k]}" for k in keys) or "-"


def table(label: str, s: dict[str, Any], note: str) -> str:
    return "\n".join([
        f"### {label}", "", note, "",
        "| what | count |", "| --- | --- |",
        f"| node tests (onnx {s['onnx']}, onnxruntime {s['ort']}) | {s['tests']} |",
        f"| `inspect` | {_counts(s['inspect'])} |",
        f"| onnxruntime loads | {s['ort_loads']} |",
        f"| `bench` (random inputs), of those | {_counts(s['bench'])} |",
        f"| ... refused/failed although onnxruntime runs the test's own data | {s['bench_refused_but_ort_runs_own']} |",
        f"| inputs fit an .npz (of those onnxruntime loads) | {s['with_npz']} |",
        f"| `bench --input inputs.npz`, of those | {_counts(s['bench_input'])} |",
        f"| onnxruntime runs the test's own data | {s['ort_runs_own_data']} |",
        f"| `bench --input`, of those | {_counts(s['bench_input_on_runs_own'])} |",
        *([f"| float in and out, of those | {s['float_runs_own']} |",
           f"| `build --target edge-server --calib/--eval inputs.npz`, of those benched with --input | "
           f"{_counts(s['build'])} |"] if s.get("build") else []),
        "",
    ])


def write_results(label: str, text: str) -> None:
    body = RESULTS.read_text() if RESULTS.exists() else ""
    head = ("## ONNX backend node tests: `inspect` and `bench` by exit code\n\n"
            "`python benchmarks/onnx_node_suite.py`: every node test of the installed `onnx` package "
            "(onnx.backend.test.case.node), `inspect` on all, `bench` with random inputs and with the test's own "
            "inputs (`--input`, one array per input name) on those onnxruntime loads; one run, few iterations "
            "(`--runs 1`), a timeout per case. exit 0 = measured, exit 2 = refused with one clear line, "
            "exit 1 = internal error (a bug), hang = no answer within the timeout.\n")
    if BEGIN in body and END in body:
        pre, rest = body.split(BEGIN, 1)
        section, post = rest.split(END, 1)
    else:
        pre, section, post = body.rstrip() + "\n\n", "", "\n"
    tables = {}
    for chunk in section.split("\n### ")[1:]:
        tables[chunk.split("\n", 1)[0].strip()] = "### " + chunk.rstrip() + "\n"
    tables[label] = text
    RESULTS.write_text(pre + BEGIN + "\n" + head + "\n" + "\n".join(tables.values()) + END + post)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True, help="folder for the models, inputs and results")
    p.add_argument("--repo", type=Path, default=ROOT, help="checkout whose edgeopt runs (default: this one)")
    p.add_argument("--label", default="after", help="name of this run in RESULTS.md")
    p.add_argument("--note", default="", help="one line under the table (commit, conditions)")
    p.add_argument("--ops", default="", help="only these op types (comma-separated)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--every", type=int, default=1, help="every K-th test by name (a sample the same in every run)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of each worker (0 = none)")
    p.add_argument("--results", action="store_true", help="write the table to benchmarks/RESULTS.md")
    p.add_argument("--build", action="store_true", help="also build the float models for edge-server (their own data)")
    p.add_argument("--rows", type=Path, help="summarize the rows of an earlier run's results JSON instead of running")
    p.add_argument("--restrict-to", type=Path, help="only the tests of this results JSON (compare on the same sample)")
    args = p.parse_args()

    import onnx
    import onnxruntime

    if args.rows:
        rows = json.loads(args.rows.read_text())["rows"]
    else:
        ops = {o.strip() for o in args.ops.split(",") if o.strip()} or None
        index = write_cases(args.work, ops, args.limit or None, args.every)
        print(f"{len(index)} node tests in {args.work}", file=sys.stderr)
        rows = run_suite(index, args.repo.resolve(), args.workers, args.timeout, args.memory_gb, args.build)
    if args.restrict_to:
        keep = {r["name"] for r in json.loads(args.restrict_to.read_text())["rows"]}
        rows = [r for r in rows if r["name"] in keep]
    s = summarize(rows)
    s.update(onnx=onnx.__version__, ort=onnxruntime.__version__, label=args.label)
    out = args.work / f"results-{args.label}.json"
    out.write_text(json.dumps({"summary": s, "rows": rows}, indent=1))
    print(json.dumps(s, indent=1))
    print(f"rows: {out}", file=sys.stderr)
    if args.results:
        write_results(args.label, table(args.label, s, args.note))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_serve())
    sys.exit(main())
