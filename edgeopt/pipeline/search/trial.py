"""One trial = one real build (edgeopt.pipeline.build, the same code path as `edgeopt build`) in OUT/trials/NNNN/."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError, OutputError
from edgeopt.pipeline.build import BuildRequest, build
from edgeopt.pipeline.search.space import SCHEME, Space, apply, bench_needed
from edgeopt.profiles.schema import Objective, Profile
from edgeopt.report import schema as rs

SURPLUS = "surplus"  # user attr of a trial asked after the study already had its N trials (pruned, never built)
REPEAT = "repeat_of"  # user attr of a grid point whose effective choices a finished trial already built (pruned)
MANIFEST_SHA256 = "manifest_sha256"  # user attrs of a finished trial: what OUT/best and the final round check
ARTIFACT_SHA256 = "artifact_sha256"


@dataclass(frozen=True)
class TrialContext:
    """Everything a worker needs to run trials (picklable: it crosses to worker processes as JSON)."""

    model: Path
    target: str
    out: Path
    train: Path | None
    eval: Path | None
    calib: Path | None
    trials: int  # COMPLETE trials the study stops at
    ranking: tuple[str, ...] = ()  # tensor names, most int8-sensitive first (keep_float_top)
    unsafe_load: bool = False
    skip_repeats: bool = False  # grid: a point whose choices equal a finished trial's is not built again


def trial_dir(out: Path, number: int) -> Path:
    return Path(out) / "trials" / f"{number:04d}"


def suggest(trial: Any, space: Space) -> dict[str, Any]:
    """The trial's choices: the scheme first, then the dimensions that apply to it (define-by-run)."""
    params: dict[str, Any] = {}
    dims = sorted(space.dimensions, key=lambda d: d.name != SCHEME)
    scheme = space.base_scheme
    for d in dims:
        if d.name != SCHEME and not d.applies(scheme):
            continue
        params[d.name] = trial.suggest_categorical(d.name, [space.grid()[d.name][i] for i in range(len(d.choices))])
        if d.name == SCHEME:
            from edgeopt.profiles.schema import Scheme

            scheme = Scheme(params[d.name])
    return params


def objective_value(report: rs.Report, objective: Objective) -> float:
    """One objective of a build, from its typed report; a figure the build did not measure is an internal error."""
    opt = report.optimized
    mcu = report.stages.mcu
    value: float | None = None
    if objective is Objective.ACCURACY_DROP and opt.accuracy is not None:
        acc = opt.accuracy  # no labels: points of top-1 agreement lost; an output scored by SNR has neither
        value = acc.drop if acc.drop is not None else None if acc.agreement is None else 100.0 - acc.agreement
    elif objective is Objective.BYTES:
        value = float(opt.artifact.bytes)
    elif objective is Objective.P50_LATENCY and opt.latency_ms is not None:
        value = opt.latency_ms.p50
    elif objective is Objective.ARENA and mcu is not None:
        value = float(mcu.arena_bytes)
    elif objective is Objective.FLASH and mcu is not None:
        value = float(mcu.flash_bytes)
    elif objective is Objective.DEVICE_LATENCY:
        fw = report.stages.firmware
        if fw is not None and fw.device_latency is not None:
            value = fw.device_latency.median_ms
        elif mcu is not None and mcu.device_latency is not None:
            value = mcu.device_latency.estimate_ms
    elif objective is Objective.NPU_LATENCY and report.stages.npu is not None:
        value = report.stages.npu.latency_ms  # Vela's estimate, the NPU part (build on a profile with [npu])
    if value is None:
        msg = f"the build did not measure {objective} (see its report.json notes)"
        raise EdgeoptError(msg)
    return float(value)


def constraints(report: rs.Report) -> list[float]:
    """Optuna's constraint values: > 0 breaks a budget (actual over limit, relative), <= 0 within it."""
    out = [((b.actual - b.limit) / b.limit if b.limit else b.actual) for b in report.budgets
           if b.ok is not None and b.actual is not None]
    return out or [0.0]


def run_trial(trial: Any, ctx: TrialContext, space: Space, base: Profile, lock: Path) -> tuple[float, ...]:
    """Build the trial's profile into OUT/trials/NNNN/ and return its objectives. Budget failures still complete
    (they are constraints); a build that cannot be made raises (the trial FAILs, its error kept)."""
    import optuna
    from optuna.trial import TrialState

    mine = trial.number
    taken = [t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
             if t.number < mine]
    if len(taken) >= ctx.trials:  # another worker took the last slot first: this one is never built
        trial.set_user_attr(SURPLUS, True)
        msg = f"the study already has {ctx.trials} trials"
        raise optuna.TrialPruned(msg)
    params = suggest(trial, space)
    if ctx.skip_repeats:  # a grid dimension that does not apply to the scheme makes grid points that are the same build
        same = next((t.number for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                     if t.params == params), None)
        if same is not None:
            trial.set_user_attr(REPEAT, same)
            msg = f"the same choices as trial {same}"
            raise optuna.TrialPruned(msg)
    profile = apply(base, params, ctx.ranking)
    folder = trial_dir(ctx.out, mine)
    if folder.is_symlink():  # the build would write through it, elsewhere
        msg = f"{folder} is a symbolic link; refused: a trial is built in OUT/trials itself (remove it)"
        trial.set_user_attr("error", msg)
        raise OutputError(msg)
    trial.set_user_attr("folder", str(folder.resolve()))
    trial.set_user_attr("host", socket.gethostname())
    try:
        result = build(BuildRequest(model=ctx.model, target=ctx.target, out=folder, calib=ctx.calib, eval=ctx.eval,
                                    train=ctx.train, unsafe_load=ctx.unsafe_load, profile=profile,
                                    benchmark=bench_needed(base, space.objectives), timing_lock=lock, force=True,
                                    command_line=("edgeopt", "search", f"trial {mine}")))
    except EdgeoptError as exc:
        from edgeopt.errors import first_line

        trial.set_user_attr("error", first_line(exc))
        raise
    report = result.report
    values = tuple(objective_value(report, o) for o in space.objectives)
    trial.set_user_attr("constraints", constraints(report))
    trial.set_user_attr("feasible", result.ok)
    trial.set_user_attr("violations", list(result.failures()))
    trial.set_user_attr("bytes", report.optimized.artifact.bytes)
    trial.set_user_attr("artifact", report.optimized.artifact.path)
    _record_hashes(trial, folder, report.optimized.artifact.path)
    trial.set_user_attr("baseline_artifact", report.baseline.artifact.path)
    acc = report.optimized.accuracy
    trial.set_user_attr("accuracy", None if acc is None else acc.value)
    lat = report.optimized.latency_ms
    trial.set_user_attr("p50_ms", None if lat is None else lat.p50)
    return values


def _record_hashes(trial: Any, folder: Path, artifact: str) -> None:
    """Store the sha256 of the trial's manifest.json (which lists the sha256 of every file the build wrote) and of
    its artifact: OUT/best and the final timing round read back only files with these bytes (trial_files.py)."""
    import hashlib
    import json

    from edgeopt.input_files import read_regular
    from edgeopt.pipeline.manifest import MANIFEST, MAX_MANIFEST_BYTES

    data = read_regular(folder / MANIFEST, "manifest", limit=MAX_MANIFEST_BYTES)
    trial.set_user_attr(MANIFEST_SHA256, hashlib.sha256(data).hexdigest())
    trial.set_user_attr(ARTIFACT_SHA256, json.loads(data)["artifacts"][artifact]["sha256"])
