"""Two workers share one study on a real PostgreSQL server started on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.pipeline.search.results import SearchResult
from tests.search.searching import CNN, env

pytestmark = pytest.mark.tensorflow


def test_two_workers_share_a_postgresql_study(tmp_path: Path, profile, tiny_data, postgres: str):
    _, ev, calib = tiny_data
    prof = profile("pg", 'extends = "mobile-cpu"\n[partial]\naccuracy_control = false\n[budgets]\nmax_accuracy_drop = 50.0\n'
                   '[search]\nobjectives = ["accuracy_drop", "bytes"]\nschemes = ["int8", "float16", "dynamic"]\n'
                   'per_channel = [true, false]\n')
    common = ["-t", str(prof), "--trials", "3", "--eval", str(ev), "--calib", str(calib), "--storage", postgres,
              "--study", "shared", "--json"]
    procs = [subprocess.Popen([sys.executable, "-m", "edgeopt", "search", str(CNN), *common, "--out",
                               str(tmp_path / f"w{i}"), "--seed", str(i)], env=env(), stdout=subprocess.PIPE,
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
