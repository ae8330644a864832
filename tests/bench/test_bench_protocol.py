"""The measurement protocol on real runtimes: statistics, fingerprint, memory, inputs, interleaving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeopt.benchmark.compare import compare_reports
from edgeopt.benchmark.inputs import make_feeds
from edgeopt.benchmark.protocol import BenchResult, BenchSettings, run_benchmark, run_interleaved
from edgeopt.benchmark.results import parse_report, report_of
from edgeopt.benchmark.stats import summarize
from edgeopt.errors import DataError, InputError, ModelFileError, UnsupportedOpError
from edgeopt.runtime import open_runner

FAST = BenchSettings(runs=5, min_seconds=0.05, warmup_seconds=0.01)


def test_summarize_matches_numpy() -> None:
    x = np.arange(1, 101, dtype=float)
    s = summarize(x)
    assert (s.p50, s.p90, s.p99) == pytest.approx((50.5, 90.1, 99.01))
    assert s.iqr == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25))
    assert s.std == pytest.approx(x.std(ddof=1)) and (s.min, s.max, s.runs) == (1, 100, 100)
    assert s.throughput == pytest.approx(1000 / 50.5)


@pytest.mark.parametrize("name", ["tflite", "tflite_int8", "onnx"])
def test_run_benchmark_each_runtime(models, name) -> None:
    r = run_benchmark(getattr(models, name), FAST)
    s = r.latency
    assert s.runs >= 5 and 0 < s.min <= s.p50 <= s.p90 <= s.p95 <= s.p99 <= s.max
    assert r.init_ms > 0 and r.first_ms > 0 and r.warmup >= 1
    assert r.peak_rss_mb and r.peak_rss_mb > 10 and r.rss_delta_mb is not None
    fp = r.fingerprint
    assert fp is not None and fp.cores >= 1 and fp.arch and fp.cpu and fp.python and fp.os
    assert (fp.runtime, fp.runtime_version, fp.threads, fp.delegate) == (r.runtime, r.runtime_version, 1, r.delegate)
    assert len(r.samples_ms) == min(s.runs, 10_000)  # kept samples are capped; statistics use all runs
    # JSON round trip keeps every number
    back = BenchResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.latency == s and back.fingerprint == fp


def test_measuring_meets_both_count_and_time(models) -> None:
    r = run_benchmark(models.tflite, BenchSettings(runs=3, min_seconds=0.2, warmup_seconds=0.0, warmup_runs=2))
    assert r.warmup >= 2
    assert sum(r.samples_ms) > 0 and r.latency.runs > 3  # a tiny model needs many runs to fill 0.2 s
    r = run_benchmark(models.tflite, BenchSettings(runs=200, min_seconds=0.0, warmup_seconds=0.0))
    assert r.latency.runs == 200


def test_xnnpack_off_and_onnx_options(models) -> None:
    r = run_benchmark(models.tflite, BenchSettings(runs=5, min_seconds=0.0, warmup_seconds=0.0, xnnpack=False))
    assert r.delegate == "none"
    r = run_benchmark(models.onnx, BenchSettings(runs=5, min_seconds=0.0, warmup_seconds=0.0, threads=2,
                                                 graph_optimization="basic"))  # type: ignore[arg-type]
    assert r.threads == 2 and r.fingerprint and r.fingerprint.graph_optimization == "basic"


def test_random_inputs_have_model_dtype(models) -> None:
    runner = open_runner(models.tflite_int8)
    (x,) = make_feeds(runner.inputs, seed=3)
    assert x.dtype == np.int8 and x.shape == (1, 64)
    assert np.array_equal(x, make_feeds(runner.inputs, seed=3)[0])  # seeded
    assert x.min() < -50 and x.max() > 50  # spans the int8 range


def test_input_data_checked(models) -> None:
    runner = open_runner(models.tflite_int8)
    ok = make_feeds(runner.inputs, 0, {"input": np.ones((4, 64), np.int8)})
    assert ok[0].shape == (1, 64)
    with pytest.raises(DataError, match=r"expects shape \[1, 64\]"):
        make_feeds(runner.inputs, 0, {"input": np.ones((4, 32), np.int8)})
    with pytest.raises(DataError, match="int8 .quantized. but the data is float32"):
        make_feeds(runner.inputs, 0, [np.ones((1, 64), np.float32)])
    with pytest.raises(DataError, match="1 input"):
        make_feeds(runner.inputs, 0, [np.ones((1, 64), np.int8)] * 2)
    onnx = open_runner(models.onnx)
    (x,) = make_feeds(onnx.inputs, 0, {"x": np.ones((3, 64), np.float64)})  # dynamic batch, cast to float32
    assert x.dtype == np.float32 and x.shape == (1, 64)


def test_interleaved_ratios_and_thread_sweep(models) -> None:
    res = run_interleaved([models.tflite, models.tflite_int8, models.onnx], FAST)
    assert [r.name for r in res] == ["mlp_float.tflite", "mlp_int8.tflite", "mlp.onnx"]
    assert all(r.interleaved and r.latency.runs >= 5 for r in res)
    d = report_of(res).to_dict()
    assert d["results"][0]["ratio"] is None
    assert d["results"][2]["ratio"]["p50"] == pytest.approx(res[2].latency.p50 / res[0].latency.p50)
    sweep = run_interleaved([models.onnx], FAST, threads=[1, 2])
    assert [r.threads for r in sweep] == [1, 2]
    assert report_of(sweep).to_dict()["results"][1]["ratio"]["p50"] == pytest.approx(sweep[1].latency.p50 / sweep[0].latency.p50)


def test_compare_reports_pairs_by_name(models) -> None:
    old = report_of(run_interleaved([models.tflite, models.onnx], FAST))
    new = parse_report(json.loads(json.dumps(old.to_dict())), "new")
    cmp = compare_reports(old, new)
    assert len(cmp) == 2 and all(c.ratios["p50"] == pytest.approx(1.0) and not c.notes for c in cmp)


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(InputError, match="threads"):
        BenchSettings(threads=-1)
    with pytest.raises(InputError, match="runs"):
        BenchSettings(runs=0)


def test_runtime_errors_are_one_line(models) -> None:
    with pytest.raises(UnsupportedOpError, match="EdgeoptNoSuchOp") as e:
        run_benchmark(models.tflite_custom, FAST)
    assert e.value.ops == ("EdgeoptNoSuchOp",)
    with pytest.raises(UnsupportedOpError, match="EdgeoptNoSuchOp"):
        run_benchmark(models.onnx_custom, FAST)
    with pytest.raises(ModelFileError):
        run_benchmark(models.tflite_corrupt, FAST)
    with pytest.raises(ModelFileError):
        run_benchmark(models.onnx_corrupt, FAST)
