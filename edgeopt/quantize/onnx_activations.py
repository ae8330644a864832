"""S8S8 or U8S8 for an int8 ONNX artifact: measured, not guessed.

onnxruntime's int8 kernels on x86 are built around uint8 activations (U8S8); an
S8S8 (int8 activations) model can run several times slower than float there,
while on ARM S8S8 is the fast path. With `quantize.onnx_activations = "auto"`
both are quantized from the same float model and calibration data, timed
interleaved with the float baseline on the benchmark device (local or
--remote), and scored on the eval data when there is some; the faster candidate
within the accuracy budgets (every output's metric budget and floors) is kept.
When none is, the most accurate is kept, and among candidates that tie with it
within one eval sample (edgeopt.validate.metrics.tied) the faster. Without timing (--no-bench) U8S8 is taken
on x86 and S8S8 elsewhere, and the note says it was not measured.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeopt.profiles.schema import OnnxActivations
from edgeopt.quantize.onnx import OnnxRecipe
from edgeopt.quantize.onnx_recovery import quantize_recovering

if TYPE_CHECKING:
    from edgeopt.validate.accuracy import AccuracyResult

Measure = Callable[[Sequence[Path]], Sequence[Any]]  # model paths -> BenchResults, same order
Score = Callable[[Path], "AccuracyResult"]

LABEL = {OnnxActivations.INT8: "S8S8", OnnxActivations.UINT8: "U8S8"}


@dataclass(frozen=True)
class Candidate:
    activations: OnnxActivations
    path: Path
    p50_ms: float | None
    accuracy: AccuracyResult | None
    within_budget: bool  # True when there is no eval data or no accuracy budget
    excluded_notes: tuple[str, ...] = ()  # nodes kept in float because onnxruntime's quantizer failed on them

    def to_dict(self, baseline_p50: float | None) -> dict[str, Any]:
        ratio = None if self.p50_ms is None or not baseline_p50 else self.p50_ms / baseline_p50
        p = None if self.accuracy is None else self.accuracy.primary
        return {"activations": str(self.activations), "kind": LABEL[self.activations], "p50_ms": self.p50_ms,
                "latency_ratio": ratio, "accuracy_drop": None if self.accuracy is None else self.accuracy.drop,
                "metric": None if p is None else str(p.metric), "accuracy": None if p is None else p.value,
                "within_budget": self.within_budget}


@dataclass(frozen=True)
class ActivationChoice:
    chosen: Candidate
    candidates: tuple[Candidate, ...]
    baseline_p50_ms: float | None
    measured: bool
    note: str

    @property
    def notes(self) -> tuple[str, ...]:
        """The choice, and the nodes the chosen candidate keeps in float because the quantizer failed on them."""
        return (self.note, *self.chosen.excluded_notes)

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": str(self.chosen.activations), "measured": self.measured,
                "baseline_p50_ms": self.baseline_p50_ms,
                "candidates": [c.to_dict(self.baseline_p50_ms) for c in self.candidates]}


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def quantize_with_activations(src: Path, dst: Path, recipe: OnnxRecipe, mode: OnnxActivations, baseline: Path,
                              measure: Measure | None, score: Score | None,
                              max_drop: float | None) -> ActivationChoice:
    """Write the int8 artifact for `mode` to `dst` (for auto: the chosen candidate) and say how it was chosen."""
    if mode is not OnnxActivations.AUTO or measure is None:
        fixed = mode if mode is not OnnxActivations.AUTO else (OnnxActivations.UINT8 if is_x86() else OnnxActivations.INT8)
        done = quantize_recovering(src, dst, replace(recipe, unsigned_activations=fixed is OnnxActivations.UINT8))
        accuracy = score(dst) if score is not None else None
        cand = Candidate(fixed, dst, None, accuracy, _within(accuracy, max_drop), done.notes)
        why = ("set by quantize.onnx_activations" if mode is not OnnxActivations.AUTO else
               f"onnxruntime's choice on {'x86' if fixed is OnnxActivations.UINT8 else 'this CPU'}; not measured "
               "because the benchmark was skipped")
        return ActivationChoice(cand, (cand,), None, False, f"int8 activations: {LABEL[fixed]} ({why})")
    work = dst.parent / "_work" / "activations"
    work.mkdir(parents=True, exist_ok=True)
    runs = {kind: quantize_recovering(src, work / f"{kind}.onnx",
                                      replace(recipe, unsigned_activations=kind is OnnxActivations.UINT8))
            for kind in (OnnxActivations.INT8, OnnxActivations.UINT8)}
    results = list(measure([baseline, *(d.path for d in runs.values())]))
    base_p50 = float(results[0].latency.p50)
    cands = []
    for (kind, d), res in zip(runs.items(), results[1:], strict=True):
        accuracy = score(d.path) if score is not None else None
        cands.append(Candidate(kind, d.path, float(res.latency.p50), accuracy, _within(accuracy, max_drop), d.notes))
    chosen, reason = pick(cands)
    shutil.copyfile(chosen.path, dst)
    shutil.rmtree(work, ignore_errors=True)
    chosen = replace(chosen, path=dst)
    cands = [chosen if c.activations is chosen.activations else c for c in cands]
    timings = ", ".join(f"{LABEL[c.activations]} {c.p50_ms:.4g} ms ({(c.p50_ms or 0) / base_p50:.2f}x float)"
                        for c in cands)
    note = f"int8 activations: {LABEL[chosen.activations]} kept ({reason}); p50 {timings}; float {base_p50:.4g} ms"
    return ActivationChoice(chosen, tuple(cands), base_p50, True, note)


def pick(cands: Sequence[Candidate]) -> tuple[Candidate, str]:
    """The fastest candidate within the accuracy budgets; if none is, the fastest of those tied with the most
    accurate within one eval sample. With the reason."""
    ok = [c for c in cands if c.within_budget]
    if ok:
        chosen = min(ok, key=_p50)
        return chosen, ("the faster" if len(ok) == len(cands) else "the only one within the accuracy budgets")
    best = min(cands, key=_drop)
    level = [c for c in cands if c is best or _ties(c, best)]
    chosen = min(level, key=_p50)
    if len(level) > 1:
        return chosen, "none meets the accuracy budgets; tied on accuracy within one eval sample, kept the faster"
    return chosen, "none meets the accuracy budgets; kept the most accurate"


def _p50(c: Candidate) -> float:
    return float("inf") if c.p50_ms is None else c.p50_ms


def _ties(a: Candidate, b: Candidate) -> bool:
    if a.accuracy is None or b.accuracy is None or not a.accuracy.outputs or not b.accuracy.outputs:
        return a.accuracy is None and b.accuracy is None
    from edgeopt.validate.metrics import tied

    return tied(a.accuracy.outputs, b.accuracy.outputs, min(a.accuracy.samples, b.accuracy.samples))


def _within(accuracy: AccuracyResult | None, max_drop: float | None) -> bool:
    """Within the budgets of every output's metric when the score checked them; else within max_drop."""
    if accuracy is not None and accuracy.met is not None:
        return accuracy.met
    return accuracy is None or accuracy.drop is None or max_drop is None or accuracy.drop <= max_drop + 1e-9


def _drop(c: Candidate) -> float:
    """How far from the float model, on the primary output's metric (larger is worse)."""
    if c.accuracy is None:
        return float("inf")
    if c.accuracy.primary is not None:
        from edgeopt.validate.metrics import badness

        return badness(c.accuracy.primary)
    return float("inf") if c.accuracy.drop is None else c.accuracy.drop
