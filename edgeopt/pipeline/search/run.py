"""`edgeopt search`: check the inputs, open the study, run the workers, then the front, the final timing round,
OUT/best and OUT/search.json."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from edgeopt.atomic import open_lock_file, write_text_atomic
from edgeopt.errors import EdgeoptError, InputError, OutputError
from edgeopt.pipeline.search import results as sr
from edgeopt.pipeline.search.front import Point, choose, pareto_front
from edgeopt.pipeline.search.space import Space, bench_needed, space_of
from edgeopt.pipeline.search.study import (
    DB_NAME,
    StudyIdentity,
    default_url,
    fail_abandoned,
    local_db,
    make_sampler,
    open_storage,
    open_study,
    optuna_module,
    shown_url,
)
from edgeopt.pipeline.search.trial import SURPLUS, TrialContext, trial_dir
from edgeopt.pipeline.search.trial_files import check_file, copy_trial, local_trial
from edgeopt.pipeline.search.worker import WorkerSpec, run_worker, too_many_failures
from edgeopt.profiles import load_profile
from edgeopt.profiles.schema import Objective, Profile
from edgeopt.vocabulary import SamplerName

DEFAULT_STUDY = "edgeopt-search"
TIMING_LOCK = ".timing-lock"
SEARCH_LOCK = ".search-lock"
MAX_WORKERS = 64
MAX_TRIALS = 10_000  # every trial is a build (seconds to minutes each) and a row the sampler reads on every ask


@dataclass(frozen=True)
class SearchRequest:
    model: Path
    target: str
    out: Path
    trials: int
    train: Path | None = None
    eval: Path | None = None
    calib: Path | None = None
    workers: int = 1
    resume: bool = False
    storage: str | None = None  # SQLAlchemy URL; None = sqlite in OUT/search.db
    study: str | None = None
    sampler: SamplerName = SamplerName.NSGA2
    seed: int | None = None
    unsafe_load: bool = False


@dataclass(frozen=True)
class SearchStatus:
    """Progress: counts over the whole study (every worker, every machine), the best feasible trial so far, and the
    line of the trial that just finished (None on a poll that saw none)."""

    total: int
    done: int
    running: int
    failed: int
    best: str | None
    finished: str | None = None


@dataclass(frozen=True)
class SearchOutcome:
    result: sr.SearchResult
    out: Path
    json_path: Path
    html_path: Path | None


def _noop(_: SearchStatus) -> None:
    return None


def search(req: SearchRequest, progress: Callable[[SearchStatus], None] = _noop) -> SearchOutcome:
    started = time.perf_counter()
    optuna_module()  # exit 2 with the install line before anything else
    if req.trials < 1:
        msg = f"--trials must be 1 or more (got {req.trials})"
        raise InputError(msg)
    if req.trials > MAX_TRIALS:
        msg = f"--trials {req.trials:,} is over the cap of {MAX_TRIALS:,} trials per search; ask for {MAX_TRIALS:,} or fewer"
        raise InputError(msg)
    if not 1 <= req.workers <= MAX_WORKERS:
        msg = f"--workers must be 1 to {MAX_WORKERS} (got {req.workers})"
        raise InputError(msg)
    resolved = load_profile(req.target)
    profile = resolved.profile
    space = space_of(profile)
    ctx = _context(req, profile, space)
    identity = StudyIdentity(_model_sha256(req.model), space.sha256(), f"{profile.name}:{resolved.sha256[:16]}")
    out = Path(req.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"--out {out}: cannot create the folder ({exc.strerror}); choose another --out"
        raise OutputError(msg) from None
    with _search_lock(out):
        url = req.storage or default_url(out)
        local = req.storage is None
        held = local and local_db(out, create=False)  # a link, FIFO or hard link named search.db: exit 2 here
        if local and not req.resume and held:
            msg = f"{out} already holds a search ({DB_NAME}); --resume continues it, or choose another --out"
            raise InputError(msg)
        if local and req.resume and not held:
            msg = f"--resume: {out} holds no search ({DB_NAME} missing); run without --resume to start one"
            raise InputError(msg)
        if local:
            local_db(out, create=True)  # SQLite then opens the regular file made here, not a link planted later
        lock = out / TIMING_LOCK
        if bench_needed(profile, space.objectives):
            os.close(open_lock_file(lock))  # a planted link is refused before any trial, nothing made at its target
        storage = open_storage(url)
        name = req.study or DEFAULT_STUDY
        study = open_study(storage, name, identity, len(space.objectives),
                           make_sampler(req.sampler, space, req.seed, req.trials), create=not (local and req.resume))
        notes: list[str] = []
        if local and req.resume and (abandoned := fail_abandoned(study, storage))[0]:
            n, again = abandoned
            notes.append(f"--resume: {n} trial(s) left running by a process that died were marked FAIL; {again} "
                         "retried with the same choices (the others had not drawn theirs yet)")
        ctx = _ranking(study, ctx, space, req)
        _own_folder(out / "trials")  # trials are built in OUT, never through a link to elsewhere
        spec = WorkerSpec(ctx, url, name, req.sampler, req.seed, lock)
        _run_workers(spec, req.workers, study, progress)
        return _finish(req, out, profile, space, study, identity, url, name, lock, notes, started, ctx.ranking)


def _context(req: SearchRequest, profile: Profile, space: Space) -> TrialContext:
    from edgeopt.data.datasets import check_data_path, sibling
    from edgeopt.load.formats import check_model_path

    check_model_path(req.model)
    for given, role in ((req.calib, "calibration"), (req.eval, "eval"), (req.train, "train")):
        if given is not None:
            check_data_path(given, role)
    evalset = req.eval or sibling(req.model, "eval")
    if evalset is None:
        msg = "edgeopt search measures accuracy drop in every trial: give --eval data.npz (x, y)"
        raise InputError(msg)
    train = req.train or sibling(req.model, "train")
    if train is None and space.needs_training():
        msg = (f"the [search] space of '{profile.name}' prunes or trains (QAT): give --train data.npz (x, y) "
               "for the fine-tuning")
        raise InputError(msg)
    from edgeopt.pipeline.search.space import INT_SCHEMES, SCHEME

    schemes = next((d.choices for d in space.dimensions if d.name == SCHEME), (profile.quantize.scheme,))
    if any(s in INT_SCHEMES for s in schemes) and (req.calib or sibling(req.model, "calibration")) is None:
        msg = (f"the [search] space of '{profile.name}' has integer schemes ({', '.join(map(str, schemes))}), which "
               "calibrate: give --calib data.npz (array x)")
        raise InputError(msg)
    return TrialContext(model=Path(req.model).resolve(), target=req.target if not str(req.target).endswith(".toml")
                        else str(Path(req.target).resolve()), out=Path(req.out).resolve(),
                        train=None if req.train is None else Path(req.train).resolve(),
                        eval=None if req.eval is None else Path(req.eval).resolve(),
                        calib=None if req.calib is None else Path(req.calib).resolve(), trials=req.trials,
                        unsafe_load=req.unsafe_load, skip_repeats=req.sampler is SamplerName.GRID)


def _model_sha256(model: Path) -> str:
    from edgeopt.pipeline.manifest import sha256_path

    return sha256_path(Path(model))


@contextmanager
def _search_lock(out: Path) -> Iterator[None]:
    """One `edgeopt search` per OUT (the kernel drops the lock when its holder dies, so --resume after a kill works)."""
    import fcntl

    fd = open_lock_file(out / SEARCH_LOCK)  # a planted symlink, FIFO or hard link is refused (exit 2)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            msg = f"another edgeopt search is running in {out}; wait for it, or choose another --out"
            raise InputError(msg) from None
        yield
    finally:
        os.close(fd)


def _ranking(study: Any, ctx: TrialContext, space: Space, req: SearchRequest) -> TrialContext:
    """The int8 sensitivity ranking keep_float_top draws from: measured once per study, shared by every worker."""
    if not space.needs_ranking():
        return ctx
    stored = study.user_attrs.get("ranking")
    if stored is None:
        from edgeopt.data.datasets import sibling
        from edgeopt.quantize.sensitivity import rank, sensitivity_for_file

        calib = req.calib or sibling(req.model, "calibration")
        if calib is None:
            msg = "search.keep_float_top ranks layers by int8 sensitivity on calibration data: give --calib data.npz"
            raise InputError(msg)
        stored = [r.name for r in rank(sensitivity_for_file(Path(req.model), Path(calib), req.unsafe_load))]
        study.set_user_attr("ranking", stored)
    return replace(ctx, ranking=tuple(stored))


# ------------------------------------------------------------------------------------------ workers


def _status(study: Any, total: int, objectives: tuple[Objective, ...], finished: str | None = None) -> SearchStatus:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state is TrialState.COMPLETE]
    feasible = [t for t in done if t.user_attrs.get("feasible")]
    best = None
    if feasible:
        b = min(feasible, key=lambda t: (*t.values, t.number))
        best = f"#{b.number} {objectives[0]}={b.values[0]:.4g}"
    return SearchStatus(total=total, done=len(done), running=sum(t.state is TrialState.RUNNING for t in trials),
                        failed=sum(t.state is TrialState.FAIL for t in trials), best=best, finished=finished)


def trial_line(t: Any, objectives: tuple[Objective, ...]) -> str:
    """One line per finished trial (the piped progress)."""
    params = " ".join(f"{k}={v}" for k, v in t.params.items())
    if t.state.name == "COMPLETE":
        vals = " ".join(f"{o}={v:.4g}" for o, v in zip(objectives, t.values, strict=True))
        ok = "within budget" if t.user_attrs.get("feasible") else "over budget: " + "; ".join(t.user_attrs.get("violations", []))
        return f"trial {t.number:04d} done: {params} -> {vals} ({ok})"
    if t.user_attrs.get(SURPLUS):
        return f"trial {t.number:04d} not run: the study already had its trials"
    if t.user_attrs.get("repeat_of") is not None:
        return f"trial {t.number:04d} not run: {params} is trial {t.user_attrs['repeat_of']:04d} again"
    return f"trial {t.number:04d} {t.state.name.lower()}: {params}: {t.user_attrs.get('error', 'error')}"


def _run_workers(spec: WorkerSpec, workers: int, study: Any, progress: Callable[[SearchStatus], None]) -> None:
    objectives = space_of(load_profile(spec.ctx.target).profile).objectives
    total = spec.ctx.trials
    progress(_status(study, total, objectives))
    if workers == 1:
        run_worker(spec, after_trial=lambda t: progress(_status(study, total, objectives, trial_line(t, objectives))))
        return
    logs = _own_folder(spec.ctx.out / "workers")
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for i in range(workers):
            seed = None if spec.seed is None else spec.seed + i
            path = write_text_atomic(logs / f"worker-{i}.json", replace(spec, seed=seed).to_json())
            log = logs / f"worker-{i}.log"
            with _new_log(log) as fh:
                procs.append((subprocess.Popen([sys.executable, "-m", "edgeopt.pipeline.search.worker", str(path)],
                                               stdout=fh, stderr=subprocess.STDOUT, env=_child_env()), log))
        seen: set[int] = set()
        while True:
            running = any(p.poll() is None for p, _ in procs)
            for t in study.get_trials(deepcopy=False):
                if t.state.is_finished() and t.number not in seen:
                    seen.add(t.number)
                    progress(_status(study, total, objectives, trial_line(t, objectives)))
            if not running:
                break
            time.sleep(1.0)
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
    bad = [(p.returncode, log) for p, log in procs if p.returncode not in (0, None)]
    if bad and not _complete(study, total):
        code, log = bad[0]
        tail = log.read_text("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        msg = f"a search worker exited {code}: {tail[0][:300]} (log: {log})"
        raise EdgeoptError(msg)


def _own_folder(folder: Path) -> Path:
    """OUT/trials or OUT/workers, made here; a symbolic link (or a file) planted under its name is refused."""
    try:
        folder.mkdir()
    except FileExistsError:
        if folder.is_symlink() or not folder.is_dir():
            msg = f"{folder} is a symbolic link or not a folder; refused: edgeopt search writes its own files there (remove it)"
            raise OutputError(msg) from None
    return folder


def _new_log(log: Path) -> BinaryIO:
    """A new worker log: the previous one (ours) is removed first, so no link or hard link planted under its name is
    followed or truncated."""
    with contextlib.suppress(FileNotFoundError):
        log.unlink()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "wb")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _complete(study: Any, total: int) -> bool:
    from optuna.trial import TrialState

    return sum(t.state is TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) >= total


# ------------------------------------------------------------------------------------------ results


def _finish(req: SearchRequest, out: Path, profile: Profile, space: Space, study: Any, identity: StudyIdentity,
            url: str, name: str, lock: Path, notes: list[str], started: float,
            ranking: tuple[str, ...]) -> SearchOutcome:
    from optuna.trial import TrialState

    from edgeopt import __version__

    objectives = tuple(str(o) for o in space.objectives)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    failed = [t for t in trials if t.state is TrialState.FAIL]
    if not complete:
        last = next((t.user_attrs.get("error") for t in reversed(failed) if t.user_attrs.get("error")), "no trial ran")
        msg = f"no trial of the search completed; the last error: {last}"
        raise InputError(msg) if failed else EdgeoptError(msg)
    if len(complete) < req.trials and too_many_failures(len(failed), req.trials):
        notes.append(f"stopped after {len(failed)} failed trials with {len(complete)} of {req.trials} complete")
    elif len(complete) < req.trials:
        notes.append(f"the grid ran out of distinct points after {len(complete)} of {req.trials} trials")
    points = [Point(t.number, tuple(t.values), bool(t.user_attrs.get("feasible"))) for t in complete]
    front = pareto_front(points)
    best = choose(points)
    by_number = {t.number: t for t in trials}
    final, final_p50 = _final_round(out, profile, space, [by_number[p.number] for p in front], lock, notes)
    chosen = None
    if best is not None:
        chosen = _best(req, out, profile, by_number[best.number], objectives, lock, notes, ranking)
    records = [_record(t, objectives) for t in trials]
    base_p50 = final.baseline_p50_ms if final is not None else None
    front_rows = [sr.FrontPoint(
        number=p.number, values=dict(zip(objectives, p.values, strict=True)), params=dict(by_number[p.number].params),
        accuracy=by_number[p.number].user_attrs.get("accuracy"), bytes=by_number[p.number].user_attrs.get("bytes"),
        p50_ms_trial=by_number[p.number].user_attrs.get("p50_ms"), p50_ms_final=final_p50.get(p.number),
        latency_ratio_final=(final_p50[p.number] / base_p50) if base_p50 and p.number in final_p50 else None)
        for p in front]
    bench = bench_needed(profile, space.objectives)
    how = ("each trial's build timed its baseline and artifact interleaved (the profile's protocol) while holding "
           f"{lock.name}, so no two trials on this host timed at once; builds and accuracy ran in parallel"
           if bench else "not measured in the trials (no latency objective or budget)")
    result = sr.SearchResult(
        tool_version=__version__, model=str(req.model), target=profile.name, device_class=str(profile.device_class),
        study=sr.StudyInfo(name=name, storage=shown_url(url), sampler=str(req.sampler), seed=req.seed,
                           model_sha256=identity.model_sha256, space_sha256=identity.space_sha256,
                           target=identity.target),
        space=sr.SpaceInfo(objectives=list(objectives), dimensions=space.grid(), points=space.size),
        counts=sr.Counts(requested=req.trials, complete=len(complete), failed=len(failed),
                         surplus=sum(bool(t.user_attrs.get(SURPLUS)) for t in trials),
                         repeats=sum(t.user_attrs.get("repeat_of") is not None for t in trials),
                         running=sum(t.state is TrialState.RUNNING for t in trials)),
        trials=records, front=front_rows, chosen=chosen,
        latency=sr.LatencyMethod(trials=how, final_round=final, lock=str(lock) if bench else None),
        notes=notes, wall_seconds=round(time.perf_counter() - started, 3), ok=chosen is not None)
    json_path = write_text_atomic(out / "search.json", result.model_dump_json(indent=2) + "\n")
    html_path = _html(out, result, profile)
    return SearchOutcome(result, out.resolve(), json_path, html_path)


def _record(t: Any, objectives: tuple[str, ...]) -> sr.TrialRecord:
    a = t.user_attrs
    return sr.TrialRecord(
        number=t.number, state=t.state.name, params=dict(t.params),
        values=dict(zip(objectives, t.values, strict=True)) if t.state.name == "COMPLETE" else None,
        feasible=a.get("feasible"), violations=list(a.get("violations", [])), accuracy=a.get("accuracy"),
        bytes=a.get("bytes"), p50_ms=a.get("p50_ms"), folder=a.get("folder"), host=a.get("host"), error=a.get("error"))


def _final_round(out: Path, profile: Profile, space: Space, front: list[Any], lock: Path,
                 notes: list[str]) -> tuple[sr.FinalRound | None, dict[int, float]]:
    """One interleaved benchmark over every front artifact built in this OUT and the float baseline, under the
    timing lock: the front's latencies come from one round, comparable with each other. Artifacts are read from
    OUT/trials/NNNN only, checked against the study's sha256 (a changed one: exit 2 naming the trial)."""
    if not bench_needed(profile, space.objectives) or not front:
        return None, {}
    found = [(t, local_trial(out, t)) for t in front]
    local = [(t, check_file(tf, tf.artifact)) for t, tf in found if tf is not None]
    if len(local) < len(front):
        notes.append(f"{len(front) - len(local)} front artifact(s) were built on another machine or into another "
                     "--out; the final timing round covers those in this one")
    if not local:
        return None, {}
    first = next(tf for _, tf in found if tf is not None)
    baseline = check_file(first, first.baseline)
    from edgeopt.benchmark.exclusive import exclusive
    from edgeopt.benchmark.protocol import BenchSettings, run_interleaved

    b = profile.benchmark
    settings = BenchSettings(threads=profile.runtime.threads, xnnpack=profile.runtime.xnnpack,
                             graph_optimization=profile.runtime.graph_optimization, warmup_runs=b.warmup_runs,
                             warmup_seconds=b.warmup_seconds, runs=b.runs, min_seconds=b.min_seconds)
    try:
        with exclusive(lock):
            results = run_interleaved([baseline, *(p for _, p in local)], settings)
    except EdgeoptError as exc:
        from edgeopt.errors import first_line

        notes.append(f"final timing round skipped: {first_line(exc)}")
        return None, {}
    base = results[0]
    final = sr.FinalRound(baseline=str(baseline), baseline_p50_ms=base.latency.p50, runs_each=base.latency.runs,
                          threads=base.threads, runtime=f"{base.runtime} {base.runtime_version} ({base.delegate})",
                          artifacts=[str(p) for _, p in local])
    return final, {t.number: r.latency.p50 for (t, _), r in zip(local, results[1:], strict=True)}


def _best(req: SearchRequest, out: Path, profile: Profile, t: Any, objectives: tuple[str, ...], lock: Path,
          notes: list[str], ranking: tuple[str, ...]) -> sr.Chosen:
    """OUT/best: the chosen trial's build (a normal build: artifact, report, manifest, C files), copied from
    OUT/trials/NNNN, each file checked against the sha256s the study stored (trial_files.py); a trial built on
    another machine or into another --out is rebuilt here with the same choices."""
    dst = out / "best"
    tf = local_trial(out, t)
    if tf is not None:
        tmp = out / f".best-{os.getpid()}"
        _remove(tmp)
        tmp.mkdir()
        try:
            others = copy_trial(tf, tmp)
        except BaseException:
            _remove(tmp)
            raise
        old = out / f".best-old-{os.getpid()}"
        if os.path.lexists(dst):
            dst.rename(old)
        tmp.rename(dst)
        _remove(old)
        how = f"copied from trials/{t.number:04d}"
        if others:
            notes.append(f"best/: not copied from trials/{t.number:04d}, which its manifest does not list: "
                         + ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else ""))
    else:
        from edgeopt.pipeline.build import BuildRequest, build
        from edgeopt.pipeline.search.space import apply

        if dst.is_symlink():
            dst.unlink()  # the build writes into OUT/best itself, never through a link
        built = build(BuildRequest(model=req.model, target=req.target, out=dst, calib=req.calib, eval=req.eval,
                                   train=req.train, unsafe_load=req.unsafe_load, force=True, timing_lock=lock,
                                   profile=apply(profile, t.params, ranking)))
        if trial_dir(out, t.number).exists():
            how = f"rebuilt here (the study holds no sha256 of trials/{t.number:04d}: made by an older edgeopt)"
        else:
            how = f"rebuilt here (the trial was built on {t.user_attrs.get('host')} or into another --out)"
        if not built.ok:
            notes.append("the rebuilt best candidate is not ok here: " + "; ".join(built.failures()))
    return sr.Chosen(number=t.number, params=dict(t.params), values=dict(zip(objectives, t.values, strict=True)),
                     folder=str(dst), how=how)


def _remove(path: Path) -> None:
    """Remove a leftover of ours: a link itself (never what it points to), or a folder."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def _html(out: Path, result: sr.SearchResult, profile: Profile) -> Path | None:
    """OUT/search.html: the trials on the two main objectives, the front, the budgets, a table linking each report."""
    from edgeopt.report.html import ScatterPoint, search_page

    objs = result.space.objectives
    xo, yo = (objs[1], objs[0]) if len(objs) > 1 else (objs[0], objs[0])
    on_front = {p.number for p in result.front}
    budgets = {"accuracy_drop": profile.budgets.max_accuracy_drop,
               "bytes": None if profile.budgets.max_model_kb is None else profile.budgets.max_model_kb * 1024,
               "p50_latency": None}
    points, rows, links = [], [], []
    header = ["trial", "state", *objs, "within budget", "choices"]
    for t in result.trials:
        if t.state == "PRUNED":
            continue
        href = None
        folder = trial_dir(out, t.number)  # this OUT's folder of the trial, never a path the study names
        if not folder.parent.is_symlink() and not folder.is_symlink() and (folder / "report.json").is_file():
            rel = os.path.relpath(folder, out)
            href = f"{rel}/report.html" if (folder / "report.html").is_file() else f"{rel}/report.json"
        if t.values is not None:
            points.append(ScatterPoint(x=t.values[xo], y=t.values[yo], label=f"trial {t.number}", href=href,
                                       on_front=t.number in on_front, feasible=bool(t.feasible)))
        rows.append([str(t.number), t.state.lower(), *(f"{t.values[o]:.4g}" if t.values else "-" for o in objs),
                     "-" if t.feasible is None else ("yes" if t.feasible else "no"),
                     " ".join(f"{k}={v}" for k, v in t.params.items()) or (t.error or "")])
        links.append(href)
    page = search_page(f"edgeopt search: {Path(result.model).name} for {result.target}", points, xo, yo,
                       budgets.get(xo), budgets.get(yo), header, rows, links)
    return write_text_atomic(out / "search.html", page)
