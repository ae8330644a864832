"""A real grid search for an MCU board: arena and flash objectives, the C files in best/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeopt.pipeline.search.results import SearchResult
from edgeopt.report.schema import Report
from tests.search.searching import CNN, check_front

pytestmark = pytest.mark.tensorflow


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
    check_front(res)
    best = Report.model_validate_json((out / "best" / "report.json").read_text())
    assert best.stages.mcu is not None and best.ok
    assert res.chosen is not None and res.chosen.values["arena"] == best.stages.mcu.arena_bytes
    assert (out / "best" / "g_model.cc").is_file() and (out / "best" / "g_model.h").is_file()
