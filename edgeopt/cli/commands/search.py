"""`edgeopt search MODEL --target T --eval eval.npz --trials N --out DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeopt.cli.commands.options import CalibOpt, EvalOpt, JsonOpt, OutDirOpt, TargetOpt, UnsafeLoadOpt
from edgeopt.cli.errors import handled
from edgeopt.cli.output import Sink
from edgeopt.vocabulary import SamplerName


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search_cmd(
        model: Annotated[Path, typer.Argument(metavar="MODEL", help=".keras, .h5, SavedModel folder or .onnx")],
        target: TargetOpt,
        trials: Annotated[int, typer.Option("--trials", "-n", metavar="N", help="Complete trials the study stops at (1 to 10,000).")],
        out: OutDirOpt = Path("search"),
        train: Annotated[Path | None, typer.Option("--train", metavar="FILE", help="Training data .npz (x, y) for pruning / clustering / QAT trials.")] = None,
        eval_data: EvalOpt = None,
        calib: CalibOpt = None,
        workers: Annotated[int, typer.Option("--workers", "-w", metavar="N", help="Trials in parallel on this machine (processes).")] = 1,
        resume: Annotated[bool, typer.Option("--resume", help="Continue the search in OUT (after an interruption).")] = False,
        storage: Annotated[str | None, typer.Option("--storage", metavar="URL", help="Optuna storage (SQLAlchemy URL, e.g. postgresql://user@host/db) shared by workers on many machines; default: sqlite in OUT/search.db.")] = None,
        study: Annotated[str | None, typer.Option("--study", metavar="NAME", help="Study name in the storage.")] = None,
        sampler: Annotated[SamplerName, typer.Option("--sampler", help="Optuna sampler.")] = SamplerName.NSGA2,
        seed: Annotated[int | None, typer.Option("--seed", metavar="N", help="Sampler seed (workers use seed, seed+1, ...).")] = None,
        unsafe_load: UnsafeLoadOpt = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Search the profile's [search] space with Optuna: each trial a real build; the Pareto front, OUT/best and OUT/search.json."""
        with handled(json_out):
            from edgeopt.errors import NoFeasibleCandidateError
            from edgeopt.pipeline.search.render import to_console
            from edgeopt.pipeline.search.run import SearchRequest, SearchStatus, search

            sink = Sink(json_out)
            req = SearchRequest(model=model, target=target, out=out, trials=trials, train=train, eval=eval_data,
                                calib=calib, workers=workers, resume=resume, storage=storage, study=study,
                                sampler=sampler, seed=seed, unsafe_load=unsafe_load)
            with sink.trials(trials) as update:
                def progress(s: SearchStatus) -> None:
                    update(s.done, s.running, s.failed, s.best, s.finished)

                outcome = search(req, progress)
            result = outcome.result
            sink.result(result.model_dump(mode="json"), lambda c: to_console(result, c))
            if not result.ok:
                msg = (f"no trial met every budget ({result.counts.complete} complete); see {outcome.json_path} for "
                       "each trial's violations")
                raise NoFeasibleCandidateError(msg)
