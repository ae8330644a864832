"""The CLI's choices are the vocabulary's enums; command-line mistakes are one line, exit 2 (real CLI)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from enum import StrEnum
from pathlib import Path

import pytest

from edgeopt.profiles import load_profile
from edgeopt.vocabulary import ClusterInit, GraphOptimization, PruneAllocation, PruneCriterion

pytestmark = pytest.mark.tensorflow

ROOT = Path(__file__).resolve().parents[1]


def edgeopt(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed entry point's path: `python -m edgeopt` (edgeopt.cli.app.main)."""
    return subprocess.run([sys.executable, "-m", "edgeopt", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}, cwd=cwd, timeout=300)


def one_line_exit_2(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr
    return r.stderr


@pytest.mark.parametrize("command, option, enum", [
    (("prune",), "--criterion", PruneCriterion),
    (("prune",), "--allocation", PruneAllocation),
    (("cluster",), "--init", ClusterInit),
    (("bench",), "--graph-opt", GraphOptimization),
])
def test_help_lists_the_enum_values(cli, command: tuple[str, ...], option: str, enum: type[StrEnum]) -> None:
    r = cli(*command, "--help")
    assert r.exit_code == 0
    shown = re.search(re.escape(option) + r" <([^>]+)>", r.stdout)
    assert shown is not None, r.stdout
    assert shown.group(1).split("|") == [e.value for e in enum]


def test_help_metavars_read_as_words(cli) -> None:
    for command in (("prune",), ("cluster",), ("build",), ("export-c",), ("mcu", "check"), ("inspect",)):
        r = cli(*command, "--help")
        assert r.exit_code == 0 and "{MODEL}" in r.stdout and "{model}" not in r.stdout, r.stdout
        assert "<list[str]>" not in r.stdout and "<path>" not in r.stdout.split("Options:")[1], r.stdout
    assert "{REPORT}..." in cli("compare", "--help").stdout


def test_unknown_option_is_one_line(tmp_path: Path) -> None:
    err = one_line_exit_2(edgeopt("prune", "m.keras", "--rato", "0.3", cwd=tmp_path), "No such option: --rato", "--ratio",
                          "edgeopt prune --help")
    assert "Usage:" not in err
    one_line_exit_2(edgeopt("prune", cwd=tmp_path), "Missing argument 'MODEL'")
    one_line_exit_2(edgeopt("cluster", "m.keras", "--init", "random", "--out", "c.keras", cwd=tmp_path),
                    "'random' is not one of 'linear', 'kmeans++'")
    one_line_exit_2(edgeopt("bench", "m.onnx", "--graph-opt", "max", cwd=tmp_path), "--graph-opt", "'extended'")
    assert not list(tmp_path.iterdir())


def test_threads_rule_is_the_profiles(tmp_path: Path) -> None:
    """One rule, one message: the profile, `build --threads` and `bench --threads` refuse 100000 alike."""
    rule = "threads must be from 0 (all cores) to 256"
    one_line_exit_2(edgeopt("build", "m.keras", "-t", "mobile-cpu", "--threads", "100000", cwd=tmp_path),
                    f"{rule}, got 100000")
    one_line_exit_2(edgeopt("bench", "m.tflite", "--threads", "1,100000", cwd=tmp_path), f"{rule}, got 100000")
    one_line_exit_2(edgeopt("bench", "m.tflite", "--threads", "-1", cwd=tmp_path), f"{rule}, got -1")
    (tmp_path / "p.toml").write_text('extends = "mobile-cpu"\n[runtime]\nthreads = 100000\n')
    one_line_exit_2(edgeopt("targets", "show", tmp_path / "p.toml", cwd=tmp_path), f"runtime.threads: {rule} (got 100000)")
    (tmp_path / "p.toml").write_text('extends = "mobile-cpu"\n[runtime]\nthreads = 256\n')
    assert load_profile(str(tmp_path / "p.toml")).profile.runtime.threads == 256
    assert not (tmp_path / "out").exists()
