"""`edgeopt bench MODEL...`: latency on the real runtime. Never imports TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        models: Annotated[list[Path], typer.Argument(help=".tflite or .onnx files")],
        threads: Annotated[int, typer.Option("--threads", help="Threads (0 = all cores).")] = 1,
        runs: Annotated[int, typer.Option("--runs", help="Minimum measured runs.")] = 50,
        min_seconds: Annotated[float, typer.Option("--min-seconds", help="Minimum measuring time.")] = 1.0,
        warmup_runs: Annotated[int, typer.Option("--warmup-runs")] = 1,
        warmup_seconds: Annotated[float, typer.Option("--warmup-seconds")] = 0.5,
        xnnpack: Annotated[bool, typer.Option("--xnnpack/--no-xnnpack", help="LiteRT XNNPACK delegate.")] = True,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        json_out: JsonOpt = False,
    ) -> None:
        """Benchmark models on their runtime (LiteRT for .tflite, onnxruntime for .onnx)."""
        with handled():
            from dataclasses import asdict

            from edgeopt.benchmark.protocol import BenchSettings, run_benchmark

            settings = BenchSettings(threads=threads, xnnpack=xnnpack, warmup_runs=warmup_runs,
                                     warmup_seconds=warmup_seconds, runs=runs, min_seconds=min_seconds, seed=seed)
            results = [run_benchmark(m, settings) for m in models]
            rows = [[Path(r.model).name, r.runtime, r.threads, r.init_ms, r.latency.p50, r.latency.p90,
                     r.latency.p99, r.latency.mean, r.latency.std, r.latency.runs] for r in results]
            Sink(json_out).result([asdict(r) for r in results], lambda c: c.print(table(
                "latency (ms)", ["model", "runtime", "threads", "init", "p50", "p90", "p99", "mean", "std", "runs"], rows)))
