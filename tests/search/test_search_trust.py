"""`edgeopt search` trusts only its own files: best/ comes from OUT/trials/NNNN checked against the study's sha256s
(never from a path the study names, never through a link), and its database and locks refuse planted links."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeopt.pipeline.search.results import SearchResult
from tests.search.searching import CNN, env, sqlite_states

pytestmark = pytest.mark.tensorflow

BODY = ('extends = "mobile-cpu"\n[partial]\naccuracy_control = false\n[budgets]\nmax_accuracy_drop = 50.0\n'
        '[search]\nobjectives = ["accuracy_drop", "bytes"]\nschemes = ["float16", "dynamic"]\n')


def _run(*args: object):  # noqa: ANN202
    from edgeopt.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _refused(r) -> str:  # noqa: ANN001
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2, (r.exit_code, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, tiny_data) -> tuple[Path, Path, Path]:
    """(OUT, profile, eval): one real trial (float16 or dynamic: no calibration), its best/ copied from trials/0000."""
    _, ev, _ = tiny_data
    d = tmp_path_factory.mktemp("trust")
    prof = d / "p.toml"
    prof.write_text(BODY)
    out = d / "o"
    r = _run("search", CNN, "-t", prof, "--trials", "1", "--eval", ev, "--out", out, "--seed", "0")
    assert r.exit_code == 0, r.stderr
    return out, prof, ev


@pytest.fixture()
def copy(searched, tmp_path: Path) -> Path:
    """A private copy of the searched OUT (links kept as links)."""
    out = tmp_path / "o"
    shutil.copytree(searched[0], out, symlinks=True)
    return out


@pytest.fixture()
def evil(tmp_path: Path) -> Path:
    """A folder outside OUT that looks like a trial's: report.json and a secret."""
    e = tmp_path / "elsewhere"
    e.mkdir()
    (e / "report.json").write_text("{}")
    (e / "secret.txt").write_text("do not copy me\n")
    return e


def _resume(searched, out: Path):  # noqa: ANN001, ANN202
    _, prof, ev = searched
    return _run("search", CNN, "-t", prof, "--trials", "1", "--eval", ev, "--out", out, "--resume")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_best_is_the_trial_folder_not_the_folder_the_study_names(searched, copy: Path, evil: Path):
    with sqlite3.connect(copy / "search.db") as con:  # what a planted search.db or a hostile worker can do
        n = con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'folder'",
                        (json.dumps(str(evil)),)).rowcount
    assert n == 1
    shutil.rmtree(copy / "best")
    r = _resume(searched, copy)
    assert r.exit_code == 0, r.stderr
    assert not (copy / "best" / "secret.txt").exists()
    assert _files(copy / "best") == _files(copy / "trials" / "0000")  # the trial's own build, byte for byte
    res = SearchResult.model_validate_json((copy / "search.json").read_text())
    assert res.chosen is not None and res.chosen.how == "copied from trials/0000"


def test_trial_folder_linked_elsewhere_is_refused(searched, copy: Path, evil: Path):
    before = _files(copy / "best")
    shutil.rmtree(copy / "trials" / "0000")
    (copy / "trials" / "0000").symlink_to(evil, target_is_directory=True)
    line = _refused(_resume(searched, copy))
    assert line.startswith("error: trial 0000:") and "is a symbolic link" in line, line
    assert _files(copy / "best") == before and not list(copy.glob(".best-*"))


def test_links_in_the_trial_folder_are_never_followed(searched, copy: Path, evil: Path):
    trial = copy / "trials" / "0000"
    (trial / "secret.txt").symlink_to(evil / "secret.txt")  # not in the manifest: named in a note, not copied
    shutil.rmtree(copy / "best")
    r = _resume(searched, copy)
    assert r.exit_code == 0, r.stderr
    assert not (copy / "best" / "secret.txt").exists() and (copy / "best" / "report.json").is_file()
    res = SearchResult.model_validate_json((copy / "search.json").read_text())
    assert any("secret.txt (a symbolic link)" in n for n in res.notes), res.notes
    # a listed file replaced by a link to the same bytes elsewhere: refused, never dereferenced
    report = trial / "report.json"
    shutil.copy(report, evil / "report.json")
    report.unlink()
    report.symlink_to(evil / "report.json")
    line = _refused(_resume(searched, copy))
    assert "trial 0000:" in line and "report.json is (or passes through) a symbolic link" in line, line


@pytest.mark.parametrize("name", ["digits_cnn.tflite", "report.json", "manifest.json", "missing"])
def test_trial_changed_after_it_finished_is_refused(searched, copy: Path, name: str):
    before = _files(copy / "best")
    trial = copy / "trials" / "0000"
    if name == "missing":
        (trial / "digits_cnn.tflite").unlink()
    else:
        data = bytearray((trial / name).read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit
        (trial / name).write_bytes(bytes(data))
    line = _refused(_resume(searched, copy))
    assert line.startswith("error: trial 0000:"), line
    want = "digits_cnn.tflite is missing" if name == "missing" else f"{name} changed since the trial finished"
    assert want in line, line
    assert _files(copy / "best") == before and not list(copy.glob(".best-*"))  # the previous best/ is kept


@pytest.mark.parametrize("name", ["search.db", ".search-lock", ".timing-lock", "trials", "workers"])
def test_dangling_links_in_out_are_refused(tmp_path: Path, profile, tiny_data, name: str):
    _, ev, _ = tiny_data
    prof = profile("lat", BODY.replace('["accuracy_drop", "bytes"]', '["accuracy_drop", "p50_latency"]'))
    out = tmp_path / "o"
    out.mkdir()
    target = tmp_path / "target"
    (out / name).symlink_to(target)
    line = _refused(_run("search", CNN, "-t", prof, "--trials", "1", "--eval", ev, "--out", out, "--workers", "2"))
    assert str(out / name) in line and "symbolic link" in line, line
    assert not target.exists() and (out / name).is_symlink()
    trials = out / "trials"
    assert not trials.exists() or not any(trials.iterdir()), list(trials.iterdir())  # refused before any trial


@pytest.mark.parametrize("kind", ["fifo", "hard link"])
def test_search_db_must_be_a_file_of_its_own(tmp_path: Path, profile, tiny_data, kind: str):
    _, ev, _ = tiny_data
    out = tmp_path / "o"
    out.mkdir()
    other = tmp_path / "mine.db"
    if kind == "fifo":
        os.mkfifo(out / "search.db")
    else:
        other.write_bytes(b"keep me")
        os.link(other, out / "search.db")
    line = _refused(_run("search", CNN, "-t", profile("p", BODY), "--trials", "1", "--eval", ev, "--out", out,
                         "--resume"))
    want = "is not a regular file" if kind == "fifo" else "is a file with other hard links"
    assert f"{out / 'search.db'} {want}" in line, line
    if kind == "hard link":
        assert other.read_bytes() == b"keep me"


def test_trials_cap(tmp_path: Path, profile, tiny_data):
    from edgeopt.pipeline.search.run import MAX_TRIALS

    _, ev, _ = tiny_data
    out = tmp_path / "o"
    line = _refused(_run("search", CNN, "-t", profile("p", BODY), "--trials", MAX_TRIALS + 1, "--eval", ev,
                         "--out", out))
    assert f"over the cap of {MAX_TRIALS:,} trials" in line and MAX_TRIALS == 10_000, line
    assert not out.exists()
    r = _run("search", "--help")
    assert r.exit_code == 0 and f"1 to {MAX_TRIALS:,}" in " ".join(r.stdout.split())


def test_ctrl_c_prints_our_line_only(tmp_path: Path, tiny_data):
    _, ev, _ = tiny_data
    prof = tmp_path / "p.toml"
    prof.write_text(BODY)
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "edgeopt", "search", str(CNN), "-t", str(prof), "--trials", "1",
                             "--eval", str(ev), "--out", str(out)], env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not any(s == "RUNNING" for _, s in (sqlite_states(out / "search.db") if (out / "search.db").is_file() else [])):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)
    time.sleep(1.0)  # inside the trial's build
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 130, text
    assert [ln for ln in text.splitlines() if ln.strip()] == ["interrupted; earlier outputs are untouched"], text


def test_a_study_writer_cannot_list_files_outside_the_trial(searched, copy: Path, evil: Path):
    """Someone who can write both the study and the trial folder still cannot name a file outside OUT/trials/NNNN."""
    import hashlib

    trial = copy / "trials" / "0000"
    manifest = json.loads((trial / "manifest.json").read_text())
    secret = evil / "secret.txt"
    manifest["artifacts"]["../../../elsewhere/secret.txt"] = {"sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}
    data = (json.dumps(manifest) + "\n").encode()
    (trial / "manifest.json").write_bytes(data)
    with sqlite3.connect(copy / "search.db") as con:
        n = con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE key = 'manifest_sha256'",
                        (json.dumps(hashlib.sha256(data).hexdigest()),)).rowcount
    assert n == 1
    before = _files(copy / "best")
    line = _refused(_resume(searched, copy))
    assert "trial 0000: its manifest names '../../../elsewhere/secret.txt', outside the trial folder" in line, line
    assert _files(copy / "best") == before and not list(copy.rglob("secret.txt"))
