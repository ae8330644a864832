"""The crash probe's child is started once and reused by the next models (issue 26, item 5); a crash is still the
crashing model's alone, and the child dies with the thread that started it (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgeopt.errors import ModelFileError
from edgeopt.runtime import probe
from edgeopt.runtime.probe import ProbeRun
from tests.bench import bench_models as bm

ROOT = Path(__file__).resolve().parents[2]
FAST = ("--runs", "3", "--min-seconds", "0", "--warmup-seconds", "0")


def _bench(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`edgeopt bench` in a fresh process: no child or passed file left from other tests."""
    return subprocess.run([sys.executable, "-m", "edgeopt", "bench", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                          check=False)


def test_one_child_probes_every_model_of_a_bench(tmp_path) -> None:
    paths = [bm.tflite_mlp(tmp_path / "a.tflite", n_in=24), bm.tflite_mlp(tmp_path / "b.tflite", int8=True, n_in=24),
             bm.onnx_mlp(tmp_path / "c.onnx", n_in=24)]
    out = _bench(*paths, *FAST, "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads(out.stdout)["results"]
    assert [r["probe"] for r in results] == ["fresh child", "reused child", "reused child"]
    first, second = results[0]["probe_ms"], results[1]["probe_ms"]
    assert second < first / 3, (first, second)  # no Python, numpy or LiteRT start for the second model
    off = _bench(paths[0], *FAST, "--json", env={"EDGEOPT_PROBE": "0"})
    assert off.returncode == 0 and json.loads(off.stdout)["results"][0]["probe"] == "off"


def test_a_crash_after_a_good_model_is_still_one_line(tmp_path) -> None:
    """The good model's child is reused for the crashing one; the crash is named, edgeopt lives (exit 2)."""
    good, bad = bm.tflite_mlp(tmp_path / "good.tflite", n_in=20), bm.tflite_crashing(tmp_path / "bad.tflite")
    out = _bench(good, bad, *FAST)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        f"error: {bad}: litert crashed (SIGSEGV) while loading or running the model in a child process; the file "
        "is corrupt or malformed, re-export it"]


def _probe(path: Path) -> ProbeRun:
    return probe.probe(path, "litert", 1, True, "all")


def test_the_child_after_a_crash_is_a_fresh_one(tmp_path) -> None:
    probe.close()
    a, b = bm.tflite_mlp(tmp_path / "a.tflite", n_in=12), bm.tflite_mlp(tmp_path / "b.tflite", n_in=13)
    assert _probe(a) is ProbeRun.FRESH
    with pytest.raises(ModelFileError, match=r"crashed \(SIGSEGV\)"):
        _probe(bm.tflite_crashing(tmp_path / "bad.tflite"))
    assert _probe(b) is ProbeRun.FRESH  # the crash took the child with it
    assert _probe(b) is ProbeRun.PASSED_BEFORE and _probe(a) is ProbeRun.PASSED_BEFORE


def _probe_children() -> set[int]:
    kids = set()
    for task in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for kid in task.read_text().split():
            try:
                cmd = Path(f"/proc/{kid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"edgeopt.runtime.probe_child" in cmd:
                kids.add(int(kid))
    return kids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_dies_with_the_thread_that_started_it(tmp_path) -> None:
    before = _probe_children()
    runs: list[ProbeRun] = []
    model = bm.tflite_mlp(tmp_path / "t.tflite", n_in=11)
    probed, release = threading.Event(), threading.Event()

    def work() -> None:
        runs.append(_probe(model))
        probed.set()
        release.wait(120)  # the thread lives on until the child is counted (its end is what kills the child)

    thread = threading.Thread(target=work)
    thread.start()
    assert probed.wait(120)
    started = _probe_children() - before
    release.set()
    thread.join(120)
    assert runs == [ProbeRun.FRESH]
    assert len(started) == 1, started  # alive while its thread was
    (pid,) = started
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text() \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "zombie" in status.read_text()  # killed by PR_SET_PDEATHSIG, not yet reaped
    probe.close()  # reaps it


def test_a_changed_environment_gets_a_fresh_child(tmp_path, monkeypatch) -> None:
    """The child reads edgeopt's variables (EDGEOPT_MAX_ONNX_NODES, ...) at start: a change starts a new one."""
    a, b = bm.tflite_mlp(tmp_path / "a.tflite", n_in=9), bm.tflite_mlp(tmp_path / "b.tflite", n_in=10)
    c = bm.tflite_mlp(tmp_path / "c.tflite", n_in=14)
    _probe(a)
    assert _probe(b) is ProbeRun.REUSED
    monkeypatch.setenv("EDGEOPT_MAX_ONNX_NODES", "1000")
    assert _probe(c) is ProbeRun.FRESH
