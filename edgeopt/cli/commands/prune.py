"""`edgeopt prune MODEL --out pruned.keras`: structural channel pruning for Keras 3."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import JsonOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink, table


def register(app: typer.Typer) -> None:
    @app.command("prune")
    def prune_cmd(
        model: Annotated[Path, typer.Argument(help=".keras, .h5 or SavedModel folder")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Pruned model (.keras), written atomically.")],
        ratio: Annotated[float | None, typer.Option("--ratio", help="Fraction of channels to remove, in [0, 1).")] = None,
        macs_reduction: Annotated[float | None, typer.Option("--macs-reduction", help="Fraction of MACs to remove, in [0, 1).")] = None,
        criterion: Annotated[str, typer.Option("--criterion", help="l1 | l2 | bn-scale | random")] = "l1",
        allocation: Annotated[str, typer.Option("--allocation", help="global (one threshold) | uniform (same ratio per group)")] = "global",
        round_to: Annotated[int, typer.Option("--round-to", help="Channel counts stay multiples of N.")] = 1,
        ignore: Annotated[list[str] | None, typer.Option("--ignore", help="Regex of layer names to protect (repeatable).")] = None,
        finetune: Annotated[Path | None, typer.Option("--finetune", help="Training data .npz (x, y) for fine-tuning.")] = None,
        epochs: Annotated[int, typer.Option("--epochs", help="Fine-tuning epochs (early stopping on a validation split).")] = 10,
        lr: Annotated[float, typer.Option("--lr", help="Fine-tuning learning rate (Adam).")] = 1e-3,
        eval_data: Annotated[Path | None, typer.Option("--eval", help="Eval data .npz (x, y): accuracy before/after.")] = None,
        no_finetune: Annotated[bool, typer.Option("--no-finetune", help="Allow pruning without fine-tuning data.")] = False,
        unsafe_load: Annotated[bool, typer.Option("--unsafe-load", help="Allow Lambda layers.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Remove channels physically (dependency-aware), then fine-tune; the saved model is smaller and faster."""
        with handled():
            from pydantic import ValidationError

            from edgeopt.errors import InputError
            from edgeopt.pipeline.prune_stage import prune_keras_file
            from edgeopt.profiles.schema import PruneAllocation, PruneCriterion, PruneSection

            if (ratio is None) == (macs_reduction is None):
                raise InputError("give exactly one of --ratio or --macs-reduction")
            for name, v in (("--ratio", ratio), ("--macs-reduction", macs_reduction)):
                if v is not None and not 0.0 <= v < 1.0:
                    raise InputError(f"{name} must be in [0, 1), got {v}")
            try:
                crit, alloc = PruneCriterion(criterion.replace("_", "-")), PruneAllocation(allocation)
            except ValueError:
                raise InputError(f"--criterion must be one of {', '.join(PruneCriterion)} and --allocation one of "
                                 f"{', '.join(PruneAllocation)}") from None
            try:
                cfg = PruneSection(ratio=ratio or 0.0, macs_reduction=macs_reduction or 0.0, criterion=crit,
                                   allocation=alloc, round_to=round_to, ignore=tuple(ignore or ()), epochs=epochs,
                                   learning_rate=lr)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise InputError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
            sink = Sink(json_out)
            if ratio == 0.0 or macs_reduction == 0.0:
                no_finetune = True  # nothing removed: fine-tuning is not needed
            with sink.progress("pruning"):
                rep = prune_keras_file(model, out, cfg, finetune, eval_data, no_finetune, unsafe_load)
            for w in rep["warnings"]:
                sink.warn(w)

            def human(c):  # type: ignore[no-untyped-def]
                c.print(table(f"pruned {rep['input']} -> {rep['output']}", ["", "before", "after", "ratio (after/before)"], [
                    ["params", rep["params_before"], rep["params_after"], rep["params_after"] / max(rep["params_before"], 1)],
                    ["MACs", rep["macs_before"], rep["macs_after"], rep["macs_after"] / max(rep["macs_before"], 1)],
                    ["top-1 %", rep["accuracy_before"], rep["accuracy_after_finetune"] or rep["accuracy_after_prune"], None],
                ]))
                c.print(table("groups", ["layers", "channels before", "after"],
                              [[", ".join(g["layers"][:4]) + (" ..." if len(g["layers"]) > 4 else ""), g["channels_before"],
                                g["channels_after"]] for g in rep["groups"]]))
                for u in rep["unprunable"]:
                    c.print(f"left unpruned: {u['layer']} ({u['reason']})", markup=False)
                if not rep["finetuned"]:
                    c.print("not fine-tuned: accuracy after pruning only (give --finetune data.npz to recover accuracy)")

            sink.result(rep, human)
