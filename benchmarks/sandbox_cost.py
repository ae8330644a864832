"""What the sandbox costs: the same `edgeopt build` with the model's side confined (edgeopt.sandbox) and with
EDGEOPT_SANDBOX=off, interleaved round by round, wall and CPU time (the build and every process it starts).

    python benchmarks/sandbox_cost.py [--rounds 3] [--out benchmarks/RESULTS.md]

CPU time is the steadier figure on a shared machine; wall time is what a user waits. Measured on this host.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from results_md import replace_section  # noqa: E402 - benchmarks/ is on sys.path when run as a script

BEGIN, END = "<!-- sandbox-cost:begin -->", "<!-- sandbox-cost:end -->"
CASES = (("digits_cnn.keras", "mobile-cpu", "Keras CNN, int8 for mobile-cpu"),
         ("digits_mlp.onnx", "edge-server", "ONNX MLP, int8 for edge-server"),
         ("digits_cnn.keras", "embedded-mcu", "Keras CNN, int8 for embedded-mcu (host TFLM check)"))


def run(model: str, target: str, sandbox: bool, out: Path) -> tuple[float, float]:
    env = dict(os.environ, EDGEOPT_SANDBOX="on" if sandbox else "off", TF_CPP_MIN_LOG_LEVEL="3")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "edgeopt", "build", str(ROOT / "sample_models" / model), "--target",
                        target, "--out", str(out), "--no-bench", "--force"], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode not in (0, 3):
        msg = f"{model} {target} sandbox={sandbox}: exit {r.returncode}: {r.stderr[-400:]}"
        raise SystemExit(msg)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = ap.parse_args()
    times: dict[tuple[str, str, bool], list[tuple[float, float]]] = {}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for model, target, _ in CASES:
                for sandbox in ((True, False) if rnd % 2 == 0 else (False, True)):  # alternate who goes first
                    loads.append(os.getloadavg()[0])
                    t = run(model, target, sandbox, Path(tmp) / f"{target}-{sandbox}")
                    times.setdefault((model, target, sandbox), []).append(t)
                    print(model, target, "sandbox" if sandbox else "off", f"{t[0]:.1f} s wall, {t[1]:.1f} s CPU",
                          flush=True)
    rows = []
    for model, target, label in CASES:
        on, off = times[(model, target, True)], times[(model, target, False)]
        w_on, w_off = statistics.median(t[0] for t in on), statistics.median(t[0] for t in off)
        c_on, c_off = statistics.median(t[1] for t in on), statistics.median(t[1] for t in off)
        rows.append(f"| {label} | {w_on:.1f} s | {w_off:.1f} s | {w_on - w_off:+.1f} s ({w_on / w_off:.2f}x) | "
                    f"{c_on:.1f} s | {c_off:.1f} s | {c_on - c_off:+.1f} s ({c_on / c_off:.2f}x) |")
    text = "\n".join([
        BEGIN, "## The sandbox's cost per build (`benchmarks/sandbox_cost.py`)", "",
        f"`edgeopt build --no-bench --force` on the samples, model side confined vs `EDGEOPT_SANDBOX=off`, "
        f"{args.rounds} rounds interleaved (who goes first alternates), medians; CPU = user + system time of the "
        f"build and every process it starts. Measured on this host ({os.cpu_count()} cores, 1-minute load "
        f"average {min(loads):.1f}-{max(loads):.1f} while measuring: other work competed, wall times are biased).",
        "", "| build | wall, sandbox | wall, off | wall cost | CPU, sandbox | CPU, off | CPU cost |",
        "|---|---|---|---|---|---|---|", *rows, "", END])
    replace_section(args.out, BEGIN, END, text)
    print(text)


if __name__ == "__main__":
    main()
