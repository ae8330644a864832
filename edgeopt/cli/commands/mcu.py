"""`edgeopt mcu check MODEL.tflite`: verify a model for a microcontroller in the real TFLite Micro interpreter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt, TargetOpt, TfliteModelArg
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table
from edgeopt.report.table import printable


def _kb(b: int | None) -> str:
    return "-" if b is None else f"{b / 1024:,.1f} KB"


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="TFLite Micro: verify a model for a microcontroller.", no_args_is_help=True)

    @sub.command("check")
    def check_cmd(
        model: TfliteModelArg,
        target: TargetOpt = "embedded-mcu",
        data: Annotated[Path | None, typer.Option("--data", metavar="FILE", help="Samples .npz (x) or .npy to compare TFLM with LiteRT; default: random.")] = None,
        samples: Annotated[int | None, typer.Option("--samples", min=1, metavar="N", help="How many samples to compare (default 8; a stateful model: 20 consecutive frames, state carried).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Op support, int8-only, exact arena, TFLM vs LiteRT bit-exactness, flash/RAM budgets (exit 3 if broken).

        Integer I/O of another type than the profile's (uint8 where it says int8) is reported, not refused.
        """
        with handled(json_out):
            from edgeopt.mcu.check import check_model
            from edgeopt.profiles import load_profile

            sink = Sink(json_out)
            profile = load_profile(target).profile
            x, source = None, ""
            if data is not None:
                from edgeopt.data.datasets import load_samples

                x, source = load_samples(data), str(data)
            with sink.progress("measuring the arena and running TFLite Micro"):
                report = check_model(model, profile, samples=x, sample_source=source, sample_count=samples)

            def human(c):  # type: ignore[no-untyped-def]
                r = report
                c.print(printable(f"{r.model}  target={r.profile}  core={r.core or '-'}  ops={', '.join(r.ops)}"))
                exact = r.comparison_note()
                rows = [
                    ["model", f"{r.model_bytes:,} B", ""],
                    ["arena (measured, exact)", f"{r.arena_bytes:,} B", f"{r.arena_probes} TFLM probes; size - 1 fails"],
                    ["arena with margin", f"{r.arena_with_margin:,} B", "what the firmware reserves"],
                    ["input + output buffers", f"{r.io_bytes:,} B", ""],
                    ["flash (model + runtime)", _kb(r.flash_bytes), f"limit {_kb(r.flash_limit_bytes)}"],
                    ["RAM (arena + I/O)", _kb(r.ram_bytes), f"limit {_kb(r.ram_limit_bytes)}"],
                    ["MACs", f"{r.macs:,}", ""],
                    ["TFLM vs LiteRT", exact, f"{r.samples_compared} samples ({r.sample_source})"],
                    ["latency, host TFLM", f"{r.host_tflm_latency_ms:.3f} ms" if r.host_tflm_latency_ms is not None else "-", "this host's CPU, not the device"],
                    ["latency, device estimate", f"{r.estimated_device_latency_ms:.2f} ms" if r.estimated_device_latency_ms else "-", "MACs / mcu.sustained_macs_per_second"],
                    ["I/O types vs profile", "differ" if r.io_findings else "as profile",
                     f"in {', '.join(r.io_types[0])}; out {', '.join(r.io_types[1])}" + "".join(f"; {f}" for f in r.io_findings)],
                    *([["stateful model", f"{r.resource_variables} resource variable(s)",
                        f"{r.samples_compared} consecutive frames compared, state carried"]] if r.resource_variables else []),
                ]
                c.print(table("TFLite Micro check", ["", "value", "note"], rows))
                if r.energy is not None:
                    c.print(r.energy.describe())

            sink.result(report.to_dict(), human)
            if report.bit_exact is False:
                sink.warn(f"TFLM and LiteRT differ: {report.comparison_note()}")
            for finding in report.io_findings:
                sink.warn(f"{finding}; measured as it is: the firmware must use the model's I/O types")
            report.enforce_budgets()

    from edgeopt.cli.commands.mcu_run import register as register_run

    register_run(sub)
    app.add_typer(sub, name="mcu")
