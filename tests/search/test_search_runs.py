"""Real searches: every trial a real build (TensorFlow, LiteRT, TFLM), real Optuna on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from edgeopt.report.schema import Report
from edgeopt.search.front import dominates
from edgeopt.search.results import SearchResult

ROOT = Path(__file__).resolve().parents[2]
CNN = ROOT / "sample_models" / "digits_cnn.keras"
BENCH = "[benchmark]\nwarmup_runs = 1\nwarmup_seconds = 0.05\nruns = 10\nmin_seconds = 0.1\n"


def _check_front(res: SearchResult) -> None:
    """The front is non-dominated among the feasible complete trials, and covers every one of them."""
    objs = res.space.objectives
    feasible = [t for t in res.trials if t.state == "COMPLETE" and t.feasible]
    vec = {t.number: tuple(t.values[o] for o in objs) for t in feasible if t.values}
    front = [p.number for p in res.front]
    assert front and set(front) <= set(vec)
    for n in front:
        assert not any(dominates(v, vec[n]) for v in vec.values()), n
    for n, v in vec.items():
        assert n in front or any(dominates(vec[f], v) or vec[f] == v for f in front), n


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_mobile_search_two_workers(cli, tmp_path: Path, profile, tiny_data):
    _, ev, calib = tiny_data
    prof = profile("mob", 'extends = "mobile-cpu"\n' + BENCH + "[budgets]\nmax_accuracy_drop = 5.0\n"
                   "[partial]\naccuracy_control = false\n"
                   '[search]\nobjectives = ["accuracy_drop", "bytes", "p50_latency"]\n'
                   'schemes = ["int8", "float16", "dynamic"]\nclusters = [0, 8]\n')
    out = tmp_path / "o"
    r = cli("search", CNN, "-t", prof, "--trials", "4", "--workers", "2", "--eval", ev, "--calib", calib,
            "--out", out, "--seed", "3")
    assert r.exit_code == 0, r.stderr
    res = SearchResult.model_validate_json((out / "search.json").read_text())
    assert res.counts.complete == 4 and res.study.storage == f"sqlite:///{(out / 'search.db').resolve()}"
    done = [t for t in res.trials if t.state == "COMPLETE"]
    assert len({t.number for t in done}) == 4
    for t in done:  # each trial is a real build with its report
        rep = Report.model_validate_json((Path(t.folder) / "report.json").read_text())
        assert rep.optimized.artifact.bytes == t.bytes and rep.optimized.artifact.scheme == t.params["scheme"]
        assert rep.optimized.latency_ms is not None and rep.optimized.latency_ms.p50 == t.p50_ms
    _check_front(res)
    assert res.chosen is not None and res.ok
    best = Report.model_validate_json((out / "best" / "report.json").read_text())
    assert best.ok and all(b.ok is not False for b in best.budgets)
    assert (out / "best" / "manifest.json").is_file() and (out / "best" / "digits_cnn.tflite").is_file()
    feasible = [t for t in done if t.feasible]
    assert res.chosen.values["accuracy_drop"] == min(t.values["accuracy_drop"] for t in feasible if t.values)
    fr = res.latency.final_round
    assert fr is not None and fr.baseline_p50_ms > 0 and len(fr.artifacts) == len(res.front)
    assert all(p.p50_ms_final is not None and p.p50_ms_final > 0 for p in res.front)
    assert ".timing-lock" in res.latency.trials and "no two trials" in res.latency.trials
    assert sum("done:" in line for line in r.stderr.splitlines()) == 4  # one line per trial in a pipe
    assert "Pareto front" in r.stdout and f"chosen: trial {res.chosen.number}" in r.stdout
    html = (out / "search.html").read_text()
    assert "<svg" in html and "trials/" in html


def test_mcu_board_search(cli, tmp_path: Path, profile, tiny_data):
    train, ev, calib = tiny_data
    prof = profile("board", 'extends = "nrf52840"\n[budgets]\nmax_accuracy_drop = 10.0\n[prune]\nepochs = 1\n'
                   '[search]\nobjectives = ["accuracy_drop", "arena", "flash"]\n'
                   'macs_reduction = [0.0, 0.4]\nper_channel = [true, false]\n')
    out = tmp_path / "o"
    r = cli("search", CNN, "-t", prof, "--trials", "3", "--train", train, "--eval", ev, "--calib", calib,
            "--out", out, "--sampler", "grid", "--json")
    assert r.exit_code == 0, r.stderr
    res = SearchResult.model_validate(json.loads(r.stdout))
    assert res.device_class == "embedded-mcu" and res.counts.complete == 3
    assert res.latency.final_round is None and res.latency.lock is None  # no latency objective or budget
    params = [tuple(sorted(t.params.items())) for t in res.trials if t.state == "COMPLETE"]
    assert len(set(params)) == 3  # the grid never repeats a point
    _check_front(res)
    best = Report.model_validate_json((out / "best" / "report.json").read_text())
    assert best.stages.mcu is not None and best.ok
    assert res.chosen is not None and res.chosen.values["arena"] == best.stages.mcu.arena_bytes
    assert (out / "best" / "g_model.cc").is_file() and (out / "best" / "g_model.h").is_file()


def _sqlite_states(db: Path) -> list[tuple[int, str]]:
    try:
        with sqlite3.connect(db) as con:
            return list(con.execute("SELECT number, state FROM trials ORDER BY number"))
    except sqlite3.OperationalError:  # Optuna has not created its tables yet
        return []


def test_sigkill_then_resume(tmp_path: Path, profile, tiny_data):
    _, ev, calib = tiny_data
    prof = profile("k", 'extends = "mobile-cpu"\n[partial]\naccuracy_control = false\n[budgets]\nmax_accuracy_drop = 50.0\n'
                   '[search]\nobjectives = ["accuracy_drop", "bytes"]\nschemes = ["int8", "float16", "dynamic"]\n'
                   'per_channel = [true, false]\n')
    out = tmp_path / "o"
    args = [sys.executable, "-m", "edgeopt", "search", str(CNN), "-t", str(prof), "--trials", "3", "--eval", str(ev),
            "--calib", str(calib), "--out", str(out), "--sampler", "grid", "--seed", "0"]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = out / "search.db"
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:  # kill while the second trial runs
        states = _sqlite_states(db) if db.is_file() else []
        if any(s == "COMPLETE" for _, s in states) and any(s == "RUNNING" for _, s in states):
            break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _sqlite_states(db)
    assert "RUNNING" in [s for _, s in before]
    r = subprocess.run([*args, "--resume"], env=_env(), capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr
    after = _sqlite_states(db)
    assert [s for _, s in after].count("COMPLETE") == 3 and "RUNNING" not in [s for _, s in after]
    killed = [n for n, s in before if s == "RUNNING"]
    assert all(dict(after)[n] == "FAIL" for n in killed)  # the dead trial is failed, not counted
    res = SearchResult.model_validate_json((out / "search.json").read_text())
    done = [t for t in res.trials if t.state == "COMPLETE"]
    assert len(done) == 3 and len({tuple(sorted(t.params.items())) for t in done}) == 3  # none twice
    assert any("left running by a process that died were marked FAIL" in n for n in res.notes)
    first = [t for t in done if t.number < min(killed)]
    assert first and all((Path(t.folder) / "report.json").is_file() for t in done)  # the finished one was kept


def test_two_workers_share_a_postgresql_study(tmp_path: Path, profile, tiny_data, postgres: str):
    _, ev, calib = tiny_data
    prof = profile("pg", 'extends = "mobile-cpu"\n[partial]\naccuracy_control = false\n[budgets]\nmax_accuracy_drop = 50.0\n'
                   '[search]\nobjectives = ["accuracy_drop", "bytes"]\nschemes = ["int8", "float16", "dynamic"]\n'
                   'per_channel = [true, false]\n')
    common = ["-t", str(prof), "--trials", "3", "--eval", str(ev), "--calib", str(calib), "--storage", postgres,
              "--study", "shared", "--json"]
    procs = [subprocess.Popen([sys.executable, "-m", "edgeopt", "search", str(CNN), *common, "--out",
                               str(tmp_path / f"w{i}"), "--seed", str(i)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=1800) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    results = [SearchResult.model_validate_json(o) for o, _ in outs]
    assert all("s3cret-pw" not in o and r.study.storage.endswith("/postgres") for (o, _), r in zip(outs, results, strict=True))
    import optuna

    study = optuna.load_study(study_name="shared", storage=postgres.replace("postgresql://", "postgresql+psycopg2://"))
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == 3 and len({t.number for t in complete}) == 3
    built = [d for i in range(2) for d in (tmp_path / f"w{i}" / "trials").glob("*") if (d / "report.json").is_file()]
    assert len(built) == 3  # each finished trial built once, by one of the two workers
    assert {t.user_attrs["folder"] for t in complete} == {str(d.resolve()) for d in built}
    assert all(r.counts.complete == 3 for r in results)
