"""Fuzz: mutated .tflite/.onnx/.keras/.npz/.toml files end in exit 0 or a one-line exit 2, never a crash.

A few hundred cases through long-lived worker processes (see fuzzer.py);
benchmarks/fuzz_long.py runs the same fuzzer for 10,000+ cases.
"""

from __future__ import annotations

import os

from tests.robustness.fuzzer import BAD, build_corpus, make_cases, run_cases

CASES = int(os.environ.get("EDGEOPT_FUZZ_CASES", "240"))


def test_fuzz_cli_never_crashes(mobile_build, tmp_path):
    corpus = build_corpus(tmp_path / "fuzz", mobile_build / "digits_dscnn.tflite")
    cases = make_cases(corpus, CASES, seed=20240601)
    run = run_cases(cases, workers=2, timeout=60)
    counts = run.counts
    print("fuzz outcomes:", dict(counts))
    assert len(run.outcomes) == len(cases)
    bad = [f"case {o.case.id} {o.case.target}/{o.case.mutation} {' '.join(o.case.args[:2])}: {o.outcome} "
           f"(exit {o.code}) {o.stderr.strip()[-400:]}" for o in run.bad()]
    assert not bad, "\n".join(bad)
    # the fuzzer reached both ends: files still accepted and files rejected with a message
    assert counts["ok"] > 0 and counts["rejected"] > 0
    assert all(k not in counts for k in BAD)
