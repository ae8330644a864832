"""Shared by the search run tests (one file per search, so xdist spreads them over its two workers)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from edgeopt.pipeline.search.front import dominates
from edgeopt.pipeline.search.results import SearchResult

ROOT = Path(__file__).resolve().parents[2]
CNN = ROOT / "sample_models" / "digits_cnn.keras"
BENCH = "[benchmark]\nwarmup_runs = 1\nwarmup_seconds = 0.05\nruns = 10\nmin_seconds = 0.1\n"


def check_front(res: SearchResult) -> None:
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


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def sqlite_states(db: Path) -> list[tuple[int, str]]:
    try:
        with sqlite3.connect(db) as con:
            return list(con.execute("SELECT number, state FROM trials ORDER BY number"))
    except sqlite3.OperationalError:  # Optuna has not created its tables yet
        return []
