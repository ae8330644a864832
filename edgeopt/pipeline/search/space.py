"""The search space of a profile's [search] section: typed dimensions, and a trial's choices applied to the profile."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeopt.errors import ProfileError
from edgeopt.profiles.schema import (
    CalibrationMethod,
    ClusterSection,
    Fallback,
    IOType,
    Objective,
    OutputFormat,
    PartialSection,
    Profile,
    QatSection,
    Scheme,
)
from edgeopt.vocabulary import DeviceClass

INT_SCHEMES = (Scheme.INT8, Scheme.INT16X8)

# Parameter names in the Optuna study (and search.json): one per [search] key.
MACS, CLUSTERS, SCHEME, PER_CHANNEL, CALIBRATION, KEEP_FLOAT, QAT = (
    "macs_reduction", "clusters", "scheme", "per_channel", "calibration_method", "keep_float_top", "qat")


@dataclass(frozen=True)
class Dimension:
    """One searched key: its choices, and the schemes it applies to (None: every scheme)."""

    name: str
    choices: tuple[Any, ...]
    only_for: tuple[Scheme, ...] | None = None

    def applies(self, scheme: Scheme) -> bool:
        return self.only_for is None or scheme in self.only_for


@dataclass(frozen=True)
class Space:
    """The typed space: dimensions in a fixed order, objectives (first = primary)."""

    dimensions: tuple[Dimension, ...]
    objectives: tuple[Objective, ...]
    base_scheme: Scheme

    @property
    def size(self) -> int:
        n = 1
        for d in self.dimensions:
            n *= len(d.choices)
        return n

    def as_json(self) -> dict[str, Any]:
        return {"objectives": [str(o) for o in self.objectives],
                "dimensions": {d.name: [_plain(c) for c in d.choices] for d in self.dimensions}}

    def sha256(self) -> str:
        """What a study was created for: the same hash means the same trials make sense in it."""
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()

    def needs_training(self) -> bool:
        """Pruning and QAT trials fine-tune (clustering only with [cluster] epochs, which the build checks)."""
        return any(d.name in (MACS, QAT) and any(d.choices) for d in self.dimensions)

    def needs_ranking(self) -> bool:
        return any(d.name == KEEP_FLOAT and any(d.choices) for d in self.dimensions)

    def grid(self) -> dict[str, list[Any]]:
        return {d.name: [_plain(c) for c in d.choices] for d in self.dimensions}


def _plain(v: Any) -> Any:
    return str(v) if isinstance(v, Scheme | CalibrationMethod) else v


def space_of(profile: Profile) -> Space:
    """The profile's [search] as a Space; no [search], or a space of one point, is bad input (exit 2)."""
    sr = profile.search
    if sr is None:
        msg = (f"profile '{profile.name}' has no [search] section; add one (e.g. schemes = [\"int8\", \"float16\"], "
               "objectives = [\"accuracy_drop\", \"bytes\"]) or pick a target that has one (mobile-cpu, edge-server, nrf52840)")
        raise ProfileError(msg)
    ints = tuple(s for s in (sr.schemes or (profile.quantize.scheme,)) if s in INT_SCHEMES)
    dims: list[Dimension] = []
    if (macs := sr.macs_values()) is not None:
        dims.append(Dimension(MACS, macs))
    if sr.clusters is not None:
        dims.append(Dimension(CLUSTERS, sr.clusters))
    if sr.schemes is not None:
        dims.append(Dimension(SCHEME, sr.schemes))
    if sr.per_channel is not None:
        dims.append(Dimension(PER_CHANNEL, sr.per_channel, ints))
    if sr.calibration_methods is not None:
        dims.append(Dimension(CALIBRATION, sr.calibration_methods, (Scheme.INT8,)))
    if sr.keep_float_top is not None:
        dims.append(Dimension(KEEP_FLOAT, sr.keep_float_top, (Scheme.INT8,)))
    if sr.qat is not None:
        dims.append(Dimension(QAT, sr.qat, (Scheme.INT8,)))
    space = Space(tuple(dims), sr.objectives, profile.quantize.scheme)
    if space.size < 2:
        msg = (f"profile '{profile.name}': the [search] space has {space.size} point(s); give at least one key two or "
               "more values (e.g. schemes = [\"int8\", \"float16\"])")
        raise ProfileError(msg)
    return space


def apply(profile: Profile, params: Mapping[str, Any], ranking: tuple[str, ...] = ()) -> Profile:
    """The base profile with a trial's choices applied, validated whole (a frozen new Profile).

    `ranking`: layer tensor names, most int8-sensitive first (for keep_float_top)."""
    data = profile.model_dump(mode="python")
    data["search"] = None  # a trial's build is a plain build
    scheme = Scheme(params.get(SCHEME, profile.quantize.scheme))
    q = data["quantize"]
    q["scheme"] = scheme
    for key in ("input_type", "output_type"):  # the I/O type follows the scheme (int8 I/O needs int8, ...)
        io = q[key]
        if io is not IOType.FLOAT32 and scheme not in INT_SCHEMES:
            q[key] = IOType.FLOAT32
        elif scheme is Scheme.INT16X8 and io in (IOType.INT8, IOType.UINT8):
            q[key] = IOType.INT16
        elif scheme is Scheme.INT8 and io is IOType.INT16:
            q[key] = IOType.INT8
    if PER_CHANNEL in params:
        q["per_channel"] = bool(params[PER_CHANNEL])
    if CALIBRATION in params:
        q["calibration_method"] = CalibrationMethod(params[CALIBRATION])
    if MACS in params:
        data["prune"] = {**data["prune"], "macs_reduction": float(params[MACS]), "ratio": 0.0}
        if params[MACS] and profile.prune.epochs == 0:
            data["prune"]["allow_without_finetune"] = True
    if CLUSTERS in params:
        n = int(params[CLUSTERS])
        base = profile.cluster or ClusterSection()
        data["cluster"] = None if n == 0 else {**base.model_dump(mode="python"), "clusters": n}
    if scheme is not Scheme.INT8:
        data["partial"] = None  # accuracy control and keep-float are int8 choices
        data["qat"] = None
    elif KEEP_FLOAT in params:
        top = int(params[KEEP_FLOAT])
        if top == 0:
            data["partial"] = None
        else:
            names = ranking[:top]
            data["partial"] = PartialSection(accuracy_control=False, fallbacks=(Fallback.FLOAT,),
                                             keep_float=tuple(f"^{re.escape(n)}$" for n in names)).model_dump()
    if scheme is Scheme.INT8 and QAT in params:
        data["qat"] = (profile.qat or QatSection()).model_dump() if params[QAT] else None
    try:
        return Profile.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError: a contradiction between the trial and the profile
        from edgeopt.errors import first_line

        msg = f"profile '{profile.name}' with {dict(params)}: {first_line(exc)}"
        raise ProfileError(msg) from None


def bench_needed(profile: Profile, objectives: tuple[Objective, ...]) -> bool:
    """Trials time their artifacts when latency is an objective or a budget (else the budget could not be checked)."""
    b = profile.budgets
    return Objective.P50_LATENCY in objectives or b.max_latency_ms is not None or b.max_latency_ratio is not None


def is_mcu(profile: Profile) -> bool:
    return profile.device_class is DeviceClass.EMBEDDED_MCU and profile.convert.format is OutputFormat.TFLITE
