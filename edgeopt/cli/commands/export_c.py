"""`edgeopt export-c MODEL.tflite --out DIR`: C/C++ sources for TFLite Micro. Never imports TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt, TargetOpt, TfliteModelArg
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink


def register(app: typer.Typer) -> None:
    @app.command("export-c")
    def export_c_cmd(
        model: TfliteModelArg,
        out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for NAME.h and NAME.cc (written atomically).")],
        name: Annotated[str, typer.Option("--name", metavar="NAME", help="C identifier of the model array.")] = "g_model",
        target: TargetOpt = "embedded-mcu",
        json_out: JsonOpt = False,
    ) -> None:
        """Write the model as an aligned C array with arena size, I/O constants and an op resolver."""
        with handled(json_out):
            from edgeopt.mcu.c_export import check_c_name, export_c
            from edgeopt.mcu.check import measure
            from edgeopt.mcu.io_layout import io_layout
            from edgeopt.profiles import load_profile

            check_c_name(name)
            profile = load_profile(target).profile
            v = measure(model, profile, strict_io=False)  # an existing model: other integer I/O types are a note
            io = io_layout(model, v.graph)  # the build report beside it (NHWC vs the ONNX NCHW), else its own
            files = export_c(model, v.graph, out, name, arena_bytes=v.arena_with_margin,
                             arena_measured=v.arena.arena_bytes, margin_note=v.margin_note,
                             layouts=io.c_layouts(), notes=io.c_notes())
            sink = Sink(json_out)
            for finding in v.io_findings:
                sink.warn(f"{finding}; exported as it is: the header gives the model's I/O types")
            data = {"io_findings": list(v.io_findings), "header": str(files.header), "source": str(files.source), "name": name,
                    "arena_bytes": v.arena.arena_bytes, "arena_with_margin": v.arena_with_margin,
                    "model_bytes": v.graph.size_bytes, "ops": list(v.graph.op_names), "resolver": list(files.resolver_ops),
                    "io": io.to_dict()}

            def human(c):  # type: ignore[no-untyped-def]
                c.print(f"wrote {files.header} and {files.source}  (arena {v.arena.arena_bytes:,} B measured, "
                        f"{v.arena_with_margin:,} B with margin; {len(files.resolver_ops)} ops)")
                c.print(f"I/O layout {io.origin}:")
                for t in io.tensors:
                    c.print(f"  {t.describe()}")

            sink.result(data, human)
