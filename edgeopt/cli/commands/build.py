"""`edgeopt build MODEL --target NAME --out DIR`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import (
    CalibOpt,
    EvalOpt,
    JsonOpt,
    KnownHostsOpt,
    OutDirOpt,
    RemoteOpt,
    RemotePythonOpt,
    RemoteTimeoutOpt,
    ShapeOpt,
    SshConfigOpt,
    SshOptionOpt,
    SshPortOpt,
    TargetOpt,
    ThreadsOpt,
    UnsafeLoadOpt,
    remote_spec,
)
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink
from edgeopt.report.table import printable
from edgeopt.vocabulary import AccuracyMetric


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build_cmd(
        model: Annotated[Path, typer.Argument(metavar="MODEL", help=".keras, .h5, SavedModel folder or .onnx")],
        target: TargetOpt,
        out: OutDirOpt = Path("out"),
        calib: CalibOpt = None,
        eval_data: EvalOpt = None,
        train: Annotated[Path | None, typer.Option("--train", metavar="FILE", help="Training data .npz (x, y) for fine-tuning after pruning/clustering.")] = None,
        no_finetune: Annotated[bool, typer.Option("--no-finetune", help="Allow pruning without fine-tuning data.")] = False,
        c_name: Annotated[str, typer.Option("--c-name", metavar="NAME", help="C array name for MCU targets.")] = "g_model",
        random_calibration: Annotated[bool, typer.Option("--random-calibration", help="Calibrate int8 on random data (accuracy unknown).")] = False,
        unsafe_load: UnsafeLoadOpt = False,
        threads: ThreadsOpt = None,
        no_bench: Annotated[bool, typer.Option("--no-bench", help="Skip the latency benchmark.")] = False,
        force: Annotated[bool, typer.Option("--force", help="Rebuild even if OUT/manifest.json shows the same inputs, profile and versions.")] = False,
        remote: RemoteOpt = None,
        remote_python: RemotePythonOpt = "python3",
        ssh_option: SshOptionOpt = None,
        ssh_config: SshConfigOpt = None,
        known_hosts: KnownHostsOpt = None,
        ssh_port: SshPortOpt = None,
        remote_timeout: RemoteTimeoutOpt = 900.0,
        firmware: Annotated[bool, typer.Option("--firmware", help="MCU profiles: also build the firmware image (TFLM + CMSIS-NN) and run it under QEMU (as `mcu run`); on when the profile's [firmware] run = true.")] = False,
        firmware_samples: Annotated[int, typer.Option("--firmware-samples", min=1, metavar="N", help="Eval (else calibration) samples fed to the firmware.")] = 8,
        tflm: Annotated[Path | None, typer.Option("--tflm", metavar="DIR", help="Folder with the TFLM tree/ and device/ for the firmware stage (default: $EDGEOPT_TFLM).")] = None,
        shape: ShapeOpt = None,
        metric: Annotated[list[str] | None, typer.Option("--metric", metavar="[OUTPUT=]METRIC", help=f"How outputs are scored: {', '.join(m.value for m in AccuracyMetric)}; one for every output, or OUTPUT=METRIC (repeatable); overrides the profile's [validate] metric.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Convert, quantize, validate and benchmark MODEL for a target profile; write OUT/report.json, report.md and report.html."""
        with handled(json_out):
            from edgeopt.errors import BudgetExceededError
            from edgeopt.pipeline.build import BuildRequest, build
            from edgeopt.report.render import to_console
            from edgeopt.runtime.shapes import parse_shape_specs

            sink = Sink(json_out)
            if threads is not None:
                from edgeopt.runtime.base import check_threads

                check_threads(threads)  # before TensorFlow loads; the profile and the benchmark apply the same rule
            spec = remote_spec(remote, remote_python, ssh_option, ssh_config, known_hosts, ssh_port, remote_timeout)
            req = BuildRequest(remote=spec, model=model, target=target, out=out, calib=calib, eval=eval_data, train=train,
                               random_calibration=random_calibration, allow_no_finetune=no_finetune,
                               unsafe_load=unsafe_load, threads=threads, c_name=c_name,
                               benchmark=not no_bench, command_line=tuple(sys.argv), force=force,
                               firmware=firmware, firmware_samples=firmware_samples, tflm=tflm,
                               shapes=tuple(parse_shape_specs(shape or ()).items()),
                               metric=tuple(metric or ()))
            with sink.steps() as step:
                result = build(req, progress=step)
            if result.skipped:
                sink.info(f"up to date: {result.out} already holds this build (same model, profile, data and tool "
                          "versions; artifacts match manifest.json); nothing rebuilt, --force rebuilds")
            done = "up to date" if result.skipped else "wrote"

            def human(c):  # type: ignore[no-untyped-def]
                to_console(result.report, c)
                c.print(printable(f"{done} {result.out}"))

            sink.result(result.report.model_dump(mode="json"), human)
            fw = result.report.stages.firmware
            if fw is not None and not fw.bit_exact:
                from edgeopt.errors import FirmwareMismatchError

                msg = (f"{fw.model} on {fw.core} ({fw.qemu_machine}): the firmware output {fw.vs_host_tflm.description} "
                       f"(report: {result.out / 'report.json'})")
                raise FirmwareMismatchError(msg)
            if result.violations:
                raise BudgetExceededError(result.violations, f"report: {result.out / 'report.json'}")
