"""Accuracy control when no step meets the budget: of the steps tied with the most accurate within one eval sample,
the fastest is kept (edgeopt.quantize.partial._best). No runtime: the steps are the loop's measured values."""

from __future__ import annotations

from edgeopt.quantize.partial import PartialStep, _best


def _step(i: int, drop: float, p50: float | None, metric: str = "agreement") -> PartialStep:
    return PartialStep(i, "int8" if i == 0 else "int8+float", (), (), 1000, None, drop, p50, False, metric, drop)


def test_the_fastest_of_the_steps_tied_within_one_sample() -> None:
    steps = [_step(0, 3.0, 1.0), _step(1, 2.5, 4.0), _step(2, 2.0, 6.0)]
    assert _best(steps, 100) == 0  # 1 point a sample: 3.0 ties with 2.0, and step 0 is the fastest
    assert _best(steps, 1000) == 2  # 0.1 point a sample: no tie, the most accurate
    assert _best([_step(0, 3.0, None), _step(1, 2.5, None)], 100) == 0  # untimed: the earliest (most int8)


def test_snr_steps_tie_within_one_samples_share_of_the_noise() -> None:
    """SNR figures are negated by badness; 10*log10(1 + 1/n) dB is one sample's share: 0.043 dB at n = 100."""
    steps = [_step(0, 30.00, 5.0, "snr"), _step(1, 30.03, 2.0, "snr"), _step(2, 30.5, 9.0, "snr")]
    assert _best(steps, 100) == 2
    steps = [_step(0, 30.00, 5.0, "snr"), _step(1, 30.03, 2.0, "snr")]
    assert _best(steps, 100) == 1  # 0.03 dB apart: tied, the faster
