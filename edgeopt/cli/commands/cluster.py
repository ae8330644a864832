"""`edgeopt cluster MODEL.keras --clusters 16 --out clustered.keras`: weight sharing per layer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table

INIT_CHOICES = ("linear", "kmeans++")  # edgeopt.cluster.kmeans.Init (kept literal so --help imports nothing heavy)
DEFAULT_FINETUNE_EPOCHS = 3


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KB"


def register(app: typer.Typer) -> None:
    @app.command("cluster")
    def cluster_cmd(
        model: Annotated[Path, typer.Argument(help=".keras, .h5 or SavedModel folder")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Clustered model (.keras), written atomically.")],
        clusters: Annotated[int, typer.Option("--clusters", "-k", help="Shared values per kernel.")] = 16,
        layers: Annotated[str | None, typer.Option("--layers", help="Regex of layer names to cluster (default: all Conv/Dense/Depthwise/Separable).")] = None,
        init: Annotated[str, typer.Option("--init", help=f"Centroid initialisation: {', '.join(INIT_CHOICES)}.")] = "linear",
        finetune: Annotated[Path | None, typer.Option("--finetune", help="Training data .npz (x, y) to fine-tune the centroids.")] = None,
        epochs: Annotated[int | None, typer.Option("--epochs", help=f"Fine-tuning epochs (default {DEFAULT_FINETUNE_EPOCHS} with --finetune).")] = None,
        learning_rate: Annotated[float, typer.Option("--lr", help="Centroid learning rate (Adam).")] = 1e-4,
        eval_data: Annotated[Path | None, typer.Option("--eval", help="Eval data .npz (x, y) for accuracy before/after.")] = None,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        unsafe_load: Annotated[bool, typer.Option("--unsafe-load", help="Allow Lambda layers (runs code from the model file).")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Share weights: k-means each kernel to CLUSTERS values (biases and BatchNorm untouched)."""
        with handled():
            from edgeopt.cluster import ClusterSpec, cluster_keras_file
            from edgeopt.data.datasets import sibling

            sink = Sink(json_out)
            if init not in INIT_CHOICES:
                from edgeopt.errors import InputError

                raise InputError(f"--init must be one of {', '.join(INIT_CHOICES)}, got '{init}'")
            n_epochs = epochs if epochs is not None else (DEFAULT_FINETUNE_EPOCHS if finetune is not None else 0)
            spec = ClusterSpec(clusters=clusters, layers=layers, init=init, epochs=n_epochs,  # type: ignore[arg-type]
                               learning_rate=learning_rate, seed=seed)
            if eval_data is None and model.exists():
                eval_data = sibling(model, "eval")
                if eval_data is not None:
                    sink.info(f"[dim]eval data: {eval_data}[/dim]")
            with sink.progress("clustering"):
                r = cluster_keras_file(model, out, spec, finetune=finetune, eval_data=eval_data, unsafe_load=unsafe_load)
            for w in r.warnings:
                sink.warn(w)

            def human(c):  # type: ignore[no-untyped-def]
                c.print(table(f"clustered to {spec.clusters} values per kernel ({spec.init})",
                              ["layer", "weight", "params", "unique before", "unique after"],
                              [[x.layer, x.weight, x.params, x.unique_before, x.unique_after] for x in r.layers]))
                b, a = r.size_before, r.size_after
                if b is not None and a is not None:
                    c.print(table("gzip -9 size", ["file", "before", "after", "size ratio (after/before)"], [
                        [".keras", _kb(b.keras_gzip_bytes), _kb(a.keras_gzip_bytes), r.keras_gzip_ratio],
                        ["float .tflite", _kb(b.tflite_gzip_bytes), _kb(a.tflite_gzip_bytes), r.tflite_gzip_ratio]]))
                if r.accuracy_before is not None:
                    c.print(f"top-1: {r.accuracy_before:.2f}% -> {r.accuracy_after:.2f}% "
                            f"(drop {r.accuracy_drop:+.2f} points, {r.finetune_epochs} fine-tuning epoch(s))")
                c.print(f"wrote {out}")

            sink.result({**r.to_dict(), "out": str(out)}, human)
