"""`edgeopt bench MODEL...`: latency on the real runtime. Never imports TensorFlow.

Only typer/rich at import time (so `edgeopt --help` stays fast); numpy and the
runtimes load inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeopt.cli.commands.options import (
    JsonOpt,
    KnownHostsOpt,
    RemoteOpt,
    RemotePythonOpt,
    RemoteTimeoutOpt,
    ShapeOpt,
    SshConfigOpt,
    SshOptionOpt,
    SshPortOpt,
    remote_spec,
)
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table
from edgeopt.vocabulary import GraphOptimization

# Header names of edgeopt.benchmark.render.HEADERS (literal so --help imports nothing heavy).
LATENCY_COLUMNS = ("model", "runtime", "threads", "p50", "p90", "p99", "mean", "std", "CPU ms", "inf/s",
                   "p50 ratio (this/first)")
STARTUP_COLUMNS = ("model", "threads", "init ms", "probe ms", "first ms", "IQR", "runs", "peak RSS MB", "ΔRSS MB")


def _threads(text: str) -> list[int]:
    from edgeopt.errors import InputError

    try:
        counts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        msg = f"--threads {text!r}: give a number or a list like 1,2,4 (0 = all cores)"
        raise InputError(msg) from None
    if not counts:
        msg = "--threads needs at least one number"
        raise InputError(msg)
    from edgeopt.runtime.base import check_threads

    return list(dict.fromkeys(check_threads(t) for t in counts))


def _write(path: Path, text: str) -> None:
    from edgeopt.atomic import write_text_atomic
    from edgeopt.errors import OutputError

    if str(path) == "-":
        typer.echo(text, nl=False)
        return
    try:
        write_text_atomic(path, text)
    except OSError as exc:
        msg = f"cannot write {path}: {exc.strerror or exc}"
        raise OutputError(msg) from None


def _to_stdout(json_out: bool, paths: list[Path | None]) -> bool:
    """True when a machine-readable output goes to stdout (then the human tables go to stderr)."""
    from edgeopt.errors import InputError

    named = [p for p in paths if p is not None and str(p) == "-"]
    if len(named) + json_out > 1:
        msg = (
            "only one of --json, --save -, --csv - and --markdown - can write to stdout; "
            "give the others a file name"
        )
        raise InputError(msg)
    return bool(named) or json_out


def _check_outputs(paths: list[Path | None], plot: Path | None) -> None:
    """Fail before measuring if an output cannot be written or matplotlib is missing."""
    import importlib.util

    from edgeopt.errors import InputError, OutputError, RuntimeUnavailableError

    if plot is not None and str(plot) == "-":
        msg = "--plot needs a file name (.png, .svg or .pdf), not '-'"
        raise InputError(msg)
    for p in [*paths, plot]:
        if p is not None and str(p) != "-" and not Path(p).resolve().parent.is_dir():
            msg = f"cannot write {p}: folder {Path(p).resolve().parent} does not exist"
            raise OutputError(msg)
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        msg = "--plot needs matplotlib; install it with: pip install 'edgeopt[plot]'"
        raise RuntimeUnavailableError(msg)


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        models: Annotated[list[Path] | None, typer.Argument(metavar="MODEL", help=".tflite or .onnx files; several run interleaved, ratios vs the first.", show_default=False)] = None,
        threads: Annotated[str, typer.Option("--threads", metavar="N[,N...]", help="Threads, or a sweep like 1,2,4 (0 = all cores).")] = "1",
        runs: Annotated[int, typer.Option("--runs", metavar="N", help="Minimum measured runs.")] = 50,
        min_seconds: Annotated[float, typer.Option("--min-seconds", metavar="S", help="Minimum measuring time per model (s).")] = 1.0,
        max_seconds: Annotated[float, typer.Option("--max-seconds", metavar="S", help="Stop measuring a model after this (s).")] = 60.0,
        warmup_runs: Annotated[int, typer.Option("--warmup-runs", metavar="N", help="Minimum warmup runs.")] = 1,
        warmup_seconds: Annotated[float, typer.Option("--warmup-seconds", metavar="S", help="Minimum warmup time (s).")] = 0.5,
        xnnpack: Annotated[bool, typer.Option("--xnnpack/--no-xnnpack", help="LiteRT XNNPACK delegate.")] = True,
        graph_opt: Annotated[GraphOptimization, typer.Option("--graph-opt", help="onnxruntime graph optimization level.")] = GraphOptimization.ALL,
        seed: Annotated[int, typer.Option("--seed", metavar="N", min=0, max=2**32 - 1, help="Seed of the random inputs.")] = 0,
        input_file: Annotated[Path | None, typer.Option("--input", metavar="FILE", help=".npz (one array per input, by name or in order) or .npy; one batch is fed: the first row (the first N rows for a fixed first dimension N).")] = None,
        int_range: Annotated[str | None, typer.Option("--int-range", metavar="LO:HI", help="Values of random integer inputs that are not quantized: LO:HI, inclusive (default 0:3).")] = None,
        shape: ShapeOpt = None,
        compare: Annotated[tuple[Path, Path] | None, typer.Option("--compare", metavar="OLD.json NEW.json", help="Compare two saved results: OLD.json NEW.json (ratios new/old).", show_default=False)] = None,
        save: Annotated[Path | None, typer.Option("--save", metavar="FILE", help="Write the JSON result to this file (for --compare later).")] = None,
        csv_out: Annotated[Path | None, typer.Option("--csv", metavar="FILE", help="Write a CSV table to this file ('-' = stdout).")] = None,
        md_out: Annotated[Path | None, typer.Option("--markdown", metavar="FILE", help="Write a Markdown table to this file ('-' = stdout).")] = None,
        plot: Annotated[Path | None, typer.Option("--plot", metavar="FILE", help="Draw the latency distribution (.png/.svg/.pdf; needs edgeopt[plot]).")] = None,
        remote: RemoteOpt = None,
        remote_python: RemotePythonOpt = "python3",
        ssh_option: SshOptionOpt = None,
        ssh_config: SshConfigOpt = None,
        known_hosts: KnownHostsOpt = None,
        ssh_port: SshPortOpt = None,
        remote_timeout: RemoteTimeoutOpt = 900.0,
        json_out: JsonOpt = False,
    ) -> None:
        """Benchmark models on their runtime (LiteRT for .tflite, onnxruntime for .onnx), locally or on a device."""
        with handled(json_out):
            from edgeopt.errors import InputError

            sink = Sink(json_out)
            _check_outputs([save, csv_out, md_out], plot)
            stdout_taken = _to_stdout(json_out, [save, csv_out, md_out])
            if compare is not None:
                if models:
                    msg = "give either MODEL files or --compare OLD.json NEW.json, not both"
                    raise InputError(msg)
                _compare(sink, compare, csv_out, md_out, stdout_taken)
                return
            if not models:
                msg = "give one or more .tflite / .onnx files (or --compare OLD.json NEW.json)"
                raise InputError(msg)
            counts = _threads(threads)

            from edgeopt.benchmark.protocol import BenchSettings, run_interleaved
            from edgeopt.benchmark.results import report_of
            from edgeopt.runtime.shapes import parse_shape_specs

            if shape and input_file is not None:
                msg_0 = "--shape sizes random inputs; with --input the data's shapes are used: give one"
                raise InputError(msg_0)
            settings = BenchSettings(threads=counts[0], xnnpack=xnnpack, warmup_runs=warmup_runs,
                                     warmup_seconds=warmup_seconds, runs=runs, min_seconds=min_seconds,
                                     max_seconds=max_seconds, seed=seed, graph_optimization=graph_opt,
                                     shapes=tuple(parse_shape_specs(shape or ()).items()), int_range=_int_range(int_range))
            spec = remote_spec(remote, remote_python, ssh_option, ssh_config, known_hosts, ssh_port, remote_timeout)
            if spec is not None:
                from edgeopt.benchmark.remote import run_remote

                with sink.progress(f"benchmarking on {remote}"):
                    results = run_remote(models, settings, spec, threads=counts, input_file=input_file)
            else:
                from edgeopt.load.formats import detect_format

                for m in models:
                    detect_format(m)
                data = None
                if input_file is not None:
                    from edgeopt.benchmark.inputs import load_input_file

                    data = load_input_file(input_file)
                with sink.progress("benchmarking"):
                    results = run_interleaved(models, settings, threads=counts, data=data,
                                              data_source=str(input_file) if input_file else None)
            report = report_of(results)
            _emit(sink, report, save, csv_out, md_out, plot, stdout_taken)


def _int_range(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    from edgeopt.errors import InputError

    try:
        lo, hi = (int(v) for v in text.replace(",", ":").split(":"))
    except ValueError:
        msg = f"--int-range {text!r}: write LO:HI, e.g. 0:15"
        raise InputError(msg) from None
    if lo > hi:
        msg = f"--int-range {text!r}: LO is above HI"
        raise InputError(msg)
    return lo, hi


def _emit(sink: Sink, report: Any, save: Path | None, csv_out: Path | None, md_out: Path | None, plot: Path | None,
          stdout_taken: bool) -> None:
    from edgeopt.benchmark import render

    header, body = render.HEADERS, render.rows(report)
    if save is not None:
        _write(save, report.to_json())
    if csv_out is not None:
        _write(csv_out, render.to_csv(header, body))
    if md_out is not None:
        _write(md_out, render.to_markdown(header, body, render.fingerprints(report), render.warnings(report)))
    if plot is not None:
        from edgeopt.benchmark.plot import plot_latency

        plot_latency(report, plot)

    for line in render.warnings(report):  # on stderr, with JSON or tables on stdout too
        sink.warn(line)

    def human(c: Any) -> None:
        remote = sorted({r.device for r in report.results if r.device != "local"})
        emulated = " - EMULATED CPU, not a real device's speed" if any(r.emulated for r in report.results) else ""
        for title, cols in ((f"latency (ms){' on ' + ', '.join(remote) if remote else ''}{emulated}", LATENCY_COLUMNS),
                            ("startup (ms) and memory", STARTUP_COLUMNS)):
            idx = [header.index(h) for h in cols]
            c.print(table(title, cols, [[row[i] for i in idx] for row in body]))
        if any(r.interleaved for r in report.results):
            c.print("measured interleaved in rounds; ratio = p50 / p50 of the first model at the same thread count "
                    "(< 1 is faster)")
        c.print("init = the runtime opening the model in this process; probe = file checks and the crash-isolating "
                "load in a child process before it; CPU ms = process CPU time per invoke (all threads)")
        for line in render.fingerprints(report):
            c.print(f"device {line}")
        for name, shapes in dict.fromkeys((r.name, r.input_shapes) for r in report.results if r.input_shapes):
            c.print(f"inputs of {name}: {shapes}")

    _result(sink, report.to_dict(), human, stdout_taken)


def _compare(sink: Sink, files: tuple[Path, Path], csv_out: Path | None, md_out: Path | None,
             stdout_taken: bool) -> None:
    from edgeopt.benchmark import render
    from edgeopt.benchmark.compare import compare_reports
    from edgeopt.benchmark.results import load_report

    comparisons = compare_reports(load_report(files[0]), load_report(files[1]))
    body = render.compare_rows(comparisons)
    if csv_out is not None:
        _write(csv_out, render.to_csv(render.COMPARE_HEADERS, body))
    if md_out is not None:
        _write(md_out, render.to_markdown(render.COMPARE_HEADERS, body))
    data = {"schema": "edgeopt.bench-compare/1", "old": str(files[0]), "new": str(files[1]),
            "comparisons": [c.to_dict() for c in comparisons]}
    _result(sink, data, lambda c: c.print(table(f"{files[1]} vs {files[0]} (ratio = new / old; < 1 is faster)",
                                                render.COMPARE_HEADERS, body)), stdout_taken)


def _result(sink: Sink, data: Any, human: Any, stdout_taken: bool) -> None:
    """--json prints `data`; when --csv/--markdown/--save write to stdout, the human tables go to stderr."""
    if stdout_taken and not sink.as_json:
        human(sink.err)
    else:
        sink.result(data, human)
