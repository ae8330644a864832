"""A TFLM kernel that refuses the model in Prepare is named with its message, without an arena search."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.errors import KernelPrepareError
from edgeopt.mcu.arena import measure_arena
from edgeopt.mcu.tflm import ProbeSession, prepare_failure

pytestmark = pytest.mark.tensorflow


def test_prepare_refusal_is_typed_not_an_arena_shortage(mcu_models):
    with pytest.raises(KernelPrepareError) as info:
        measure_arena(mcu_models["bad_scales"])
    err = info.value
    assert err.exit_code == 2 and err.op == "CONV_2D" and err.node == 0 and err.ops == ("CONV_2D",)
    assert "affine_quantization->scale->size == 1" in err.detail and "conv_common.cc" in err.detail
    text = str(err)
    assert "TFLite Micro's CONV_2D kernel refused the model in Prepare (operator 0)" in text
    assert "not an arena shortage" in text and "even with" not in text and "\n" not in text


def test_allocator_shortage_is_not_taken_for_a_kernel_refusal(mcu_models):
    """Too small an arena can also end in "failed to prepare" (a temp buffer); the allocator line decides."""
    with ProbeSession(mcu_models["bare_conv"]) as s:
        reasons = [s.probe(n).reason for n in (600, 1000, 1500)]
        refused = s.probe(1 << 20)
    assert all(reasons) and refused.ok
    assert any("failed to prepare" in r for r in reasons)  # the case that must not stop the search
    assert [prepare_failure(r) for r in reasons] == [None, None, None]
    assert measure_arena(mcu_models["bare_conv"]).arena_bytes > 1500


def test_refusal_on_the_same_model_at_any_size(mcu_models):
    with ProbeSession(mcu_models["bad_scales"]) as s:
        found = [prepare_failure(s.probe(n).reason) for n in (16 * 1024, 64 * 1024 * 1024)]
    assert all(f is not None and (f.op, f.node) == ("CONV_2D", 0) for f in found)


def test_cli_exit_2_names_kernel(cli, mcu_models, tmp_path: Path):
    for args in (("mcu", "check", mcu_models["bad_scales"]), ("export-c", mcu_models["bad_scales"], "--out", tmp_path / "g")):
        r = cli(*args)
        assert r.exit_code == 2, r.output
        line = " ".join(r.output.split())
        assert "CONV_2D kernel refused the model in Prepare" in line and "scale->size" in line
        assert "Traceback" not in r.output and "even with a" not in line
    assert not (tmp_path / "g").exists()
