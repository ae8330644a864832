"""MCU checks in the real TFLM and LiteRT: arena exactness, bit-exactness, op and dtype reporting, budgets."""

from __future__ import annotations

import numpy as np
import pytest

from edgeopt.errors import BudgetExceededError, UnsupportedOpError
from edgeopt.mcu.arena import measure_arena, with_margin
from edgeopt.mcu.check import check_model, verify_static
from edgeopt.mcu.ops import check_ops, hint_for
from edgeopt.mcu.tflm import ProbeSession
from edgeopt.profiles import load_profile

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def mcu_profile():
    return load_profile("nrf52840").profile


def test_arena_is_exact(mcu_models):
    m = measure_arena(mcu_models["int8"])
    with ProbeSession(mcu_models["int8"]) as s:
        assert s.probe(m.arena_bytes).ok
        below = s.probe(m.arena_bytes - 1)
        assert not below.ok
    assert m.arena_bytes > 1024 and m.failure_below
    assert with_margin(m.arena_bytes, 10, 1024) % 16 == 0


def test_too_small_arena_crash_is_contained(mcu_models):
    # tflite-micro segfaults on some tiny arenas; the worker dies, the parent reports a failed probe.
    with ProbeSession(mcu_models["int8"]) as s:
        results = [s.probe(n) for n in (0, 64, 300)]
        assert not any(r.ok for r in results)
        assert s.probe(1 << 20).ok  # a fresh worker after any crash


def test_tflm_bit_exact_with_litert(mcu_models, mcu_profile):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 16, 16, 3)).astype(np.float32)
    r = check_model(mcu_models["int8"], mcu_profile, samples=x)
    assert r.samples_compared == 5
    assert r.bit_exact is True and r.max_abs_diff == 0.0 and r.diff_at is None
    assert r.reference_kernels_bit_exact is None and r.comparison_note() == "bit-exact"
    assert r.ram_bytes == r.arena_with_margin + r.io_bytes
    assert r.flash_bytes == r.model_bytes + 64 * 1024
    assert r.io_bytes == 16 * 16 * 3 + 4
    assert r.host_tflm_latency_ms is not None and r.host_tflm_latency_ms > 0
    assert r.estimated_device_latency_ms == pytest.approx(r.macs / 32e6 * 1000)
    assert not r.violations


def test_a_difference_is_traced_to_litert_optimized_kernels(mcu_models, mcu_profile):
    """TFLM's int8 CONV_2D is a port of LiteRT's reference kernel; LiteRT's optimized one rounds some values the
    other way. The report gives the difference and says whose rounding it is."""
    x = np.random.default_rng(0).standard_normal((8, 8, 8, 3)).astype(np.float32)
    r = check_model(mcu_models["bare_conv"], mcu_profile, samples=x)
    assert r.bit_exact is False and r.max_abs_diff == 1.0 and r.mismatched_elements > 0 and r.diff_at is not None
    assert r.reference_kernels_bit_exact is True
    note = r.to_dict()["comparison_note"]
    assert note.startswith("max |diff| 1 at sample ") and "LiteRT's optimized-kernel rounding" in note
    assert not r.violations  # a rounding difference is reported, not a failed budget


def test_float_model_names_float_ops(mcu_models, mcu_profile):
    with pytest.raises(UnsupportedOpError) as info:
        verify_static(mcu_models["float"], mcu_profile)
    msg = str(info.value)
    assert "float ops left in the graph" in msg and "CONV_2D#0" in msg and "is float32" in msg
    assert info.value.exit_code == 2


def test_float_io_names_quantize_ops(mcu_models, mcu_profile):
    with pytest.raises(UnsupportedOpError) as info:
        verify_static(mcu_models["float_io"], mcu_profile)
    msg = str(info.value)
    assert "QUANTIZE#0" in msg and "DEQUANTIZE#" in msg and "CONV_2D" not in msg
    assert set(info.value.ops) == {"QUANTIZE", "DEQUANTIZE"}


def test_unsupported_op_named_with_hint(mcu_models, mcu_profile):
    from edgeopt.analysis.tflite_graph import read_tflite

    support = check_ops(read_tflite(mcu_models["topk"]))
    assert support.unsupported == ("TOPK_V2",)
    assert "outside the model" in support.hints[0]
    with pytest.raises(UnsupportedOpError) as info:
        verify_static(mcu_models["topk"], mcu_profile)
    assert "TOPK_V2" in info.value.ops and "TFLite Micro lacks TOPK_V2" in str(info.value)
    assert "Flex" in hint_for("FlexErf", custom=True)


def test_budget_violation_exit_3(mcu_models, tiny_board):
    profile = load_profile(str(tiny_board)).profile
    r = check_model(mcu_models["int8"], profile, compare=False)
    names = {v.name for v in r.violations}
    assert names == {"flash (board [mcu] flash_kb)", "RAM (board [mcu] ram_kb)"}
    ram = next(v for v in r.violations if v.name.startswith("RAM"))
    assert ram.limit == 4 and ram.unit == "KB" and ram.actual == pytest.approx(r.ram_bytes / 1024, abs=0.01)
    with pytest.raises(BudgetExceededError) as info:
        r.enforce_budgets()
    assert info.value.exit_code == 3 and "> limit 4 KB" in str(info.value)


def test_int16x8_needs_the_profile_to_allow_it(mcu_models, mcu_profile, tmp_path):
    from tests.mcu.conftest import write_profile

    with pytest.raises(UnsupportedOpError, match="int16 activations"):
        verify_static(mcu_models["int16x8"], mcu_profile)
    allowed = write_profile(tmp_path, "board16", "allow_int16x8 = true\nram_kb = 256\nflash_kb = 1024\n\n"
                            '[quantize]\nscheme = "int16x8"\ninput_type = "int16"\noutput_type = "int16"')
    r = check_model(mcu_models["int16x8"], load_profile(str(allowed)).profile, sample_count=3)
    assert r.arena_bytes > 0 and r.samples_compared == 3 and r.bit_exact is not None
    assert r.io_bytes == 2 * (16 * 16 * 3 + 4)


def test_uint8_output_is_measured_and_reported_not_refused(mcu_models, mcu_profile, tmp_path):
    """A deployed full-int8 model with uint8 output (int8 profile): checked as it is; build stays strict."""
    from edgeopt.mcu.deliver import deliver

    x = np.random.default_rng(1).standard_normal((4, 16, 16, 3)).astype(np.float32)
    r = check_model(mcu_models["uint8_out"], mcu_profile, samples=x)
    assert r.arena_bytes > 1024 and r.arena_with_margin > r.arena_bytes and r.samples_compared == 4
    assert r.bit_exact is True and not r.violations
    assert len(r.io_findings) == 1
    finding = r.io_findings[0]
    assert finding.startswith("output 0 ") and "is uint8, the profile wants int8" in finding
    assert list(r.to_dict()["io_findings"]) == [finding]
    assert r.io_bytes == 16 * 16 * 3 + 4  # uint8 output: 1 byte per element, as int8
    # the same model in a build for the profile is refused: `edgeopt build` makes the profile's int8 I/O
    with pytest.raises(UnsupportedOpError, match="is uint8, the profile wants int8"):
        deliver(mcu_models["uint8_out"], mcu_profile, x, tmp_path)
    assert not list(tmp_path.iterdir())


def test_float_io_is_measured_as_it_is_outside_build(mcu_models, mcu_profile):
    """One I/O rule for `mcu check` and `mcu run`: float32 I/O converted by the first QUANTIZE and the last DEQUANTIZE
    is reported (the firmware feeds and reads float32), not a float op; `build`'s strict check still refuses it."""
    r = check_model(mcu_models["float_io"], mcu_profile, sample_count=4)
    assert r.io_types == (("float32",), ("float32",)) and r.bit_exact is True and r.samples_compared == 4
    assert len(r.io_findings) == 2 and all("is float32" in f for f in r.io_findings)
    with pytest.raises(UnsupportedOpError):
        verify_static(mcu_models["float_io"], mcu_profile, strict_io=True)
