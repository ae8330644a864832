"""`edgeopt qat MODEL --train train.npz --epochs N --out model.qat.keras`: quantization-aware training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import EvalOpt, JsonOpt, OutModelOpt, UnsafeLoadOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}%"


def register(app: typer.Typer) -> None:
    @app.command("qat")
    def qat_cmd(
        model: Annotated[Path, typer.Argument(help=".keras, .h5 or SavedModel folder")],
        out: OutModelOpt,
        train: Annotated[Path | None, typer.Option("--train", metavar="FILE", help="Training data .npz (x, y).")] = None,
        eval_data: EvalOpt = None,
        epochs: Annotated[int, typer.Option("--epochs", help="QAT epochs (>= 1).")] = 3,
        learning_rate: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = 1e-4,
        batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
        layers: Annotated[str | None, typer.Option("--layers", help="Regex of layer names whose weights train (default: all).")] = None,
        freeze_bn_after: Annotated[int, typer.Option("--freeze-bn-after", help="Epochs BatchNorm statistics still update (0 = frozen).")] = 0,
        per_tensor: Annotated[bool, typer.Option("--per-tensor", help="Per-tensor weight scales (default: per output channel).")] = False,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        unsafe_load: UnsafeLoadOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Fine-tune with int8 fake quantization; `edgeopt build` converts the result with the trained scales."""
        with handled(json_out):
            from edgeopt.qat.run import qat_keras_file
            from edgeopt.qat.train import QatSpec

            sink = Sink(json_out)
            spec = QatSpec(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, layers=layers,
                           freeze_bn_after=freeze_bn_after, per_channel=not per_tensor, seed=seed)
            with sink.progress("quantization-aware training"):
                r = qat_keras_file(model, out, train, spec, eval_data, unsafe_load)

            def human(c):  # type: ignore[no-untyped-def]
                q = r.qat
                c.print(f"QAT: {q.epochs} epoch(s) in {q.train_seconds:.1f} s, {len(q.trained_layers)} layer(s) trained, "
                        f"{len(q.folded_bn)} BatchNorm folded, {q.quantizers} activation quantizers")
                if r.float_accuracy is not None:
                    c.print(table("top-1 on the eval data (LiteRT)", ["model", "top-1"], [
                        ["float", _pct(r.float_accuracy)], ["int8 PTQ (min/max calibration)", _pct(r.ptq_accuracy)],
                        ["int8 QAT (trained scales)", _pct(r.qat_accuracy)]]))
                c.print(f"wrote {out} (int8 .tflite from it: {r.artifact_bytes / 1024:,.1f} KB)")

            sink.result(r.to_dict(), human)
