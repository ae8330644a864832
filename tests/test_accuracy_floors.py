"""Accuracy floors on every output (edgeopt.validate.metrics): min_snr_db and min_cosine whatever the output's
metric, a collapsed (constant) output that always fails, a warning for an output far below float, no cosine for
outputs of one value, and the profile keys (defaults in the built-in profiles, `false` turns one off). No TF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.data.tensors import IOSpec
from edgeopt.errors import BudgetViolation, ProfileError
from edgeopt.profiles import load_profile
from edgeopt.validate.accuracy import compare
from edgeopt.validate.metrics import COLLAPSED, all_checks, far_below, met, target_for
from edgeopt.vocabulary import AccuracyMetric as M

PROBS = IOSpec("probs", (None, 4))


def _near_uniform(n: int = 200) -> np.ndarray:
    """A float softmax whose top-1 is always class 0, by a small margin: agreement is easy to reach."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 0.1, (n, 4)) + np.array([0.6, 0, 0, 0])
    e = np.exp(logits)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def test_a_collapsed_output_fails_although_agreement_is_100_percent() -> None:
    ref = _near_uniform()
    flat = np.full_like(ref, 0.25)  # int8 collapsed to one value: argmax 0 everywhere, as the float model's
    target = target_for([PROBS], [M.AGREEMENT], load_profile("edge-server").profile.budgets)
    res = compare(flat, ref, None, "float", target=target)
    (s,) = res.outputs
    assert s.agreement == 100.0 and s.drop == 0.0 and s.collapsed and s.std == 0.0 and s.reference_std > 0.01
    assert res.met is False
    failed = [c for c in all_checks(res.outputs, target) if not c.ok]
    assert [(c.output, c.budget) for c in failed] == [("probs", COLLAPSED)]
    assert failed[0].limit == pytest.approx(s.reference_std, abs=1e-6)
    warning = far_below(s)
    assert warning is not None and "output 'probs' is far below the float model" in warning
    assert "all one value" in warning


def test_the_floors_check_every_output_whatever_its_metric() -> None:
    ref = _near_uniform()
    noisy = ref + np.random.default_rng(1).normal(0, 0.2, ref.shape).astype(np.float32)  # far off, same top-1
    noisy[:, 0] = ref[:, 0] + 1.0  # keeps argmax 0
    budgets = load_profile("mobile-cpu").profile.budgets
    assert (budgets.min_snr_db, budgets.min_cosine) == (6.0, 0.9)
    target = target_for([PROBS], [M.AGREEMENT], budgets)
    res = compare(noisy, ref, None, "float", target=target)
    (s,) = res.outputs
    assert s.drop == 0.0 and s.snr_db < 6 and not s.collapsed
    checks = {c.budget: c for c in all_checks(res.outputs, target)}
    assert checks["max_accuracy_drop"].ok is True and checks["min_snr_db"].ok is False
    assert checks["min_snr_db"].actual == pytest.approx(s.snr_db) and checks["min_snr_db"].limit == 6.0
    assert res.met is False  # agreement alone does not decide
    # the same output close to float passes every check
    close = compare(ref + 1e-3, ref, None, "float", target=target)
    assert close.met is True and far_below(close.outputs[0]) is None


def test_no_cosine_for_outputs_of_one_value_and_no_floor_on_it() -> None:
    ref = np.random.default_rng(2).random((50, 1)).astype(np.float32)
    out = ref + 0.01
    spec = IOSpec("score", (None, 1))
    target = target_for([spec], [M.SNR], load_profile("edge-server").profile.budgets)
    res = compare(out, ref, None, "float", target=target)
    assert res.outputs[0].cosine is None
    assert [c.budget for c in all_checks(res.outputs, target)] == ["min_snr_db"]
    # asked for by name, cosine is still computed
    assert compare(out, ref, None, "float", metrics=[M.COSINE]).outputs[0].cosine is not None


def test_a_float_output_that_is_constant_is_no_collapse() -> None:
    ref = np.full((20, 3), 0.5, np.float32)
    res = compare(ref.copy(), ref, None, "float", metrics=[M.SNR])
    assert not res.outputs[0].collapsed


def test_floors_are_profile_keys_and_false_turns_them_off(tmp_path: Path) -> None:
    for name in ("edge-server", "mobile-cpu", "embedded-mcu", "raspberry-pi-4", "nrf52840"):
        b = load_profile(name).profile.budgets
        assert (b.min_snr_db, b.min_cosine) == (6.0, 0.9), name
    p = tmp_path / "off.toml"
    p.write_text('extends = "edge-server"\nname = "off"\n[budgets]\nmin_snr_db = false\nmin_cosine = 0.5\n')
    b = load_profile(str(p)).profile.budgets
    assert (b.min_snr_db, b.min_cosine) == (None, 0.5)
    target = target_for([PROBS], [M.AGREEMENT], b)
    flat = compare(np.full((200, 4), 0.25, np.float32), _near_uniform(), None, "float", target=target)
    assert met(flat.outputs, target) is False  # a collapse fails with the floors off, too
    p.write_text('extends = "edge-server"\nname = "off"\n[budgets]\nmin_cosine = false\n')
    assert load_profile(str(p)).profile.budgets.min_cosine is None
    p.write_text('extends = "edge-server"\nname = "off"\n[budgets]\nmin_cosine = 1.5\n')
    with pytest.raises(ProfileError, match="min_cosine"):
        load_profile(str(p))
    p.write_text('extends = "edge-server"\nname = "off"\n[budgets]\nmin_snr_db = true\n')
    with pytest.raises(ProfileError, match="give a number, or false to turn the check off"):
        load_profile(str(p))


def test_a_violation_of_a_floor_reads_as_under_its_limit() -> None:
    assert BudgetViolation("min_snr_db", 10.0, 3.5, "dB").describe() == "min_snr_db: 3.5 dB < limit 10 dB"
    assert BudgetViolation("max_model_kb", 10.0, 12.0, "KiB").describe() == "max_model_kb: 12 KiB > limit 10 KiB"
