"""PyTorch in (issue #22 item 5): edgeopt.from_torch and `edgeopt build model.pt2`, with real torch (CPU) and
a CNN trained here on scikit-learn's digits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.pytorch.torch_models import digits_torch_cnn, trained_digits_cnn

pytestmark = pytest.mark.torch

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, float, Path]:
    return digits_torch_cnn(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def pt2(tmp_path_factory) -> Path:
    """The trained CNN as a torch.export program saved with torch.export.save (dynamic batch)."""
    model, x_test, _, _ = trained_digits_cnn()
    program = torch.export.export(model, (torch.from_numpy(x_test[:2]),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path_factory.mktemp("pt2") / "digits_cnn.pt2"
    torch.export.save(program, str(path))
    return path


def edgeopt(*args: object, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env_extra or {}).get("PYTHONPATH", "").split(os.pathsep) + [str(ROOT)] if p)
    env.pop("EDGEOPT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgeopt", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=env)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and lines[-1] == errors[0], (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and all(ln.endswith("...") for ln in lines[:-1]), r.stderr
    return errors[0]


def test_from_torch_onnx_matches_torch(exported, capfd):
    import onnx
    import onnxruntime as ort

    onnx_path, top1, eval_npz = exported
    model, x_test, y_test, _ = trained_digits_cnn()
    assert top1 >= 93.0  # the CNN learned digits: a real model, not noise
    proto = onnx.load(str(onnx_path))
    assert [i.name for i in proto.graph.input] == ["image"] and [o.name for o in proto.graph.output] == ["logits"]
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value")  # dynamic batch
    assert {n.op_type for n in proto.graph.node} >= {"Conv", "Add"}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x_test})[0]  # the whole held-out half in one batch (exported with 2)
    with torch.no_grad():
        want = model(torch.from_numpy(x_test)).numpy()
    assert got.shape == want.shape == (len(x_test), 10)
    assert float(np.max(np.abs(got - want))) < 1e-4
    assert float(100.0 * np.mean(got.argmax(1) == y_test)) == pytest.approx(top1)
    with np.load(eval_npz) as data:
        assert data["x"].shape == (len(x_test), 1, 8, 8) and np.array_equal(data["y"], y_test)
    assert "[torch.onnx]" not in capfd.readouterr().out  # the exporter's progress lines never reach stdout


def test_from_torch_refusals(tmp_path):
    import edgeopt
    from edgeopt.errors import InputError

    model = trained_digits_cnn()[0]
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(InputError, match=r"name it \*\.onnx, not m\.pt"):
        edgeopt.from_torch(model, (x,), tmp_path / "m.pt")
    with pytest.raises(InputError, match="takes a torch.nn.Module, not ndarray"):
        edgeopt.from_torch(np.zeros(3), (x,), tmp_path / "m.onnx")
    with pytest.raises(InputError, match=r"^Net: torch [\d.]+'s ONNX exporter failed: .*RuntimeError.*Expected 3D .* got input of size: \[1, 3\]$"):
        edgeopt.from_torch(model, (torch.zeros(1, 3),), tmp_path / "m.onnx")  # wrong input rank
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_build_pt2_for_edge_server(pt2, exported, tmp_path):
    _, torch_top1, eval_npz = exported
    out = tmp_path / "out"
    r = edgeopt("build", pt2, "--target", "edge-server", "--eval", eval_npz, "--calib", eval_npz, "--unsafe-load",
                "--no-bench", "--out", out)
    assert r.returncode == 0, r.stderr
    assert all(ln.endswith("...") for ln in r.stderr.strip().splitlines()), r.stderr  # torch's chatter kept quiet
    data = json.loads((out / "report.json").read_text())
    assert data["input"]["format"] == "pt2"
    version = torch.__version__.split("+")[0]
    assert any(f"torch {version}'s ONNX exporter" in n for n in data["notes"]), data["notes"]
    base, opt = data["baseline"]["accuracy"], data["optimized"]["accuracy"]
    assert base["metric"] == opt["metric"] == "top1"
    assert abs(base["value"] - torch_top1) < 0.2  # the ONNX float model scores as torch does
    assert abs(opt["value"] - torch_top1) <= 1.0  # the int8 artifact within 1 point of the torch float model
    versions = json.loads((out / "manifest.json").read_text())["inputs"]["versions"]
    assert versions["torch"] == torch.__version__  # a new torch rebuilds: its exporter made the ONNX
    assert sorted(p.name for p in out.iterdir()) == ["digits_cnn.float.onnx", "digits_cnn.onnx", "manifest.json",
                                                     "report.html", "report.json", "report.md"]


def test_pt2_needs_unsafe_load(pt2, tmp_path):
    r = edgeopt("build", pt2, "--target", "edge-server", "--random-calibration", "--no-bench", "--out", tmp_path / "o")
    line = one_error_line(r)
    assert "unpickles" in line and "--unsafe-load" in line
    assert not (tmp_path / "o").exists()


def test_pt2_without_torch_names_the_pip_line(pt2, tmp_path):
    shim = tmp_path / "shim" / "torch"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named \'torch\'")\n')
    r = edgeopt("build", pt2, "--target", "edge-server", "--random-calibration", "--no-bench", "--unsafe-load",
                "--out", tmp_path / "o", env_extra={"PYTHONPATH": str(shim.parent)})
    line = one_error_line(r)
    assert "needs PyTorch, which is not installed" in line
    assert "pip install 'edgeopt[torch]'" in line and "--index-url https://download.pytorch.org/whl/cpu" in line


def test_pt2_elsewhere_is_one_clear_line(pt2, tmp_path):
    r = edgeopt("inspect", pt2)
    assert "export the module to ONNX with edgeopt.from_torch" in one_error_line(r)
    fake = tmp_path / "m.pt2"
    fake.write_text("not a zip")
    r = edgeopt("build", fake, "--target", "edge-server", "--random-calibration", "--unsafe-load", "--out", tmp_path / "o")
    assert "is not a torch.export archive (not a zip file)" in one_error_line(r)
