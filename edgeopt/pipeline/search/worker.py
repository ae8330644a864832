"""A search worker: `python -m edgeopt.pipeline.search.worker SPEC.json` runs trials of one study until it has N.

`edgeopt search --workers N` starts N of these (processes, not threads: TensorFlow is neither fork- nor
thread-friendly); any number of machines can run `edgeopt search --storage URL --study NAME` the same way.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError
from edgeopt.pipeline.search.trial import SURPLUS, TrialContext, run_trial
from edgeopt.vocabulary import SamplerName


@dataclass(frozen=True)
class WorkerSpec:
    ctx: TrialContext
    storage: str
    study: str
    sampler: SamplerName
    seed: int | None
    lock: Path

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, default=str)

    @staticmethod
    def from_json(text: str) -> WorkerSpec:
        d = json.loads(text)
        c = d["ctx"]
        opt = {k: (None if c[k] is None else Path(c[k])) for k in ("train", "eval", "calib")}
        ctx = TrialContext(model=Path(c["model"]), target=c["target"], out=Path(c["out"]), trials=int(c["trials"]),
                           ranking=tuple(c["ranking"]), unsafe_load=bool(c["unsafe_load"]),
                           skip_repeats=bool(c["skip_repeats"]), **opt)
        return WorkerSpec(ctx, d["storage"], d["study"], SamplerName(d["sampler"]), d["seed"], Path(d["lock"]))


def too_many_failures(failed: int, trials: int) -> bool:
    """Stop a search whose builds keep failing instead of looping: as many failures as trials asked (at least 3)."""
    return failed >= max(3, trials)


def run_worker(spec: WorkerSpec, after_trial: Callable[[Any], None] | None = None) -> None:
    """Run trials until the study has spec.ctx.trials COMPLETE ones (or too many fail)."""
    from edgeopt.pipeline.search.space import space_of
    from edgeopt.pipeline.search.study import make_sampler, open_storage, optuna_module
    from edgeopt.profiles import load_profile

    optuna = optuna_module()
    from optuna.trial import TrialState

    base = load_profile(spec.ctx.target).profile
    space = space_of(base)
    storage = open_storage(spec.storage)
    study = optuna.load_study(study_name=spec.study, storage=storage,
                              sampler=make_sampler(spec.sampler, space, spec.seed, spec.ctx.trials))

    stopped_as_surplus = [False]

    def counts() -> tuple[int, int, int]:
        trials = study.get_trials(deepcopy=False)
        complete = sum(t.state is TrialState.COMPLETE for t in trials)
        running = sum(t.state is TrialState.RUNNING for t in trials)
        failed = sum(t.state is TrialState.FAIL and not str(t.user_attrs.get("error", "")).startswith("abandoned")
                     for t in trials)
        return complete, running, failed

    def stop_when_done(study: Any, trial: Any) -> None:
        complete, _, failed = counts()
        if after_trial is not None:
            after_trial(trial)
        if trial.user_attrs.get(SURPLUS):
            stopped_as_surplus[0] = True
        if complete >= spec.ctx.trials or trial.user_attrs.get(SURPLUS) or too_many_failures(failed, spec.ctx.trials):
            study.stop()

    while counts()[0] < spec.ctx.trials:
        stopped_as_surplus[0] = False
        study.optimize(lambda t: run_trial(t, spec.ctx, space, base, spec.lock), n_trials=None, catch=(EdgeoptError,),
                       callbacks=[stop_when_done], gc_after_trial=True)
        if not stopped_as_surplus[0]:
            return  # N complete, too many failures, or the grid ran out
        # Other workers hold the last trials: wait for them (a dead one's trial is failed by its heartbeat), and run
        # again if one of them failed, so the study still reaches N.
        while (c := counts())[0] < spec.ctx.trials and c[1] > 0:
            optuna.storages.fail_stale_trials(study)
            time.sleep(2.0)


def main(argv: list[str]) -> int:
    spec = WorkerSpec.from_json(Path(argv[0]).read_text("utf-8"))
    try:
        run_worker(spec)
    except EdgeoptError as exc:
        from edgeopt.errors import first_line

        sys.stderr.write(first_line(exc) + "\n")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
