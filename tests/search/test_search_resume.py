"""A search killed with SIGKILL and resumed: no trial lost or counted twice."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeopt.pipeline.search.results import SearchResult
from tests.search.searching import CNN, env, sqlite_states

pytestmark = pytest.mark.tensorflow


def test_sigkill_then_resume(tmp_path: Path, profile, tiny_data):
    _, ev, calib = tiny_data
    prof = profile("k", 'extends = "mobile-cpu"\n[partial]\naccuracy_control = false\n[budgets]\nmax_accuracy_drop = 50.0\n'
                   '[search]\nobjectives = ["accuracy_drop", "bytes"]\nschemes = ["int8", "float16", "dynamic"]\n'
                   'per_channel = [true, false]\n')
    out = tmp_path / "o"
    args = [sys.executable, "-m", "edgeopt", "search", str(CNN), "-t", str(prof), "--trials", "3", "--eval", str(ev),
            "--calib", str(calib), "--out", str(out), "--sampler", "grid", "--seed", "0"]
    proc = subprocess.Popen(args, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "search.db"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:  # kill while the second trial runs
        states = sqlite_states(db) if db.is_file() else []
        if any(s == "COMPLETE" for _, s in states) and any(s == "RUNNING" for _, s in states):
            break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = sqlite_states(db)
    assert "RUNNING" in [s for _, s in before]
    r = subprocess.run([*args, "--resume"], env=env(), capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    after = sqlite_states(db)
    assert [s for _, s in after].count("COMPLETE") == 3 and "RUNNING" not in [s for _, s in after]
    killed = [n for n, s in before if s == "RUNNING"]
    assert all(dict(after)[n] == "FAIL" for n in killed)  # the dead trial is failed, not counted
    res = SearchResult.model_validate_json((out / "search.json").read_text())
    done = [t for t in res.trials if t.state == "COMPLETE"]
    assert len(done) == 3 and len({tuple(sorted(t.params.items())) for t in done}) == 3  # none twice
    assert any("left running by a process that died were marked FAIL" in n for n in res.notes)
    first = [t for t in done if t.number < min(killed)]
    assert first and all((Path(t.folder) / "report.json").is_file() for t in done)  # the finished one was kept
