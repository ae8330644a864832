"""`edgeopt inspect MODEL`: what is inside a model (ops, tensors, params, MACs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt, ShapeOpt, UnsafeLoadOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table
from edgeopt.report.table import printable


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        model: Annotated[Path, typer.Argument(metavar="MODEL", help=".tflite, .onnx, .keras, .h5 or SavedModel folder")],
        sensitivity: Annotated[bool, typer.Option("--sensitivity", help="Per-layer int8 error (RMSE, SNR) of a float model.")] = False,
        calib: Annotated[Path | None, typer.Option("--calib", metavar="FILE", help="Calibration data .npz for --sensitivity.")] = None,
        unsafe_load: UnsafeLoadOpt = False,
        shape: ShapeOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Show inputs, outputs, ops, params and MACs of a model (--sensitivity: per-layer int8 error)."""
        with handled(json_out):
            if sensitivity:
                _sensitivity(model, calib, unsafe_load, json_out)
                return
            from edgeopt.analysis.inspect import inspect_model
            from edgeopt.runtime.shapes import parse_shape_specs

            info = inspect_model(model, parse_shape_specs(shape or ()), unsafe=unsafe_load)

            def human(c):  # type: ignore[no-untyped-def]
                c.print(printable(f"{info.path}  format={info.format}  bytes={info.bytes:,}  params={info.params:,}  "
                                  f"MACs={info.macs:,}"))
                if info.quantized is not None:
                    c.print(printable(f"already quantized: {info.quantized.describe()}; `edgeopt bench` measures it "
                                      "as it is, `edgeopt build` needs the float model"))
                if info.details:
                    c.print(printable("  ".join(f"{k}={v}" for k, v in info.details.items() if v not in ("", None))))
                c.print(table("inputs / outputs", ["name", "kind", "shape", "dtype", "scale", "zero point"],
                              [[t.name, kind, str(list(t.shape)), t.dtype, t.scale or None, t.zero_point if t.scale else None]
                               for kind, ts in (("input", info.inputs), ("output", info.outputs)) for t in ts]))
                c.print(table("layers", ["name", "op", "output shape", "params", "MACs"],
                              [[x.name, x.op, str(list(x.output_shape)), x.params, x.macs] for x in info.layers]))
                c.print(table("op counts", ["op", "count"], sorted(info.op_counts.items())))
                from edgeopt.report.notes import summarize

                for line in summarize(info.notes, "--json"):
                    c.print(printable(line), markup=False)

            Sink(json_out).result(info.to_dict(), human)


def _sensitivity(model: Path, calib: Path | None, unsafe_load: bool, json_out: bool) -> None:
    from dataclasses import asdict

    from edgeopt.quantize.sensitivity import rank, sensitivity_for_file

    rows = sensitivity_for_file(model, calib, unsafe_load)
    ranked = rank(rows)
    Sink(json_out).result({"model": str(model), "layers": [asdict(r) for r in rows],
                           "most_sensitive": [r.name for r in ranked[:5]]},
                          lambda c: c.print(table("int8 sensitivity (most sensitive first)",
                                                  ["layer", "op", "RMSE", "SNR dB", "MACs %"],
                                                  [[r.layer, r.op_type, r.rmse, r.snr_db, 100 * r.macs_share] for r in ranked])))
