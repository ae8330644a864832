"""`edgeopt npu compile MODEL.tflite --target alif-e3 --out DIR`: Vela compiles an int8 model for the profile's
Ethos-U NPU and estimates what runs where, its memory and cycles."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt, OutDirOpt, TfliteModelArg
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink
from edgeopt.report.table import printable


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Arm Ethos-U NPUs: compile with Vela (pip install 'edgeopt[ethos-u]').",
                      no_args_is_help=True)

    @sub.command("compile")
    def compile_cmd(
        model: TfliteModelArg,
        out: OutDirOpt,
        target: Annotated[str, typer.Option("--target", "-t", metavar="PROFILE",
                                            help="A profile with [npu] (alif-e3, ethos-u55) or a .toml path.")] = "ethos-u55",
        json_out: JsonOpt = False,
    ) -> None:
        """Compile MODEL for the profile's NPU into DIR/NAME_vela.tflite; NPU vs CPU operators, SRAM, flash and
        Vela's cycle estimate per layer and in total (an estimate, the NPU part only)."""
        with handled(json_out):
            from edgeopt.atomic import refuse_overwriting
            from edgeopt.load.formats import check_model_path
            from edgeopt.npu.vela import compile_for_npu, compiled_name, npu_of
            from edgeopt.profiles import load_profile
            from edgeopt.report.render import NPU_LAYER_COLUMNS, npu_layer_rows, npu_rows

            sink = Sink(json_out)
            profile = load_profile(target).profile
            npu = npu_of(profile)
            check_model_path(model)
            dest = out / compiled_name(model.name)  # its folder is made once Vela has succeeded
            refuse_overwriting(dest, {"model": model})
            with sink.progress(f"compiling for {npu.accelerator} with Vela"):
                stage = compile_for_npu(model, npu, dest, profile.name)

            def human(c):  # type: ignore[no-untyped-def]
                from edgeopt.cli.output import table

                c.print(printable(f"{model} -> {dest}  ({stage.label})"), markup=False)
                c.print(table(stage.label, ["", "value"], npu_rows(stage)))
                if rows := npu_layer_rows(stage):
                    c.print(table(f"most expensive layers ({len(rows)} of {len(stage.layers)}; all with --json)",
                                  NPU_LAYER_COLUMNS, rows))

            sink.result(stage.model_dump(mode="json"), human)

    app.add_typer(sub, name="npu")
