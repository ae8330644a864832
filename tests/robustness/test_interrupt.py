"""An interrupted build (SIGINT, SIGTERM, SIGKILL; while converting or benchmarking) loses nothing.

OUT already holds an earlier build with a user file; each kill must leave those
files byte-identical, and no temporary file behind (after SIGKILL, the next run
sweeps the leftovers).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.robustness.conftest import MODEL, ROOT, edgeopt

pytestmark = pytest.mark.tensorflow


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() if p.is_file() else b"<dir>" for p in folder.iterdir()}


def _start(out: Path) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    # As from a terminal: a runner started in the background (nohup, `&`) passes SIGINT down ignored, and the
    # build would rightly keep ignoring it.
    return subprocess.Popen([sys.executable, "-m", "edgeopt", "build", str(MODEL), "--target", "mobile-cpu",
                             "--out", str(out), "--force"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=ROOT, env=env, preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(proc: subprocess.Popen, phase: str, limit: float = 180) -> str:
    """Read progress lines on stderr until `phase` appears ("converting", "benchmarking")."""
    seen = ""
    deadline = time.monotonic() + limit
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        if not line:
            break
        seen += line
        if phase in line:
            return seen
    msg = f"phase {phase!r} never reached: {seen}"
    raise AssertionError(msg)


@pytest.fixture()
def earlier(mobile_build, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(mobile_build, out)
    (out / "notes.txt").write_text("mine, keep me\n")
    return out


@pytest.mark.parametrize(("sig", "phase", "code"), [
    (signal.SIGINT, "converting", 130),
    (signal.SIGTERM, "benchmarking", 143),
    (signal.SIGKILL, "benchmarking", -signal.SIGKILL),
])
def test_kill_keeps_earlier_build(earlier, sig, phase, code):
    before = _snapshot(earlier)
    proc = _start(earlier)
    _wait_for(proc, phase)
    time.sleep(0.5 if phase == "converting" else 0.2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == code, err
    if sig != signal.SIGKILL:
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.strip().endswith("...")]
        assert len(lines) == 1 and "earlier outputs are untouched" in lines[0], err
        assert "Traceback" not in err
    after = _snapshot(earlier)
    if sig == signal.SIGKILL:  # no cleanup possible: only .edgeopt-* leftovers, swept by the next run (below)
        assert all(n.startswith(".edgeopt-") for n in set(after) - set(before))
        after = {n: b for n, b in after.items() if n in before}
    assert after == before  # byte-identical, nothing added (no staging folder, no lock file)


def test_sigkill_leftovers_are_swept_by_the_next_run(earlier):
    before = _snapshot(earlier)
    proc = _start(earlier)
    _wait_for(proc, "converting")
    time.sleep(1.0)
    proc.kill()
    proc.wait(timeout=60)
    leftovers = sorted(p.name for p in earlier.iterdir() if p.name not in before)
    assert all(n.startswith(".edgeopt-") for n in leftovers), leftovers
    assert {n: earlier.joinpath(n).read_bytes() for n in before} == before
    r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", earlier, "--no-bench", "--force")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in earlier.iterdir()) == sorted({*before, "manifest.json"})
    assert (earlier / "notes.txt").read_text() == "mine, keep me\n"
    assert edgeopt("verify", earlier).returncode == 0


def test_two_builds_into_one_folder(earlier):
    """The second build fails at once with exit 2 naming the first one's pid; the first completes."""
    first = _start(earlier)
    _wait_for(first, "converting")
    first.send_signal(signal.SIGSTOP)  # hold it mid-build, so the race cannot end before the second starts
    try:
        r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", earlier, "--no-bench", "--force")
    finally:
        first.send_signal(signal.SIGCONT)
    assert r.returncode == 2, r.stderr
    assert f"another edgeopt build is writing {earlier} (pid {first.pid})" in r.stderr
    *steps, error = r.stderr.strip().splitlines()  # one error line, after the progress lines ("loading the model...")
    assert error.startswith("error: another edgeopt build") and all(line.endswith("...") for line in steps)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert not [p for p in earlier.iterdir() if p.name.startswith(".edgeopt-")]
    assert edgeopt("verify", earlier).returncode == 0


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])
def test_signal_mangled_by_native_code_still_exits_as_signal(monkeypatch, capsys, sig, code, word):
    """TF's pybind11 layer can turn the KeyboardInterrupt into a RuntimeError that the converter
    wraps as ConversionError (seen in CI: 'MISMATCH of original and normalized active exception
    types'); once the CLI's handler has seen the signal, any error still exits as that signal."""
    import typer

    from edgeopt.cli import errors
    from edgeopt.errors import ConversionError

    monkeypatch.setattr(errors, "signal_seen", sig)
    with pytest.raises(typer.Exit) as exit_info, errors.handled():
        msg = "SavedModel export failed: RuntimeError: pybind11::error_already_set"
        raise ConversionError(msg)
    assert exit_info.value.exit_code == code
    assert capsys.readouterr().err == f"{word}; earlier outputs are untouched\n"
    monkeypatch.setattr(errors, "signal_seen", None)
    with pytest.raises(typer.Exit) as exit_info, errors.handled():
        msg = "a real conversion failure"
        raise ConversionError(msg)
    assert exit_info.value.exit_code == ConversionError.exit_code
