"""Sparsify facade: select kernels, prune by magnitude (while fine-tuning, or one-shot), count the zeros."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import DataError, InputError
from edgeopt.sparsify.masks import check_layout
from edgeopt.sparsify.pattern import Pattern, PatternKind, parse_pattern
from edgeopt.sparsify.schedule import PolynomialSchedule
from edgeopt.vocabulary import SparsityAllocation

END_FRACTION = 0.5  # the schedule reaches the target after this share of the steps; the rest fine-tunes the final mask
UPDATES_PER_EPOCH = 4


def check_sparsity(sparsity: float) -> float:
    """The one rule for a target sparsity: a fraction in [0, 1)."""
    if not (0.0 <= sparsity < 1.0):  # also refuses NaN
        msg = f"--sparsity {sparsity} is outside [0, 1); give the fraction of weights to zero, e.g. 0.8"
        raise InputError(msg)
    return float(sparsity)


@dataclass(frozen=True)
class SparsifySpec:
    sparsity: float | None = None  # None only for N:M (the pattern fixes it)
    pattern: Pattern = field(default_factory=lambda: Pattern(PatternKind.UNSTRUCTURED))
    layers: str | None = None
    allocation: SparsityAllocation = SparsityAllocation.PER_LAYER
    finetune: bool = True
    epochs: int = 12
    learning_rate: float = 1e-3
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.pattern, str):
            object.__setattr__(self, "pattern", parse_pattern(self.pattern))
        object.__setattr__(self, "allocation", SparsityAllocation(self.allocation))
        fixed = self.pattern.fixed_sparsity
        if self.sparsity is None:
            if fixed is None:
                msg = f"pattern {self.pattern} needs --sparsity (a fraction in [0, 1), e.g. 0.8)"
                raise InputError(msg)
            object.__setattr__(self, "sparsity", fixed)
        else:
            check_sparsity(self.sparsity)
            if fixed is not None and abs(self.sparsity - fixed) > 1e-9:
                msg = f"pattern {self.pattern} fixes the sparsity at {fixed:g}; drop --sparsity or give {fixed:g}"
                raise InputError(msg)
        if fixed is not None and self.allocation is SparsityAllocation.GLOBAL:
            msg = f"pattern {self.pattern} is per group of weights; --allocation global does not apply to it"
            raise InputError(msg)
        if self.epochs < 1 and self.finetune:
            msg = f"--epochs must be >= 1 when fine-tuning, got {self.epochs} (or use --no-finetune)"
            raise InputError(msg)
        if self.learning_rate <= 0 or self.batch_size < 1:
            msg = "learning rate must be > 0 and batch size >= 1"
            raise InputError(msg)

    @property
    def target(self) -> float:
        assert self.sparsity is not None
        return self.sparsity

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pattern"] = str(self.pattern)
        d["allocation"] = str(self.allocation)
        return d


@dataclass(frozen=True)
class LayerSparsity:
    layer: str
    weight: str
    params: int
    zeros_before: int
    zeros_after: int

    @property
    def sparsity(self) -> float:
        return self.zeros_after / max(1, self.params)


@dataclass(frozen=True)
class SparsifyResult:
    spec: SparsifySpec
    layers: tuple[LayerSparsity, ...]
    warnings: tuple[str, ...]
    accuracy_before: float | None  # top-1 in percent on the eval data (Keras), None without labels
    accuracy_after: float | None
    finetune_epochs: int
    steps: int
    mask_updates: int
    loss_history: tuple[float, ...]
    model: Any = field(default=None, repr=False, compare=False)

    @property
    def params(self) -> int:
        return sum(x.params for x in self.layers)

    @property
    def zeros(self) -> int:
        return sum(x.zeros_after for x in self.layers)

    @property
    def sparsity(self) -> float:
        """Zeros / weights over the sparsified kernels."""
        return self.zeros / max(1, self.params)

    @property
    def accuracy_drop(self) -> float | None:
        if self.accuracy_before is None or self.accuracy_after is None:
            return None
        return round(self.accuracy_before - self.accuracy_after, 6)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "layers": [{**asdict(x), "sparsity": x.sparsity} for x in self.layers],
            "params": self.params, "zeros": self.zeros, "sparsity": self.sparsity,
            "warnings": list(self.warnings), "accuracy_before": self.accuracy_before,
            "accuracy_after": self.accuracy_after, "accuracy_drop": self.accuracy_drop,
            "finetune_epochs": self.finetune_epochs, "steps": self.steps, "mask_updates": self.mask_updates,
            "loss_history": list(self.loss_history),
        }


def sparsify_model(model: Any, spec: SparsifySpec, train: tuple[np.ndarray, np.ndarray] | None = None,
                   evaluate: tuple[np.ndarray, np.ndarray | None] | None = None) -> SparsifyResult:
    """Sparsify `model` in place. With `spec.finetune` the masks grow on the polynomial schedule while
    training on `train` (x, y); without it the target masks are applied once (one-shot)."""
    from edgeopt.sparsify.targets import select_kernels
    from edgeopt.sparsify.training import apply_masks, masks_at, prune_during_training
    from edgeopt.validate.accuracy import keras_top1

    if spec.finetune and train is None:
        msg = (
            "sparsifying with fine-tuning needs training data; give --train data.npz (x, y) "
                         "or prune one-shot with --no-finetune"
        )
        raise InputError(msg)
    kernels, warnings = select_kernels(model, spec.layers)
    for k in kernels:
        check_layout(k.layout, spec.pattern)
    before = [int(np.count_nonzero(k.numpy() == 0)) for k in kernels]
    acc_before = keras_top1(model, *evaluate) if evaluate is not None else None
    global_ = spec.allocation is SparsityAllocation.GLOBAL
    history: tuple[float, ...] = ()
    steps = updates = epochs = 0
    if kernels and spec.finetune and train is not None:
        x, y = train
        per_epoch = -(-int(x.shape[0]) // spec.batch_size)
        total = per_epoch * spec.epochs
        schedule = PolynomialSchedule(spec.target, begin_step=0, end_step=max(1, int(total * END_FRACTION)),
                                      frequency=max(1, per_epoch // UPDATES_PER_EPOCH))
        tr = prune_during_training(model, kernels, spec.pattern, schedule, global_, x, y, spec.epochs,
                                   spec.learning_rate, spec.batch_size, spec.seed)
        history, steps, updates, epochs = tr.loss_history, tr.steps, tr.mask_updates, spec.epochs
    elif kernels:
        apply_masks(kernels, masks_at(kernels, spec.pattern, spec.target, global_))
    layers = tuple(LayerSparsity(k.layout.layer, k.layout.weight, int(k.numpy().size), b,
                                 int(np.count_nonzero(k.numpy() == 0))) for k, b in zip(kernels, before, strict=True))
    acc_after = keras_top1(model, *evaluate) if evaluate is not None else None
    return SparsifyResult(spec, layers, warnings, acc_before, acc_after, epochs, steps, updates, history, model)


def sparsify_keras_file(model_path: Path, out: Path, spec: SparsifySpec, train: Path | None = None,
                        eval_data: Path | None = None, unsafe_load: bool = False) -> SparsifyResult:
    """Load a Keras model, sparsify it and write it to `out` (.keras) atomically."""
    from edgeopt.atomic import write_bytes_atomic
    from edgeopt.load.keras_job import open_keras_job

    if spec.finetune and train is None:
        msg = (
            "sparsifying with fine-tuning needs training data; give --train data.npz (x, y) "
                         "or prune one-shot with --no-finetune"
        )
        raise InputError(msg)
    job = open_keras_job(Path(model_path), Path(out), "sparsifying", train if spec.finetune else None, eval_data,
                         unsafe_load)
    model = job.model
    tr = None
    if job.train is not None:
        if (labels := job.train.y) is None:
            msg = f"train data {train} has no labels 'y'; save it with np.savez(path, x=..., y=...)"
            raise DataError(msg)
        tr = (job.train.x, labels)
    ev = None if job.eval is None else (job.eval.x, job.eval.y)
    result = sparsify_model(model, spec, tr, ev)
    with tempfile.TemporaryDirectory(prefix="edgeopt-sp-") as tmp:
        p = Path(tmp) / "sparse.keras"
        model.save(p)
        write_bytes_atomic(Path(out), p.read_bytes())
    return result
