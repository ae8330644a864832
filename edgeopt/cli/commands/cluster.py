"""`edgeopt cluster MODEL.keras --clusters 16 --out clustered.keras`: weight sharing per layer."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeopt.cli.commands.options import (
    EvalOpt,
    FinetuneOpt,
    JsonOpt,
    KerasModelArg,
    OutModelOpt,
    UnsafeLoadOpt,
)
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table
from edgeopt.vocabulary import ClusterInit

DEFAULT_FINETUNE_EPOCHS = 3


def _kb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KB"


def register(app: typer.Typer) -> None:
    @app.command("cluster")
    def cluster_cmd(
        model: KerasModelArg,
        out: OutModelOpt,
        clusters: Annotated[int, typer.Option("--clusters", "-k", metavar="K", help="Shared values per kernel.")] = 16,
        layers: Annotated[str | None, typer.Option("--layers", metavar="REGEX", help="Regex of layer names to cluster (default: all Conv/Dense/Depthwise/Separable).")] = None,
        init: Annotated[ClusterInit, typer.Option("--init", help="Centroid initialisation.")] = ClusterInit.LINEAR,
        finetune: FinetuneOpt = None,
        epochs: Annotated[int | None, typer.Option("--epochs", metavar="N", help=f"Centroid fine-tuning epochs (default {DEFAULT_FINETUNE_EPOCHS} with --finetune).")] = None,
        learning_rate: Annotated[float, typer.Option("--lr", metavar="X", help="Centroid learning rate (Adam).")] = 1e-4,
        eval_data: EvalOpt = None,
        seed: Annotated[int, typer.Option("--seed", metavar="N", min=0, max=2**32 - 1, help="Seed of k-means++ and of fine-tuning.")] = 0,
        unsafe_load: UnsafeLoadOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Share weights: k-means each kernel to CLUSTERS values (biases and BatchNorm untouched)."""
        with handled(json_out):
            from edgeopt.cluster import ClusterSpec, cluster_keras_file
            from edgeopt.data.datasets import sibling

            sink = Sink(json_out)
            n_epochs = epochs if epochs is not None else (DEFAULT_FINETUNE_EPOCHS if finetune is not None else 0)
            spec = ClusterSpec(clusters=clusters, layers=layers, init=init, epochs=n_epochs,
                               learning_rate=learning_rate, seed=seed)
            if eval_data is None and model.exists():
                eval_data = sibling(model, "eval")
                if eval_data is not None:
                    sink.info(f"eval data: {eval_data}")
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
