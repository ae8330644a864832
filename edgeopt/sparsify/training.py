"""Magnitude pruning during fine-tuning (Keras 3): masks follow the schedule, applied after every step.

Each optimizer step may move a pruned weight off zero (Adam's moments keep pushing it), so the
masks are multiplied in after every step; the forward pass of the next step, and the exported
model, see exact zeros. The masks are recomputed from the current weights on the schedule's grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeopt.sparsify.masks import compute_masks
from edgeopt.sparsify.pattern import Pattern
from edgeopt.sparsify.schedule import PolynomialSchedule
from edgeopt.sparsify.targets import Kernel


@dataclass(frozen=True)
class TrainingResult:
    masks: tuple[np.ndarray, ...]
    loss_history: tuple[float, ...]  # mean training loss per epoch
    steps: int
    mask_updates: int


def apply_masks(kernels: Sequence[Kernel], masks: Sequence[np.ndarray]) -> None:
    for k, m in zip(kernels, masks, strict=True):
        k.variable.assign(k.numpy() * m)


def masks_at(kernels: Sequence[Kernel], pattern: Pattern, sparsity: float, global_: bool) -> list[np.ndarray]:
    return compute_masks([k.numpy() for k in kernels], [k.layout for k in kernels], pattern, sparsity, global_)


def prune_during_training(model: Any, kernels: Sequence[Kernel], pattern: Pattern, schedule: PolynomialSchedule,
                          global_: bool, x: np.ndarray, y: np.ndarray, epochs: int, learning_rate: float,
                          batch_size: int, seed: int) -> TrainingResult:
    """Fine-tune `model` in place for `epochs` while the masks follow `schedule`; returns the final masks."""
    import keras

    from edgeopt.cluster.finetune import pick_loss

    keras.utils.set_random_seed(seed)
    loss = pick_loss(model, x, y)
    state: dict[str, Any] = {"step": 0, "updates": 0}
    masks = masks_at(kernels, pattern, schedule.sparsity(0), global_)
    apply_masks(kernels, masks)
    consts = [keras.ops.convert_to_tensor(m) for m in masks]

    class Masking(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            nonlocal consts
            state["step"] += 1
            step = state["step"]
            if schedule.updates_at(step):
                new = masks_at(kernels, pattern, schedule.sparsity(step), global_)
                consts = [keras.ops.convert_to_tensor(m) for m in new]
                state["updates"] += 1
            for k, c in zip(kernels, consts, strict=True):
                k.variable.assign(keras.ops.multiply(k.variable, c))

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    hist = model.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0, callbacks=[Masking()])
    final = masks_at(kernels, pattern, schedule.final_sparsity, global_)  # already at target: keeps the zeros
    apply_masks(kernels, final)
    return TrainingResult(tuple(final), tuple(float(v) for v in hist.history.get("loss", [])), state["step"],
                          state["updates"])
