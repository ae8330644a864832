"""`--json` failures: the one line stays on stderr, and stdout gets {"error": ..., "exit": N} (it was empty, so a
script reading stdout learnt nothing). One formatter for every command (edgeopt/cli/errors.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _json_error(res) -> dict:  # type: ignore[no-untyped-def]
    assert res.stdout.count("\n") == 1, res.stdout  # one document, one line
    return json.loads(res.stdout)


def test_inspect_missing_file(cli, tmp_path: Path) -> None:
    res = cli("inspect", tmp_path / "nope.onnx", "--json")
    line = f"model not found: {tmp_path / 'nope.onnx'} (check the path)"
    assert res.exit_code == 2 and res.stderr == f"error: {line}\n"
    assert _json_error(res) == {"error": line, "exit": 2}


def test_targets_show_unknown_profile(cli) -> None:
    res = cli("targets", "show", "no-such-board", "--json")
    assert res.exit_code == 2 and res.stderr.startswith("error: unknown target 'no-such-board'; available: ")
    assert _json_error(res) == {"error": res.stderr.strip().removeprefix("error: "), "exit": 2}


def test_compare_of_a_folder_without_report(cli, tmp_path: Path) -> None:
    res = cli("compare", tmp_path, "--json")
    out = _json_error(res)
    assert res.exit_code == out["exit"] == 2 and out["error"] and res.stderr == f"error: {out['error']}\n"


def test_without_json_stdout_stays_empty(cli, tmp_path: Path) -> None:
    res = cli("inspect", tmp_path / "nope.onnx")
    assert res.exit_code == 2 and res.stdout == "" and res.stderr.startswith("error: model not found")


def test_a_command_line_mistake_under_json(tmp_path: Path) -> None:
    """Typer's own errors (unknown option) go through the same formatter in `python -m edgeopt`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "edgeopt", "inspect", str(tmp_path / "m.onnx"), "--json", "--bogus"],
                       capture_output=True, text=True, env=env, timeout=60, check=False)
    line = "No such option: --bogus (see edgeopt inspect --help)"
    assert r.returncode == 2 and r.stderr == f"error: {line}\n"
    assert json.loads(r.stdout) == {"error": line, "exit": 2}
