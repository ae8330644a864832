"""The typed space from [search], a trial's choices applied to the profile, and the Pareto front (no TensorFlow)."""

from __future__ import annotations

import pytest

from edgeopt.errors import ProfileError
from edgeopt.pipeline.search.front import Point, choose, dominates, pareto_front
from edgeopt.pipeline.search.space import apply, space_of
from edgeopt.profiles import load_profile
from edgeopt.profiles.schema import FloatRange, Scheme


def test_builtin_spaces_and_their_hash():
    mob = space_of(load_profile("mobile-cpu").profile)
    assert [d.name for d in mob.dimensions] == ["macs_reduction", "clusters", "scheme", "keep_float_top"]
    assert mob.size == 5 * 2 * 3 * 2 and str(mob.objectives[0]) == "accuracy_drop"
    assert mob.sha256() == space_of(load_profile("mobile-cpu").profile).sha256()
    assert mob.sha256() != space_of(load_profile("edge-server").profile).sha256()
    mcu = space_of(load_profile("nrf52840").profile)
    assert [str(o) for o in mcu.objectives] == ["accuracy_drop", "arena", "flash", "device_latency"]
    assert FloatRange(low=0.0, high=0.5, step=0.25).values() == (0.0, 0.25, 0.5)
    with pytest.raises(ProfileError, match="has no \\[search\\] section"):
        space_of(load_profile("embedded-mcu").profile)


def test_apply_makes_a_valid_trial_profile():
    base = load_profile("mobile-cpu").profile
    assert base.partial is not None and base.search is not None
    f16 = apply(base, {"scheme": "float16", "macs_reduction": 0.25, "clusters": 16})
    assert f16.quantize.scheme is Scheme.FLOAT16 and f16.partial is None and f16.search is None
    assert f16.prune.macs_reduction == 0.25 and f16.cluster is not None and f16.cluster.clusters == 16
    kept = apply(base, {"scheme": "int8", "keep_float_top": 2, "clusters": 0}, ranking=("a/b:0", "c", "d"))
    assert kept.cluster is None and kept.partial is not None and not kept.partial.accuracy_control
    assert kept.partial.keep_float == ("^a/b:0$", "^c$")
    mcu = apply(load_profile("nrf52840").profile, {"per_channel": False, "macs_reduction": 0.5})
    assert mcu.quantize.input_type.value == "int8" and mcu.quantize.per_channel is False
    assert mcu.prune.macs_reduction == 0.5


def test_front_and_choice():
    pts = [Point(0, (1.0, 10.0), True), Point(1, (2.0, 5.0), True), Point(2, (2.0, 6.0), True),
           Point(3, (0.5, 20.0), False), Point(4, (1.0, 10.0), True), Point(5, (3.0, 1.0), True)]
    front = pareto_front(pts)
    assert [p.number for p in front] == [0, 1, 5]  # 2 dominated by 1, 4 equals 0, 3 over budget
    assert dominates((2.0, 5.0), (2.0, 6.0)) and not dominates((1.0, 10.0), (1.0, 10.0))
    best = choose(pts)
    assert best is not None and best.number == 0  # best first objective within budget; the earlier of a tie
    assert choose([Point(0, (1.0,), False)]) is None
    assert [p.number for p in pareto_front([Point(0, (1.0, 2.0), False), Point(1, (2.0, 1.0), False)])] == [0, 1]
