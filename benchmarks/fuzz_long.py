"""Long fuzzing run of the edgeopt CLI (same fuzzer as tests/robustness/test_fuzz.py).

    python benchmarks/fuzz_long.py --cases 10000 --workers 2 [--tflite built.tflite] [--seed 1] [--fresh | --exec]
    python benchmarks/fuzz_long.py --compare-fresh 300      # forked and exec'd fresh processes agree?
    python benchmarks/fuzz_long.py --cases 2000 --fresh --kinds savedmodel,onnxfn,tflmcache,searchdb

--kinds picks the input kinds (default: all, the file kinds and the folder kinds of
tests/robustness/fuzz_classes.py; a folder case must also leave its sentinel folder unchanged).

--fresh runs every case in a process of its own, forked from a server that has imported the CLI, the
runtimes and TensorFlow once (tests/robustness/fuzzer.py run_forked): signals and hangs are the command's
own, at the cost of a fork. --exec starts a new `python -m edgeopt` per case instead (about 3.5 s a case
here). Without either, cases run in long-lived workers that invoke the CLI in-process.
--compare-fresh N runs N cases both forked and exec'd and lists every case whose outcome or exit code differs.

Builds the seed .tflite (sample DS-CNN for mobile-cpu) unless --tflite is given,
prints the count by outcome, and writes every bad case (internal / crash / hang)
with its command line to WORKDIR/bad.txt. Mutated files of bad cases are kept.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.robustness.fuzzer import ALL_KINDS, build_corpus, make_cases, run_cases, run_forked, run_fresh  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--tflite", type=Path)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--fresh", action="store_true", help="a fresh (forked) process per case")
    ap.add_argument("--exec", action="store_true", help="a fresh `python -m edgeopt` per case")
    ap.add_argument("--compare-fresh", type=int, metavar="N", help="N cases forked and exec'd; list differences")
    ap.add_argument("--kinds", default=",".join(ALL_KINDS),
                    help=f"input kinds, comma-separated (default: all: {','.join(ALL_KINDS)})")
    ap.add_argument("--results", type=Path, help="write the closing counts as a section of this file (RESULTS.md)")
    args = ap.parse_args()
    kinds = tuple(k for k in args.kinds.split(",") if k)
    if not set(kinds) <= set(ALL_KINDS):
        ap.error(f"--kinds: unknown {sorted(set(kinds) - set(ALL_KINDS))}; known: {', '.join(ALL_KINDS)}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edgeopt-fuzz-"))
    tflite = args.tflite
    if tflite is None:
        out = work / "seed-build"
        subprocess.run([sys.executable, "-m", "edgeopt", "build", str(ROOT / "sample_models" / "digits_dscnn.keras"),
                        "--target", "mobile-cpu", "--out", str(out), "--no-bench"], check=True, cwd=ROOT,
                       capture_output=True)
        tflite = out / "digits_dscnn.tflite"
    corpus = build_corpus(work / "cases", tflite)
    if args.compare_fresh:
        return compare(corpus, args.compare_fresh, args.seed, args.workers, args.timeout)
    t0 = time.monotonic()
    done = 0
    counts: dict[str, int] = {}
    bad_lines = []
    batch = 500  # mutated files are removed batch by batch (kept for bad cases)
    while done < args.cases:
        n = min(batch, args.cases - done)
        cases = make_cases(corpus, n, seed=args.seed * 1_000_003 + done, first=done, kinds=kinds)
        runner = run_forked if args.fresh else run_fresh if args.exec else run_cases
        run = runner(cases, workers=args.workers, timeout=args.timeout)
        for o in run.outcomes:
            key = f"{o.outcome}"
            counts[key] = counts.get(key, 0) + 1
            counts[f"{o.case.target}/{o.outcome}"] = counts.get(f"{o.case.target}/{o.outcome}", 0) + 1
            kind = f"{o.case.target}:{o.case.mutation.split(':')[0]}/{o.outcome}"
            counts[kind] = counts.get(kind, 0) + 1
        for o in run.bad():
            bad_lines.append(f"{o.outcome} exit={o.code} {' '.join(o.case.args)} [{o.case.target}/{o.case.mutation}]\n"
                             f"    {o.stderr.strip()[-600:]}")
        (work / "bad.txt").write_text("\n".join(bad_lines) + "\n")
        keep = {Path(a).name.split(".")[0] for o in run.bad() for a in o.case.args if a.startswith(str(corpus.workdir))}
        for p in corpus.workdir.glob("case*"):
            if p.name.split(".")[0] not in keep:
                if p.is_dir() and not p.is_symlink():
                    for d in (p, *(q for q in p.rglob("*") if q.is_dir() and not q.is_symlink())):
                        d.chmod(0o700)  # a case may have loosened or tightened a folder's mode
                    shutil.rmtree(p)
                else:
                    p.unlink()
        done += n
        rate = done / (time.monotonic() - t0)
        totals = {k: v for k, v in counts.items() if "/" not in k}
        print(f"{done} cases, {rate:.1f}/s: {totals}", flush=True)
        print("  by file and outcome:", {k: v for k, v in sorted(counts.items()) if "/" in k and ":" not in k},
              flush=True)
    (work / "bad.txt").write_text("\n".join(bad_lines) + "\n")
    print("by outcome:", {k: v for k, v in sorted(counts.items()) if "/" not in k})
    print("by file and outcome:", {k: v for k, v in sorted(counts.items()) if "/" in k and ":" not in k})
    print("by mutation and outcome:", {k: v for k, v in sorted(counts.items()) if ":" in k})
    print(f"{len(bad_lines)} bad cases; details in {work / 'bad.txt'}; {time.monotonic() - t0:.0f} s")
    if args.results:
        mode = "forked fresh process per case" if args.fresh else "exec'd fresh process per case" if args.exec \
            else "long-lived workers"
        replace_section(args.results, render(counts, bad_lines, args, mode, time.monotonic() - t0))
    return 1 if bad_lines else 0


BEGIN, END = "<!-- fuzz-long:begin -->", "<!-- fuzz-long:end -->"


def render(counts: dict[str, int], bad_lines: list[str], args: argparse.Namespace, mode: str, seconds: float) -> str:
    """The RESULTS.md section: totals, the table by input kind and mutation, every bad case."""
    outcomes = ("ok", "rejected", "budget", "internal", "crash", "hang", "escape")
    total = sum(v for k, v in counts.items() if "/" not in k)
    lines = [BEGIN, "## Long fuzz run of the CLI (structure-aware mutations)", "",
             f"`python benchmarks/fuzz_long.py --cases {args.cases} --workers {args.workers} --seed {args.seed}"
             f"{' --fresh' if args.fresh else ' --exec' if args.exec else ''}`: {total} cases, {mode}, "
             f"{seconds:.0f} s ({total / max(seconds, 1e-9):.1f} cases/s). Outcomes: "
             + ", ".join(f"{o} {counts.get(o, 0)}" for o in outcomes) + ".", "",
             "| input kind / mutation | " + " | ".join(outcomes) + " |", "|---|" + "---:|" * len(outcomes)]
    kinds = sorted({k.split("/")[0] for k in counts if ":" in k})
    for target in sorted({k.split(":")[0] for k in kinds}):
        lines.append(f"| **{target}** | " + " | ".join(str(counts.get(f"{target}/{o}", 0)) for o in outcomes) + " |")
        for kind in (k for k in kinds if k.startswith(target + ":")):
            lines.append(f"| {kind} | " + " | ".join(str(counts.get(f"{kind}/{o}", 0)) for o in outcomes) + " |")
    lines += ["", f"Bad cases (internal, crash, hang, escape): {len(bad_lines)}."]
    lines += [f"- `{b.splitlines()[0][:300]}`" for b in bad_lines]
    return "\n".join([*lines, END]) + "\n"


def replace_section(path: Path, section: str) -> None:
    """Swap this script's section of RESULTS.md (or append it); written to a temporary file, then os.replace."""
    import os

    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    Path(tmp).replace(path)


def compare(corpus, n: int, seed: int, workers: int, timeout: float) -> int:
    """The same n cases forked and exec'd: every case must end the same way (outcome and exit code)."""
    cases = make_cases(corpus, n, seed=seed * 1_000_003)
    t0 = time.monotonic()
    forked = run_forked(cases, workers=workers, timeout=timeout)
    t1 = time.monotonic()
    execd = run_fresh(cases, workers=workers, timeout=timeout)
    t2 = time.monotonic()
    a = {o.case.id: o for o in forked.outcomes}
    b = {o.case.id: o for o in execd.outcomes}
    diff = [c for c in cases if (a[c.id].outcome, a[c.id].code) != (b[c.id].outcome, b[c.id].code)]
    for c in diff:
        print(f"differs: case {c.id} {' '.join(c.args)} [{c.target}/{c.mutation}]\n"
              f"    forked {a[c.id].outcome} exit={a[c.id].code}: {a[c.id].stderr.strip()[-300:]}\n"
              f"    exec'd {b[c.id].outcome} exit={b[c.id].code}: {b[c.id].stderr.strip()[-300:]}")
    print(f"forked: {dict(forked.counts)} in {t1 - t0:.0f} s ({n / (t1 - t0):.2f} cases/s)")
    print(f"exec'd: {dict(execd.counts)} in {t2 - t1:.0f} s ({n / (t2 - t1):.2f} cases/s)")
    print(f"{n - len(diff)}/{n} cases end the same way; {len(diff)} differ")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
