"""The pruning stage: prune, fine-tune, and describe what happened (for build and `edgeopt prune`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.data.datasets import Dataset, sibling
from edgeopt.errors import InputError
from edgeopt.profiles.schema import PruneSection
from edgeopt.report import schema as rs


@dataclass(frozen=True)
class PruneOutcome:
    model: Any
    report: rs.PruneStage


def spec_from(cfg: PruneSection) -> Any:
    from edgeopt.prune import PruneSpec

    # A macs_reduction > 0 wins; otherwise the ratio, 0.0 included (an identity prune, as `edgeopt prune --ratio 0` asks).
    return PruneSpec(ratio=None if cfg.macs_reduction else cfg.ratio, macs_reduction=cfg.macs_reduction or None, criterion=cfg.criterion,
                     allocation=cfg.allocation, round_to=cfg.round_to, ignore=tuple(cfg.ignore))


def prune_and_finetune(model: Any, cfg: PruneSection, train: Dataset | None, evalset: Dataset | None,
                       allow_no_finetune: bool) -> PruneOutcome:
    from edgeopt.prune import prune_model
    from edgeopt.prune.finetune import finetune
    from edgeopt.validate.accuracy import keras_top1

    finetuning = cfg.epochs > 0 and train is not None and train.y is not None
    if not finetuning and not (allow_no_finetune or cfg.allow_without_finetune):
        msg = (
            "pruning without fine-tuning loses accuracy: give training data (--train / --finetune data.npz "
                         "with x and y) or allow it explicitly (--no-finetune, or prune.allow_without_finetune = true)"
        )
        raise InputError(msg)
    spec = spec_from(cfg)
    before = None if evalset is None or evalset.y is None else keras_top1(model, evalset.x, evalset.y)
    result = prune_model(model, spec)
    pruned_acc = None if evalset is None or evalset.y is None else keras_top1(result.model, evalset.x, evalset.y)
    ft = None
    if finetuning:
        assert train is not None and train.y is not None
        ft = finetune(result.model, train.x, train.y, epochs=cfg.epochs, learning_rate=cfg.learning_rate, patience=3,
                      eval_x=None if evalset is None else evalset.x, eval_y=None if evalset is None else evalset.y, seed=0)
    after = None if evalset is None or evalset.y is None else keras_top1(result.model, evalset.x, evalset.y)
    report = rs.PruneStage(
        criterion=str(cfg.criterion), allocation=str(cfg.allocation), round_to=cfg.round_to, epochs=cfg.epochs,
        learning_rate=cfg.learning_rate,
        requested=rs.PruneRequest(ratio=spec.ratio, macs_reduction=spec.macs_reduction),
        channel_ratio=result.ratio, params_before=result.params_before, params_after=result.params_after,
        macs_before=result.macs_before, macs_after=result.macs_after, macs_reduction=result.macs_reduction,
        params_reduction=result.params_reduction, accuracy_before=before, accuracy_after_prune=pruned_acc,
        accuracy_after_finetune=after if ft else None, finetuned=ft is not None,
        finetune=None if ft is None else rs.PruneFinetune(epochs_run=ft.epochs_run, loss_history=list(ft.loss_history)),
        groups=[rs.PruneGroup(layers=list(g.layers), channels_before=g.channels_before, channels_after=g.channels_after)
                for g in result.groups],
        unprunable=[rs.Unprunable(layer=u.layer, reason=u.reason) for u in result.unprunable],
        warnings=list(result.warnings),
    )
    return PruneOutcome(result.model, report)


def prune_keras_file(path: Path, out: Path, cfg: PruneSection, finetune_data: Path | None, eval_data: Path | None,
                     allow_no_finetune: bool, unsafe_load: bool) -> dict[str, Any]:
    """`edgeopt prune`: load, prune, fine-tune, save atomically; returns the report dict. The model's code runs
    in the sandbox (edgeopt.sandbox); what can be refused without it is refused here first."""
    from edgeopt.load.keras_job import check_keras_job
    from edgeopt.sandbox.runner import run_model_code

    check_keras_job(path, out, "pruning", {"training data": finetune_data, "eval data": eval_data})
    return run_model_code(  # type: ignore[no-any-return]
        "edgeopt.pipeline.prune_stage:prune_keras_file_here",
        {"path": path, "out": out, "cfg": cfg, "finetune_data": finetune_data, "eval_data": eval_data,
         "allow_no_finetune": allow_no_finetune, "unsafe_load": unsafe_load}, dict[str, Any], out=out)


def prune_keras_file_here(path: Path, out: Path, cfg: PruneSection, finetune_data: Path | None,
                          eval_data: Path | None, allow_no_finetune: bool, unsafe_load: bool) -> dict[str, Any]:
    """prune_keras_file in this process (the sandbox's side)."""
    from edgeopt.atomic import write_bytes_atomic
    from edgeopt.load.formats import ModelFormat, detect_format
    from edgeopt.load.keras_job import open_keras_job

    keras_file = detect_format(path) is ModelFormat.KERAS
    eval_path = eval_data or (sibling(path, "eval") if keras_file else None)
    job = open_keras_job(path, out, "pruning", finetune_data, eval_path, unsafe_load)
    model, train, evalset = job.model, job.train, job.eval
    outcome = prune_and_finetune(model, cfg, train, evalset, allow_no_finetune)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edgeopt-prune-", dir=out.parent) as tmp:
        tmp_file = Path(tmp) / "pruned.keras"
        outcome.model.save(tmp_file)
        write_bytes_atomic(out, tmp_file.read_bytes())
    return {"input": str(path), "output": str(out), "eval_data": None if evalset is None else str(evalset.path),
            **outcome.report.model_dump(mode="json")}
