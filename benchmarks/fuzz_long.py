"""Long fuzzing run of the edgeopt CLI (same fuzzer as tests/robustness/test_fuzz.py).

    python benchmarks/fuzz_long.py --cases 10000 --workers 2 [--tflite built.tflite] [--seed 1] [--fresh]

--fresh runs every case in its own `python -m edgeopt` process (signals and hangs are the command's own;
about 3 s a case on 2 cores), instead of long-lived workers that load TensorFlow once.

Builds the seed .tflite (sample DS-CNN for mobile-cpu) unless --tflite is given,
prints the count by outcome, and writes every bad case (internal / crash / hang)
with its command line to WORKDIR/bad.txt. Mutated files of bad cases are kept.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.robustness.fuzzer import build_corpus, make_cases, run_cases, run_fresh  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--tflite", type=Path)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--fresh", action="store_true", help="a fresh process per case")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edgeopt-fuzz-"))
    tflite = args.tflite
    if tflite is None:
        out = work / "seed-build"
        subprocess.run([sys.executable, "-m", "edgeopt", "build", str(ROOT / "sample_models" / "digits_dscnn.keras"),
                        "--target", "mobile-cpu", "--out", str(out), "--no-bench"], check=True, cwd=ROOT,
                       capture_output=True)
        tflite = out / "digits_dscnn.tflite"
    corpus = build_corpus(work / "cases", tflite)
    t0 = time.monotonic()
    done = 0
    counts: dict[str, int] = {}
    bad_lines = []
    batch = 500  # mutated files are removed batch by batch (kept for bad cases)
    while done < args.cases:
        n = min(batch, args.cases - done)
        cases = make_cases(corpus, n, seed=args.seed * 1_000_003 + done, first=done)
        run = (run_fresh(cases, workers=args.workers, timeout=args.timeout) if args.fresh
               else run_cases(cases, workers=args.workers, timeout=args.timeout))
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
        keep = {a for o in run.bad() for a in o.case.args}
        for p in corpus.workdir.glob("case*"):
            if str(p) not in keep:
                p.unlink()
        done += n
        rate = done / (time.monotonic() - t0)
        totals = {k: v for k, v in counts.items() if "/" not in k}
        print(f"{done} cases, {rate:.1f}/s: {totals}", flush=True)
    (work / "bad.txt").write_text("\n".join(bad_lines) + "\n")
    print("by outcome:", {k: v for k, v in sorted(counts.items()) if "/" not in k})
    print("by file and outcome:", {k: v for k, v in sorted(counts.items()) if "/" in k and ":" not in k})
    print("by mutation and outcome:", {k: v for k, v in sorted(counts.items()) if ":" in k})
    print(f"{len(bad_lines)} bad cases; details in {work / 'bad.txt'}; {time.monotonic() - t0:.0f} s")
    return 1 if bad_lines else 0


if __name__ == "__main__":
    sys.exit(main())
