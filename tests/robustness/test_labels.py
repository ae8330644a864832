"""Item 8 of issue 12: eval labels are class indices for the model's outputs, or the build refuses them."""

from __future__ import annotations

import numpy as np
import pytest

from tests.robustness.conftest import ROOT, edgeopt, error_line

pytestmark = pytest.mark.tensorflow

MODEL = ROOT / "sample_models" / "digits_dscnn.keras"  # 10 classes
CALIB = ROOT / "sample_models" / "digits_dscnn.calib.npz"
EVAL = ROOT / "sample_models" / "digits_dscnn.eval.npz"

CASES = {
    "float": (lambda y: y.astype(np.float32), "are float32, not integers"),
    "negative": (lambda y: np.where(np.arange(y.size) == 3, -1, y), "label -1 is negative"),
    "out_of_range": (lambda y: np.where(np.arange(y.size) == 5, 10, y), "label 10 is out of range for the model's 10 outputs"),
    "one_hot": (lambda y: np.eye(10, dtype=np.int64)[y], "have shape (64, 10); give one class index per sample"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_eval_labels_are_refused(tmp_path, case):
    change, message = CASES[case]
    with np.load(EVAL) as z:
        x, y = z["x"][:64], z["y"][:64]
    np.savez(tmp_path / "ev.npz", x=x, y=change(y))
    r = edgeopt("build", MODEL, "--target", "mobile-cpu", "--out", tmp_path / "out", "--calib", CALIB,
                "--eval", tmp_path / "ev.npz", "--no-bench")
    line = error_line(r)
    assert message in line, line
    assert not (tmp_path / "out").exists()


def test_labels_of_a_binary_single_output_may_be_0_or_1(tmp_path):
    from edgeopt.data.datasets import Dataset, check_labels
    from edgeopt.errors import DataError

    ds = Dataset(tmp_path / "e.npz", np.zeros((4, 2), np.float32), np.array([0, 1, 1, 0]))
    assert check_labels(ds, 1, "eval") is ds
    with pytest.raises(DataError, match=r"label 2 is out of range for the model's 2 outputs"):
        check_labels(Dataset(ds.path, ds.x, np.array([0, 2, 1, 0])), 1, "eval")
    assert check_labels(Dataset(ds.path, ds.x, np.array([0, 7])), None, "eval").y is not None  # dynamic width


def test_calibration_data_finite_in_float64_but_not_in_float32_is_refused(tmp_path):
    """Item 4 of issue 12 (data part): finiteness is checked after the cast to the model's dtype (1e300 passed
    the float64 check and crashed the calibrator)."""
    from edgeopt.data.datasets import check_against_input, load_dataset
    from edgeopt.errors import DataError

    x = np.full((4, 16, 16, 1), 0.5)
    x[1, 2, 3, 0] = 1e300
    np.savez(tmp_path / "c.npz", x=x)
    with pytest.raises(DataError, match=r"1 value\(s\) of x overflow float32"):
        check_against_input(load_dataset(tmp_path / "c.npz", "calibration"), (None, 16, 16, 1), "calibration")


@pytest.mark.parametrize("command", [("prune", "--ratio", "0.25", "--no-finetune"), ("cluster",)])
def test_prune_and_cluster_check_eval_labels_too(tmp_path, command):
    with np.load(EVAL) as z:
        x, y = z["x"][:32], z["y"][:32].copy()
    y[0] = 12  # the model has 10 outputs
    np.savez(tmp_path / "ev.npz", x=x, y=y)
    r = edgeopt(command[0], MODEL, "--out", tmp_path / "o.keras", "--eval", tmp_path / "ev.npz", *command[1:])
    assert "label 12 is out of range for the model's 10 outputs" in error_line(r)
    assert not (tmp_path / "o.keras").exists()
