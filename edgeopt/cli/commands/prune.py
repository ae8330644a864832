"""`edgeopt prune MODEL --out pruned.keras`: structural channel pruning for Keras 3."""

from __future__ import annotations

from typing import Annotated, Any

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
from edgeopt.vocabulary import PruneAllocation, PruneCriterion


def register(app: typer.Typer) -> None:
    @app.command("prune")
    def prune_cmd(
        model: KerasModelArg,
        out: OutModelOpt,
        ratio: Annotated[float | None, typer.Option("--ratio", metavar="X", help="Fraction of channels to remove, in [0, 1).")] = None,
        macs_reduction: Annotated[float | None, typer.Option("--macs-reduction", metavar="X", help="Fraction of MACs to remove, in [0, 1).")] = None,
        target: Annotated[str | None, typer.Option("--target", "-t", metavar="PROFILE", help="Take the [prune] settings (criterion, allocation, round_to, ignore, epochs, lr) from this profile; flags override.")] = None,
        criterion: Annotated[PruneCriterion | None, typer.Option("--criterion", help="Channel importance.  [default: l1]", show_default=False)] = None,
        allocation: Annotated[PruneAllocation | None, typer.Option("--allocation", help="global: one threshold over all groups; uniform: the same ratio per group.  [default: global]", show_default=False)] = None,
        round_to: Annotated[int | None, typer.Option("--round-to", metavar="N", help="Channel counts stay multiples of N.  [default: 1, or the profile's]", show_default=False)] = None,
        ignore: Annotated[list[str] | None, typer.Option("--ignore", metavar="REGEX", help="Regex of layer names to protect (repeatable).")] = None,
        finetune: FinetuneOpt = None,
        epochs: Annotated[int | None, typer.Option("--epochs", metavar="N", help="Fine-tuning epochs, early stopping on a validation split.  [default: 10]", show_default=False)] = None,
        lr: Annotated[float | None, typer.Option("--lr", metavar="X", help="Fine-tuning learning rate (Adam).  [default: 0.001]", show_default=False)] = None,
        eval_data: EvalOpt = None,
        no_finetune: Annotated[bool, typer.Option("--no-finetune", help="Allow pruning without fine-tuning data.")] = False,
        unsafe_load: UnsafeLoadOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Remove channels physically (dependency-aware), then fine-tune; the saved model is smaller and faster."""
        with handled(json_out):
            from pydantic import ValidationError

            from edgeopt.errors import InputError
            from edgeopt.pipeline.prune_stage import prune_keras_file
            from edgeopt.profiles.schema import PruneSection

            if (ratio is None) == (macs_reduction is None):
                msg = "give exactly one of --ratio or --macs-reduction"
                raise InputError(msg)
            for name, v in (("--ratio", ratio), ("--macs-reduction", macs_reduction)):
                if v is not None and not 0.0 <= v < 1.0:
                    msg = f"{name} must be in [0, 1), got {v}"
                    raise InputError(msg)
            base = PruneSection()
            if target is not None:
                from edgeopt.profiles import load_profile

                base = load_profile(target).profile.prune
            given = {"criterion": criterion, "allocation": allocation, "round_to": round_to, "epochs": epochs,
                     "learning_rate": lr, "ignore": None if ignore is None else tuple(ignore)}
            fields = {**base.model_dump(), **{k: v for k, v in given.items() if v is not None},
                      "ratio": ratio or 0.0, "macs_reduction": macs_reduction or 0.0}  # a ratio of 0 stays a ratio
            try:
                cfg = PruneSection.model_validate(fields)
            except ValidationError as exc:
                err = exc.errors()[0]
                flag = {"learning_rate": "lr"}.get(str(err["loc"][0]), str(err["loc"][0]))
                msg = f"--{flag.replace('_', '-')}: {err['msg']} (got {err.get('input')!r})"
                raise InputError(msg) from None
            sink = Sink(json_out)
            if ratio == 0.0 or macs_reduction == 0.0:
                no_finetune = True  # nothing removed: fine-tuning is not needed
            with sink.progress("pruning"):
                rep = prune_keras_file(model, out, cfg, finetune, eval_data, no_finetune, unsafe_load)
            for w in rep["warnings"]:
                sink.warn(w)

            def human(c: Any) -> None:
                after = rep["accuracy_after_finetune"] if rep["finetuned"] else rep["accuracy_after_prune"]
                c.print(table(f"pruned {rep['input']} -> {rep['output']}", ["", "before", "after", "ratio (after/before)"], [
                    ["params", rep["params_before"], rep["params_after"], rep["params_after"] / max(rep["params_before"], 1)],
                    ["MACs", rep["macs_before"], rep["macs_after"], rep["macs_after"] / max(rep["macs_before"], 1)],
                    ["top-1 %", rep["accuracy_before"], after, None],
                ]))
                c.print(table("groups", ["layers", "channels before", "after"],
                              [[", ".join(g["layers"][:4]) + (" ..." if len(g["layers"]) > 4 else ""), g["channels_before"],
                                g["channels_after"]] for g in rep["groups"]]))
                for u in rep["unprunable"]:
                    c.print(f"left unpruned: {u['layer']} ({u['reason']})", markup=False)
                if not rep["finetuned"]:
                    c.print("not fine-tuned: accuracy after pruning only (give --finetune data.npz to recover accuracy)")

            sink.result(rep, human)
