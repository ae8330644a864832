"""`edgeopt sparsify MODEL --sparsity 0.8 --train train.npz --out sparse.keras`: weight-level magnitude pruning."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import CalibOpt, EvalOpt, JsonOpt, KerasModelArg, OutModelOpt, UnsafeLoadOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table
from edgeopt.vocabulary import SparsityAllocation

DEFAULT_EPOCHS = 12


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KB"


def register(app: typer.Typer) -> None:
    @app.command("sparsify")
    def sparsify_cmd(
        model: KerasModelArg,
        out: OutModelOpt,
        sparsity: Annotated[float | None, typer.Option("--sparsity", "-s", metavar="X",
                                                       help="Fraction of kernel weights set to zero, in [0, 1) (N:M sets it).")] = None,
        pattern: Annotated[str, typer.Option("--pattern", metavar="PATTERN",
                                             help="unstructured, N:M (e.g. 2:4) or block:RxC (e.g. block:1x4).")] = "unstructured",
        allocation: Annotated[SparsityAllocation, typer.Option("--allocation", help="Target per layer or one global threshold.")] = SparsityAllocation.PER_LAYER,
        layers: Annotated[str | None, typer.Option("--layers", metavar="REGEX", help="Regex of layer names to sparsify (default: all Conv/Dense/Depthwise/Separable).")] = None,
        train: Annotated[Path | None, typer.Option("--train", metavar="FILE", help="Training data .npz (x, y) for pruning during fine-tuning.")] = None,
        finetune: Annotated[bool, typer.Option("--finetune/--no-finetune", help="Prune gradually while fine-tuning (default), or one-shot.")] = True,
        epochs: Annotated[int, typer.Option("--epochs", metavar="N", help="Fine-tuning epochs (the schedule reaches the target at half of them).")] = DEFAULT_EPOCHS,
        learning_rate: Annotated[float, typer.Option("--lr", metavar="X", help="Fine-tuning learning rate (Adam).")] = 1e-3,
        eval_data: EvalOpt = None,
        calib: CalibOpt = None,
        measure: Annotated[bool, typer.Option("--measure/--no-measure", help="Convert to .tflite (int8, float, sparse-encoded) and measure bytes, zeros, accuracy and latency.")] = True,
        artifacts: Annotated[Path | None, typer.Option("--artifacts", metavar="DIR", help="Keep the measured .tflite files in this folder.")] = None,
        seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of fine-tuning.")] = 0,
        unsafe_load: UnsafeLoadOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Zero weights by magnitude (unstructured, N:M or blocks); zeros are kept exactly and measured in the .tflite."""
        with handled(json_out):
            from edgeopt.data.datasets import sibling
            from edgeopt.sparsify import SparsifySpec
            from edgeopt.sparsify.run import sparsify_file

            sink = Sink(json_out)
            spec = SparsifySpec(sparsity=sparsity, pattern=pattern, layers=layers, allocation=allocation,  # type: ignore[arg-type]
                                finetune=finetune, epochs=epochs, learning_rate=learning_rate, seed=seed)
            if eval_data is None and model.exists():
                eval_data = sibling(model, "eval")
                if eval_data is not None:
                    sink.info(f"[dim]eval data: {eval_data}[/dim]")
            if measure and calib is None and model.exists():
                calib = sibling(model, "calibration")
            if measure and calib is None:
                msg = "measuring the int8 .tflite needs calibration data; give --calib data.npz (or --no-measure)"
                raise _input_error(msg)
            if artifacts is not None and not artifacts.is_dir():
                msg = f"--artifacts {artifacts}: folder does not exist; create it first"
                raise _input_error(msg)
            with sink.progress("sparsifying" + (", converting and measuring" if measure else "")):
                run = sparsify_file(model, out, spec, train=train, eval_data=eval_data, calib=calib if measure else None,
                                    artifacts=artifacts, unsafe_load=unsafe_load)
            r, gains = run.result, run.gains
            for w in r.warnings:
                sink.warn(w)

            def human(c):  # type: ignore[no-untyped-def]
                c.print(table(f"sparsified to {spec.target:.0%} ({spec.pattern}, {spec.allocation})",
                              ["layer", "weight", "params", "zeros", "sparsity"],
                              [[x.layer, x.weight, x.params, x.zeros_after, f"{x.sparsity:.1%}"] for x in r.layers]))
                c.print(f"sparsity over the sparsified kernels: {r.sparsity:.2%} ({r.zeros:,} of {r.params:,} weights; "
                        f"zeros are not removed parameters: the shapes are unchanged)")
                if r.accuracy_before is not None:
                    how = f"{r.finetune_epochs} fine-tuning epoch(s)" if r.finetune_epochs else "one-shot, no fine-tuning"
                    c.print(f"Keras top-1: {r.accuracy_before:.2f}% -> {r.accuracy_after:.2f}% "
                            f"(drop {r.accuracy_drop:+.2f} points, {how})")
                if gains is not None:
                    c.print(f"int8 .tflite read back: {gains.int8_sparsity:.2%} zeros in the sparsified kernels")
                    c.print(table("artifacts (LiteRT)", ["variant", "bytes", "gzip -9", "sparse tensors", "runs", "top-1",
                                                         "p50 ms", "latency ratio"],
                                  [[a.variant, a.raw_bytes, a.gzip_bytes, a.sparse_tensors, "yes" if a.runs else f"no: {a.error}",
                                    "-" if a.top1 is None else f"{a.top1:.2f}%",
                                    "-" if a.latency_p50_ms is None else f"{a.latency_p50_ms:.3f}",
                                    "-" if a.latency_ratio is None else f"{a.latency_ratio:.2f} vs {a.baseline}"]
                                   for a in gains.artifacts]))
                    c.print(f"latency: {gains.latency_statement}")
                    c.print(f"XNNPACK: {gains.xnnpack_sparse}")
                    c.print(f"MCU: {gains.mcu_flash}")
                c.print(f"wrote {out}")

            data = {**r.to_dict(), "out": str(out), "gains": gains.to_dict() if gains is not None else None}
            sink.result(data, human)


def _input_error(message: str) -> Exception:
    from edgeopt.errors import InputError

    return InputError(message)
