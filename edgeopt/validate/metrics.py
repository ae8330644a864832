"""Which metric scores each output, the metrics themselves, and what each one's budget means.

`auto` (the default) scores outputs that look like class scores by top-1 against the labels (the first (N, classes
>= 2) output, when eval data has labels) or by agreement with the float model's top-1, and every other output (a
regression value, a map, a sequence, logits without labels) by its SNR against the float model's output. Without
labels an (N, k >= 2) output counts as class scores when the float model's values on the eval data are
probabilities (each row >= 0, summing to 1: softmax); a 2-value regression head is not. Budgets, per metric:
top1 / agreement: `max_accuracy_drop` (points); snr: `min_snr_db` (dB); cosine: `min_cosine`; max-abs:
`max_abs_error`. An output whose metric has no budget set is reported, not checked.

Floors: `min_snr_db` and `min_cosine`, when set, also apply to every output whatever its metric (agreement alone
never decides: an int8 classifier whose output is all zeros agrees with a near-uniform float output), cosine only
on outputs of more than one value per sample. An output that is constant over the eval data where the float
model's varies (collapsed int8) always fails. An output under FAR_BELOW_SNR_DB is noted as far below float.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgeopt.data.tensors import IOSpec
from edgeopt.errors import InputError
from edgeopt.vocabulary import AccuracyMetric

SNR_CAP_DB = 200.0  # identical outputs report this instead of infinity
FAR_BELOW_SNR_DB = 20.0  # an output under this SNR is noted as far below the float model (floors fail it lower)
FLOORS = ("min_snr_db", "min_cosine")  # [budgets] keys checked on every output, whatever its metric
COLLAPSED = "constant_output"  # the check an int8 output constant over the eval data fails (float varies)
CLASS_METRICS = (AccuracyMetric.TOP1, AccuracyMetric.AGREEMENT)

# metric -> (budget key in [budgets], unit, True when the figure must stay at or below the limit)
BUDGETS: dict[AccuracyMetric, tuple[str, str, bool]] = {
    AccuracyMetric.TOP1: ("max_accuracy_drop", "points", True),
    AccuracyMetric.AGREEMENT: ("max_accuracy_drop", "points", True),
    AccuracyMetric.SNR: ("min_snr_db", "dB", False),
    AccuracyMetric.COSINE: ("min_cosine", "", False),
    AccuracyMetric.MAX_ABS: ("max_abs_error", "", True),
}

MetricSetting = AccuracyMetric | Sequence[AccuracyMetric] | Mapping[str, AccuracyMetric]


def looks_like_classes(shape: Sequence[int | None]) -> bool:
    """(N, classes) with classes >= 2: softmax-ish scores."""
    return len(shape) == 2 and shape[1] is not None and shape[1] >= 2


def probabilities(ref: np.ndarray) -> bool:
    """Rows of non-negative values summing to 1 (a softmax)."""
    r = ref.reshape(ref.shape[0], -1).astype(np.float64)
    return bool(r.size) and bool(np.all(r >= -1e-6)) and bool(np.allclose(r.sum(1), 1.0, atol=1e-3))


def resolve_metrics(setting: MetricSetting, outputs: Sequence[IOSpec], labelled: bool,
                    references: Sequence[np.ndarray] | None = None) -> tuple[AccuracyMetric, ...]:
    """The concrete metric of every output; InputError (one line) for a setting or metric that does not fit.

    `references`: the float model's outputs on the eval data (auto without labels asks them for softmax rows);
    without them an (N, k >= 2) output counts as class scores."""
    names = [o.name for o in outputs]
    if isinstance(setting, AccuracyMetric | str):
        asked = [AccuracyMetric(setting)] * len(outputs)
    elif isinstance(setting, Mapping):
        stray = [k for k in setting if k not in names]
        if stray:
            msg = (f"metric set for output(s) {', '.join(stray)}, which the model does not have (its outputs: "
                   f"{', '.join(names)})")
            raise InputError(msg)
        asked = [AccuracyMetric(setting.get(n, AccuracyMetric.AUTO)) for n in names]
    else:
        asked = [AccuracyMetric(m) for m in setting]
        if len(asked) != len(outputs):
            msg = (f"{len(asked)} metric(s) given for {len(outputs)} output(s) ({', '.join(names)}); give one per "
                   "output, or a table by output name")
            raise InputError(msg)
    out: list[AccuracyMetric] = []
    labels_used = any(m is AccuracyMetric.TOP1 for m in asked)
    for k, (spec, m) in enumerate(zip(outputs, asked, strict=True)):
        if m is AccuracyMetric.AUTO:
            if looks_like_classes(spec.shape) and labelled and not labels_used:
                m = AccuracyMetric.TOP1
                labels_used = True
            elif looks_like_classes(spec.shape) and (references is None or probabilities(references[k])):
                m = AccuracyMetric.AGREEMENT
            elif labelled and not labels_used and len(outputs) == 1 and len(spec.shape) == 2 and spec.shape[1] == 1:
                m = AccuracyMetric.TOP1  # one logit / probability with class labels: a binary classifier
                labels_used = True
            else:
                m = AccuracyMetric.SNR
        check_fits(m, spec, labelled)
        out.append(m)
    if sum(m is AccuracyMetric.TOP1 for m in out) > 1:
        msg = "top1 is asked for several outputs, but eval labels y score one output; use agreement for the others"
        raise InputError(msg)
    return tuple(out)


def check_fits(metric: AccuracyMetric, spec: IOSpec, labelled: bool) -> None:
    shape = "(N, " + ", ".join("?" if d is None else str(d) for d in spec.shape[1:]) + ")"
    if metric in CLASS_METRICS:
        ok = len(spec.shape) == 2 and (spec.shape[1] is None or spec.shape[1] >= (1 if metric is AccuracyMetric.TOP1
                                                                                  else 2))
        if not ok:
            msg = (f"metric {metric} does not fit output '{spec.name}' of shape {shape}: it scores class scores "
                   "(N, classes); use snr, cosine or max-abs for it")
            raise InputError(msg)
    if metric is AccuracyMetric.TOP1 and not labelled:
        msg = f"metric top1 for output '{spec.name}' needs labels: give eval data with y, or use agreement"
        raise InputError(msg)


@dataclass(frozen=True)
class OutputScore:
    """One output of an artifact against the float model."""

    name: str
    metric: AccuracyMetric
    value: float  # the metric: top-1 %, agreement %, SNR dB, cosine similarity or max abs error
    reference_value: float | None  # top1: the float model's top-1 %; None otherwise
    drop: float | None  # top1 / agreement: points lost against the float model; None for the others
    agreement: float | None  # percent of samples with the float model's top-1 (class-score outputs)
    snr_db: float
    cosine: float | None  # None for an output of one value per sample (its cosine is only a sign)
    max_abs: float
    std: float = 0.0  # the output's standard deviation over the eval data
    reference_std: float = 0.0  # the float model's

    @property
    def figure(self) -> float:
        """The number its budget is checked on: points dropped for top1/agreement, else the metric itself."""
        return self.drop if self.drop is not None else self.value

    @property
    def collapsed(self) -> bool:
        """Constant over the eval data where the float model's output varies (an int8 range that collapsed)."""
        return self.std == 0.0 and self.reference_std > 0.0


def score(name: str, metric: AccuracyMetric, out: np.ndarray, ref: np.ndarray, labels: np.ndarray | None) -> OutputScore:
    n = out.shape[0]
    o, r = out.reshape(n, -1).astype(np.float64), ref.reshape(n, -1).astype(np.float64)
    # top-1 agreement means something for (N, k) scores only, not for a flattened map or sequence
    agree = float(100.0 * np.mean(o.argmax(1) == r.argmax(1))) if out.ndim == 2 and o.shape[1] > 1 else None
    snr, mx = snr_db(r, o), max_abs(r, o)
    cos = cosine(r, o) if o.shape[1] > 1 or metric is AccuracyMetric.COSINE else None
    spread = (spread_of(o), spread_of(r))
    if metric is AccuracyMetric.TOP1:
        assert labels is not None
        value, ref_value = top1(o, labels), top1(r, labels)
        return OutputScore(name, metric, value, ref_value, round(ref_value - value, 6), agree, snr, cos, mx, *spread)
    if metric is AccuracyMetric.AGREEMENT:
        a = agree if agree is not None else float(100.0 * np.mean(np.isclose(o, r, rtol=0.05, atol=0.05)))
        return OutputScore(name, metric, a, None, round(100.0 - a, 6), agree, snr, cos, mx, *spread)
    figure = {AccuracyMetric.SNR: snr, AccuracyMetric.COSINE: cos, AccuracyMetric.MAX_ABS: mx}[metric]
    assert figure is not None  # cosine is computed whenever it is the metric
    return OutputScore(name, metric, figure, None, None, agree, snr, cos, mx, *spread)


def spread_of(x: np.ndarray) -> float:
    """Standard deviation over every value; 0.0 exactly when all are equal (rounding noise of a mean is not
    spread: a constant array of 0.1 has a float std of ~1e-17)."""
    if x.size == 0 or bool(np.all(x == x.flat[0])):
        return 0.0
    return float(np.std(x))


def meets(s: OutputScore, limit: float) -> bool:
    at_most = BUDGETS[s.metric][2]
    return s.figure <= limit + 1e-9 if at_most else s.figure >= limit - 1e-9


def badness(s: OutputScore) -> float:
    """Larger is worse, for choosing the best of several candidates on one metric."""
    return s.figure if BUDGETS[s.metric][2] else -s.figure


def tie_margin(metric: AccuracyMetric, samples: int) -> float:
    """How far apart two candidates' figures on `metric` may be and still tie "within one eval sample": one sample
    of top-1/agreement (100/n points); for SNR, the noise energy of one sample's share (10*log10(1 + 1/n) dB); for
    cosine (a mean over samples) and max-abs (relative), 1/n."""
    n = max(samples, 1)
    if metric in CLASS_METRICS:
        return 100.0 / n + 1e-9
    if metric is AccuracyMetric.SNR:
        return float(10.0 * np.log10(1.0 + 1.0 / n)) + 1e-9
    return 1.0 / n + 1e-12


def tied(a: Sequence[OutputScore], b: Sequence[OutputScore], samples: int) -> bool:
    """Every output's figure (points dropped, or the metric) of `a` within one eval sample of `b`'s."""
    def close(x: OutputScore, y: OutputScore) -> bool:
        margin = tie_margin(x.metric, samples)
        if x.metric is AccuracyMetric.MAX_ABS:
            margin *= max(abs(x.figure), abs(y.figure))
        return x.metric is y.metric and abs(x.figure - y.figure) <= margin

    return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))


def snr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    ref = reference.astype(np.float64).ravel()
    err = ref - actual.astype(np.float64).ravel()
    noise = float(np.sum(err * err))
    signal = float(np.sum(ref * ref))
    if noise == 0.0:
        return SNR_CAP_DB
    if signal == 0.0:
        return -SNR_CAP_DB
    return float(min(SNR_CAP_DB, 10.0 * np.log10(signal / noise)))


def cosine(reference: np.ndarray, actual: np.ndarray) -> float:
    """Mean over samples of the cosine similarity (1.0 for two all-zero samples)."""
    r = reference.reshape(reference.shape[0], -1).astype(np.float64)
    a = actual.reshape(actual.shape[0], -1).astype(np.float64)
    num = np.sum(r * a, axis=1)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(a, axis=1)
    both_zero = (np.linalg.norm(r, axis=1) == 0) & (np.linalg.norm(a, axis=1) == 0)
    sim = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(both_zero, 1.0, 0.0))
    return round(float(np.mean(sim)), 9)


def max_abs(reference: np.ndarray, actual: np.ndarray) -> float:
    return float(np.max(np.abs(reference.astype(np.float64) - actual.astype(np.float64)))) if reference.size else 0.0


def top1(outputs: np.ndarray, labels: np.ndarray) -> float:
    outputs = outputs.reshape(outputs.shape[0], -1)
    if outputs.shape[1] == 1:  # binary classifier with one logit/probability
        pred = (outputs[:, 0] > (0.5 if outputs.min() >= 0 else 0.0)).astype(np.int64)
    else:
        pred = outputs.argmax(axis=1)
    return float(100.0 * np.mean(pred == labels.reshape(-1).astype(np.int64)))


@dataclass(frozen=True)
class AccuracyTarget:
    """The metric of every output and the budget limit it is checked on (None: reported, not checked), and the
    floors every output is checked on besides (FLOORS; None: off)."""

    names: tuple[str, ...]
    metrics: tuple[AccuracyMetric, ...]
    limits: tuple[float | None, ...]
    min_snr_db: float | None = None
    min_cosine: float | None = None

    @property
    def checked(self) -> bool:
        return any(v is not None for v in (*self.limits, self.min_snr_db, self.min_cosine))


@dataclass(frozen=True)
class Check:
    """One budget checked on one output: its [budgets] key (or COLLAPSED), the limit and the measured figure."""

    output: str
    budget: str
    limit: float
    actual: float
    unit: str
    ok: bool


def target_for(outputs: Sequence[IOSpec], metrics: Sequence[AccuracyMetric], budgets: object) -> AccuracyTarget:
    """Limits from a profile's [budgets] (attributes named as in BUDGETS) for each output's metric, and the floors."""
    limits = tuple(getattr(budgets, BUDGETS[m][0], None) for m in metrics)
    return AccuracyTarget(tuple(o.name for o in outputs), tuple(metrics), limits,
                          getattr(budgets, "min_snr_db", None), getattr(budgets, "min_cosine", None))


def checks(s: OutputScore, limit: float | None, target: AccuracyTarget) -> tuple[Check, ...]:
    """Every check of one output: its metric's budget (`limit`), the floors its metric does not already check,
    and a collapse (constant where the float output varies), which always fails."""
    out = []
    if limit is not None:
        key, unit, _ = BUDGETS[s.metric]
        out.append(Check(s.name, key, limit, s.figure, unit, meets(s, limit)))
    own = BUDGETS[s.metric][0] if limit is not None else None
    if target.min_snr_db is not None and own != "min_snr_db":
        out.append(Check(s.name, "min_snr_db", target.min_snr_db, s.snr_db, "dB", s.snr_db >= target.min_snr_db - 1e-9))
    if target.min_cosine is not None and own != "min_cosine" and s.cosine is not None:
        out.append(Check(s.name, "min_cosine", target.min_cosine, s.cosine, "", s.cosine >= target.min_cosine - 1e-9))
    if s.collapsed:
        out.append(Check(s.name, COLLAPSED, round(s.reference_std, 6), 0.0, "std", False))  # limit: the float's std
    return tuple(out)


def all_checks(scores: Sequence[OutputScore], target: AccuracyTarget) -> tuple[Check, ...]:
    return tuple(c for s, lim in zip(scores, target.limits, strict=True) for c in checks(s, lim, target))


def met(scores: Sequence[OutputScore], target: AccuracyTarget) -> bool | None:
    """Every output meets its metric's limit and the floors, and none collapsed; None when nothing is checked
    (and nothing collapsed)."""
    found = all_checks(scores, target)
    if not found and not target.checked:
        return None
    return all(c.ok for c in found)


def far_below(s: OutputScore) -> str | None:
    """A warning when an output is far below the float model's (SNR under FAR_BELOW_SNR_DB, or collapsed)."""
    if s.snr_db >= FAR_BELOW_SNR_DB and not s.collapsed:
        return None
    cos = "" if s.cosine is None else f", cosine {s.cosine:.3g}"
    flat = "; its values are all one value where the float model's vary" if s.collapsed else ""
    return f"output '{s.name}' is far below the float model: SNR {s.snr_db:.1f} dB{cos}{flat}"


def small_eval_note(samples: int, target: AccuracyTarget) -> str | None:
    """The eval set cannot resolve a points budget when one flipped sample moves top-1/agreement by more."""
    limits = [lim for m, lim in zip(target.metrics, target.limits, strict=True) if m in CLASS_METRICS and lim is not None]
    if not limits or samples <= 0:
        return None
    step, budget = 100.0 / samples, min(limits)
    if step <= budget:
        return None
    need = int(np.ceil(100.0 / budget)) if budget > 0 else None
    more = f"; give at least {need} eval samples to resolve it" if need else ""
    return (f"eval set too small for the budget: with {samples} samples one flipped sample moves top-1/agreement "
            f"by {step:.3g} points, more than max_accuracy_drop {budget:g}{more}")


def metric_setting(values: Sequence[str]) -> MetricSetting:
    """`--metric` values: METRIC (every output), several METRICs (one per output) or NAME=METRIC."""
    def one(v: str) -> AccuracyMetric:
        try:
            return AccuracyMetric(v.strip())
        except ValueError:
            msg = f"--metric {v!r}: unknown metric; use one of {', '.join(m.value for m in AccuracyMetric)}"
            raise InputError(msg) from None

    named = [v for v in values if "=" in v]
    if named and len(named) != len(values):
        msg = "--metric: give either NAME=METRIC for every value or plain metrics, not both"
        raise InputError(msg)
    if named:
        return {k.strip(): one(m) for k, m in (v.split("=", 1) for v in values)}
    return one(values[0]) if len(values) == 1 else tuple(one(v) for v in values)
