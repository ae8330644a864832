"""`edgeopt bench` through the real Typer app: outputs, comparisons and one-line errors (exit 2)."""

from __future__ import annotations

import csv
import importlib.util
import io
import json

import numpy as np
import pytest


def one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert "Traceback" not in result.output and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_json_csv_markdown_and_compare(cli, models, fast, tmp_path) -> None:
    res = cli("bench", models.tflite, models.onnx, *fast, "--json", "--save", tmp_path / "old.json", "--csv", tmp_path / "t.csv",
              "--markdown", tmp_path / "t.md")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["schema"] == "edgeopt.bench/1.2" and len(data["results"]) == 2
    r0, r1 = data["results"]
    assert r0["ratio"] is None and r1["ratio"]["p50"] > 0 and r1["interleaved"]
    for key in ("p50", "p90", "p95", "p99", "mean", "std", "min", "max", "iqr", "throughput"):
        assert r0["latency"][key] > 0
    assert {"cpu", "cores", "arch", "os", "python", "runtime", "runtime_version", "threads", "delegate"} <= set(r0["fingerprint"])
    assert json.loads((tmp_path / "old.json").read_text())["results"][0]["latency"] == r0["latency"]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert [r["model"] for r in rows] == ["mlp_float.tflite", "mlp.onnx"] and float(rows[1]["p50 ratio (this/first)"]) > 0
    md = (tmp_path / "t.md").read_text()
    assert md.startswith("| model |") and "mlp.onnx" in md and "cores" in md
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind

    res = cli("bench", models.tflite, models.onnx, *fast, "--save", tmp_path / "new.json")
    assert res.exit_code == 0 and "latency (ms)" in res.stdout and "interleaved" in res.stdout
    res = cli("bench", "--compare", tmp_path / "old.json", tmp_path / "new.json", "--json")
    assert res.exit_code == 0, res.output
    cmp = json.loads(res.stdout)["comparisons"]
    assert [c["new"] for c in cmp] == ["mlp_float.tflite [1t]", "mlp.onnx [1t]"]
    assert all(0.2 < c["ratio"]["p50"] < 5 for c in cmp)
    human = cli("bench", "--compare", tmp_path / "old.json", tmp_path / "new.json")
    assert human.exit_code == 0 and "new / old" in human.stdout


def test_thread_sweep_and_input_file(cli, models, fast, tmp_path) -> None:
    np.savez(tmp_path / "x.npz", input=np.zeros((2, 64), np.int8))
    res = cli("bench", models.tflite_int8, "--threads", "1,2", "--input", tmp_path / "x.npz", *fast, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["results"]
    assert [r["threads"] for r in out] == [1, 2] and out[0]["inputs"].endswith("x.npz")


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib (edgeopt[plot]) not installed")
def test_plot(cli, models, fast, tmp_path) -> None:
    res = cli("bench", models.tflite, models.onnx, *fast, "--plot", tmp_path / "lat.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "lat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_what_to_install(cli, models, fast, tmp_path, monkeypatch) -> None:
    """matplotlib made unimportable here (None in sys.modules: find_spec answers None, import raises), so this runs
    where matplotlib is installed too (it was skipped on every CI run); nothing is measured or written."""
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert importlib.util.find_spec("matplotlib") is None
    err = one_line_error(cli("bench", models.tflite, *fast, "--plot", tmp_path / "lat.png"), "pip install 'edgeopt[plot]'")
    assert err == "error: --plot needs matplotlib; install it with: pip install 'edgeopt[plot]'"
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_one_line_exit_2(cli, models, fast, tmp_path) -> None:
    one_line_error(cli("bench", models.tflite_corrupt, *fast), "corrupt.tflite")
    one_line_error(cli("bench", models.onnx_corrupt, *fast), "corrupt.onnx")
    one_line_error(cli("bench", models.tflite_custom, *fast), "LiteRT lacks op", "EdgeoptNoSuchOp")
    one_line_error(cli("bench", models.onnx_custom, *fast), "onnxruntime lacks op", "EdgeoptNoSuchOp")
    one_line_error(cli("bench", models.tflite, "--threads", "-1"), "threads must be from 0 (all cores) to 256, got -1")
    one_line_error(cli("bench", models.tflite, "--threads", "1,x"), "--threads")
    one_line_error(cli("bench", models.tflite, "--runs", "0"), "runs must be >= 1")
    # --graph-opt max: a usage error, one line from the entry point (tests/test_cli_vocabulary.py)
    np.savez(tmp_path / "shape.npz", input=np.zeros((1, 63), np.float32))
    one_line_error(cli("bench", models.tflite, "--input", tmp_path / "shape.npz", *fast), "expects shape [1, 64]")
    np.savez(tmp_path / "dtype.npz", input=np.zeros((1, 64), np.float32))
    one_line_error(cli("bench", models.tflite_int8, "--input", tmp_path / "dtype.npz", *fast), "is int8", "float32")
    (tmp_path / "pickle.npy").write_bytes(b"not numpy")
    one_line_error(cli("bench", models.tflite, "--input", tmp_path / "pickle.npy", *fast), "pickle.npy")
    one_line_error(cli("bench", models.dir / "missing.tflite"), "not found")
    one_line_error(cli("bench"), "give one or more")
    one_line_error(cli("bench", models.tflite, "--save", tmp_path / "no" / "such" / "dir.json"), "does not exist")
    (tmp_path / "bad.json").write_text("{}")
    one_line_error(cli("bench", "--compare", tmp_path / "bad.json", tmp_path / "bad.json"), "not an edgeopt bench result")


@pytest.mark.parametrize("host", ["pi;rm -rf /", "-oProxyCommand=evil", "user@host$(id)", "a b", "host|cat", "`id`", ""])
def test_remote_host_with_shell_characters_refused(cli, models, host) -> None:
    one_line_error(cli("bench", models.tflite, "--remote", host), "not a valid [user@]host")
