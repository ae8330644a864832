"""Fuzz: mutated .tflite/.onnx/.keras/.npz/.toml files end in exit 0 or a one-line exit 2, never a crash.

A few hundred cases through long-lived worker processes, and a few dozen TensorFlow-free cases in a fresh
process each (see fuzzer.py); benchmarks/fuzz_long.py runs the same fuzzer for 10,000+ cases (--fresh for
a process per case). Mutations are byte-level and structure-aware: flatbuffer offset aliasing and vector
length inflation, ONNX external-data references, TOML nesting depth, .npz size bombs and bad labels.
The folder kinds (fuzz_classes.py: edited SavedModels, ONNX function fan-out, TFLM cache folders, search OUTs)
get a few cases each here; each of them must also leave its sentinel folder untouched (outcome "escape").
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.robustness.fuzz_classes import NEW_KINDS
from tests.robustness.fuzzer import BAD, build_corpus, make_cases, run_cases, run_forked, run_fresh

pytestmark = pytest.mark.tensorflow

CASES = int(os.environ.get("EDGEOPT_FUZZ_CASES", "240"))
FRESH_CASES = int(os.environ.get("EDGEOPT_FUZZ_FRESH_CASES", "40"))
FORKED_CASES = int(os.environ.get("EDGEOPT_FUZZ_FORKED_CASES", "80"))


def _report(run, cases) -> Counter[str]:
    counts = run.counts
    print("fuzz outcomes:", dict(counts))
    assert len(run.outcomes) == len(cases)
    bad = [f"case {o.case.id} {o.case.target}/{o.case.mutation} {' '.join(o.case.args[:2])}: {o.outcome} "
           f"(exit {o.code}) {o.stderr.strip()[-400:]}" for o in run.bad()]
    assert not bad, "\n".join(bad)
    # the fuzzer reached both ends: files still accepted and files rejected with a message
    assert counts["ok"] > 0 and counts["rejected"] > 0
    assert all(k not in counts for k in BAD)
    return counts


def test_fuzz_cli_never_crashes(mobile_build, tmp_path):
    corpus = build_corpus(tmp_path / "fuzz", mobile_build / "digits_dscnn.tflite")
    cases = make_cases(corpus, CASES, seed=20240601)
    structural = Counter(c.mutation.split(":")[0] for c in cases)
    assert structural["alias"] and structural["inflate"] and structural["external"] and structural["deep"]
    _report(run_cases(cases, workers=2, timeout=60), cases)


def test_fuzz_fresh_process_per_case(mobile_build, tmp_path):
    """Each case in its own `python -m edgeopt`: a signal or a hang is the command's own, not a worker's."""
    corpus = build_corpus(tmp_path / "fresh", mobile_build / "digits_dscnn.tflite")
    cases = make_cases(corpus, FRESH_CASES, seed=20261201, light=True)
    assert all(c.args[0] != "build" for c in cases)
    _report(run_fresh(cases, workers=2, timeout=60), cases)


def test_fuzz_forked_process_per_case(mobile_build, tmp_path):
    """Every kind of case, builds included, each in a process forked from a warm server (run_forked)."""
    corpus = build_corpus(tmp_path / "forked", mobile_build / "digits_dscnn.tflite")
    cases = make_cases(corpus, FORKED_CASES, seed=20261202)
    assert any(c.args[0] == "build" for c in cases)
    _report(run_forked(cases, workers=2, timeout=60), cases)


def test_forked_and_execd_processes_agree(mobile_build, tmp_path):
    """The fork server changes the cost of a fresh process, not what a case does: same outcome, same exit code."""
    corpus = build_corpus(tmp_path / "agree", mobile_build / "digits_dscnn.tflite")
    cases = make_cases(corpus, 16, seed=20261203, light=True)
    forked = {o.case.id: (o.outcome, o.code) for o in run_forked(cases, workers=2, timeout=60).outcomes}
    execd = {o.case.id: (o.outcome, o.code) for o in run_fresh(cases, workers=2, timeout=60).outcomes}
    assert forked == execd
    assert {o for o, _ in forked.values()} >= {"ok", "rejected"}


def test_fuzz_folder_kinds_fresh_process_per_case(mobile_build, tmp_path):
    """ONNX function fan-out, TFLM cache folders and search OUTs (no TensorFlow), a fresh process each."""
    corpus = build_corpus(tmp_path / "folders", mobile_build / "digits_dscnn.tflite")
    cases = make_cases(corpus, 15, seed=20261207, kinds=("onnxfn", "tflmcache", "searchdb"))
    assert {c.target for c in cases} == {"onnxfn", "tflmcache", "searchdb"}
    assert all(c.sentinel for c in cases)
    _report(run_fresh(cases, workers=2, timeout=60), cases)


def test_fuzz_edited_saved_models(mobile_build, tmp_path):
    """SavedModels edited with the protobuf API (graphs in strings, restore-node function attrs, file-reading
    dataset ops), `inspect` in a forked process each; the base SavedModel is built once and cached."""
    corpus = build_corpus(tmp_path / "sm", mobile_build / "digits_dscnn.tflite")
    cases = make_cases(corpus, 3, seed=20261208, kinds=("savedmodel",))
    assert {c.target for c in cases} == {"savedmodel"} and set(NEW_KINDS) >= {"savedmodel"}
    run = run_forked(cases, workers=2, timeout=120)
    assert len(run.outcomes) == 3
    bad = [f"{o.case.mutation}: {o.outcome} (exit {o.code}) {o.stderr.strip()[-400:]}" for o in run.bad()]
    assert not bad, "\n".join(bad)
    assert set(run.counts) <= {"ok", "rejected"}
