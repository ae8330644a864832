"""QAT inside `edgeopt build`: directly (a [qat] section) or as the last rung of the accuracy ladder.

- Direct: with [qat] and --train (and 'qat' not among [partial] fallbacks), the compressed model is
  fine-tuned with fake quantization and its int8 artifact is exported with the trained scales.
- Ladder: with partial.fallbacks naming 'qat', QAT runs only when plain int8 and the cheaper
  fallbacks (float / int16x8 layers) still break max_accuracy_drop; its artifact is measured like
  every partial step (size, accuracy, p50 latency) and chosen when it meets the budget.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgeopt.data.datasets import Dataset
from edgeopt.errors import InputError
from edgeopt.profiles.schema import Fallback, Profile
from edgeopt.report import schema as rs


def qat_in_ladder(profile: Profile) -> bool:
    return profile.partial is not None and profile.partial.accuracy_control and Fallback.QAT in profile.partial.fallbacks


def qat_direct(profile: Profile) -> bool:
    return profile.qat is not None and not qat_in_ladder(profile)


def check_qat_inputs(profile: Profile, train: Dataset | None) -> None:
    """A profile that uses QAT needs labelled training data: refused before any work."""
    if profile.qat is None:
        return
    if train is None:
        msg = (
            f"profile '{profile.name}' uses quantization-aware training ([qat]); give --train train.npz "
                         "(arrays x and y) or put NAME.train.npz next to the model"
        )
        raise InputError(msg)
    from edgeopt.qat.train import check_training_data

    check_training_data(train.x, train.y)


def spec_from_profile(profile: Profile) -> Any:
    from edgeopt.qat.train import QatSpec

    c = profile.qat
    assert c is not None
    per_channel = profile.quantize.per_channel if c.per_channel is None else c.per_channel
    return QatSpec(epochs=c.epochs, learning_rate=c.learning_rate, batch_size=c.batch_size, layers=c.layers,
                   freeze_bn_after=c.freeze_bn_after, per_channel=per_channel)


def run_qat(model: Any, profile: Profile, train: Dataset, evalset: Dataset | None,
            clustered: tuple[str, ...] = ()) -> Any:
    """QatResult for the compressed Keras model; `clustered` layers keep their shared weights (not trained)."""
    from edgeopt.qat.train import train_qat

    assert train.y is not None
    spec = spec_from_profile(profile)
    if clustered and profile.qat is not None and profile.qat.layers is None:
        spec = replace(spec, frozen=clustered)
    if profile.sparsity is not None:
        spec = replace(spec, masks=_sparsity_masks(model, profile.sparsity.layers))
    return train_qat(model, spec, train.x, train.y,
                     None if evalset is None else evalset.x, None if evalset is None else evalset.y)


def _sparsity_masks(model: Any, layers: str | None) -> tuple[tuple[str, str, Any], ...]:
    """Zero masks of the sparsified kernels, so QAT fine-tuning keeps the zeros [sparsity] made."""
    import numpy as np

    from edgeopt.sparsify.targets import select_kernels

    kernels, _ = select_kernels(model, layers)
    return tuple((k.layout.layer, k.layout.weight, (k.numpy() != 0).astype(np.float32)) for k in kernels)


def qat_report(result: Any, role: str) -> rs.QatStage:
    return rs.QatStage(role=role, scales_from="qat (trained moving-average ranges, no calibration)",
                       **result.to_dict())


class _FloatOnly:
    """The float reference for measuring the QAT rung, in the partial loop's Backend shape."""

    def __init__(self, float_model: bytes, suffix: str) -> None:
        self.float_model, self.suffix = float_model, suffix


def qat_rung(model: Any, profile: Profile, train: Dataset, evalset: Dataset, partial: Any,
             float_model: bytes) -> tuple[Any, rs.QatStage]:
    """Run QAT after the partial steps; returns the PartialResult with the QAT step added, and the QAT report."""
    import tempfile
    from pathlib import Path

    import numpy as np

    from edgeopt.qat.export import qat_artifact
    from edgeopt.quantize.partial import _Evaluator, settings_from_profile

    result = run_qat(model, profile, train, evalset)
    data = qat_artifact(result.model, profile)
    settings = settings_from_profile(profile)
    suffix = "." + str(profile.convert.format)
    with tempfile.TemporaryDirectory(prefix="edgeopt-qat-rung-") as tmp:
        ev = _Evaluator(_FloatOnly(float_model, suffix), np.asarray(evalset.x, np.float32), evalset.y,  # type: ignore[arg-type]
                        settings, Path(tmp))
        step = ev.measure(len(partial.steps), "int8-qat", data, (), ())
    steps = (*partial.steps, step)
    if step.within_budget:
        chosen, met, chosen_model = len(steps) - 1, True, data
    else:
        chosen = min(range(len(steps)), key=lambda i: (steps[i].accuracy_drop, i))
        met, chosen_model = False, data if chosen == len(steps) - 1 else partial.model
    return replace(partial, steps=steps, chosen=chosen, met=met, model=chosen_model), qat_report(result, "fallback")
