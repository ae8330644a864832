"""Library entry points the fuzzer runs like a command: `python -m tests.robustness.fuzz_lib KIND FOLDER`.

    tflm-cache XDG   open the M4F library cache under XDG_CACHE_HOME=XDG and check it the way a firmware link does
                     (LibraryCache.checked_archive: every object and libtflm.a against index.json, rebuilt if not)
    search-best OUT  read every finished trial of OUT/search.db back from OUT/trials/NNNN and make OUT/best from
                     it as `edgeopt search` does (trial_files.local_trial, check_file, copy_trial)

Errors go through the CLI's own formatter (edgeopt.cli.errors.handled): one `error:` line and exit 2, or
`internal error:` and exit 1, as for any edgeopt command.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

KINDS = ("tflm-cache", "search-best")
CORE = "cortex-m4f"


def open_cache():
    """The M4F LibraryCache on the shared TFLM tree, in whatever XDG_CACHE_HOME is set now."""
    from edgeopt.firmware.cores import core_spec
    from edgeopt.firmware.library import LibraryCache
    from edgeopt.firmware.toolchain import find_toolchain
    from edgeopt.firmware.tree import find_tree
    from tests.robustness.fuzz_classes import tflm_dir

    return LibraryCache(core_spec(CORE), find_toolchain(), find_tree(tflm_dir()))


def check_cache(xdg: Path) -> str:
    # Run in-process by tests too: the previous XDG_CACHE_HOME comes back, or later tests look for onnx2tf in XDG.
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(xdg)
    try:
        cache = open_cache()
        archive = cache.checked_archive()
        return f"{archive}: {cache.compiled} compiled; " + "; ".join(cache.notes)
    finally:
        if before is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = before


def search_best(out: Path) -> str:
    import optuna

    from edgeopt.pipeline.search.study import default_url, open_storage
    from edgeopt.pipeline.search.trial_files import check_file, copy_trial, local_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(default_url(out))
    done = []
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            tf = local_trial(out, t)
            if tf is None:
                done.append(f"trial {t.number}: rebuilt")
                continue
            check_file(tf, tf.artifact)
            dst = out / f".best-{t.number}"
            dst.mkdir()
            others = copy_trial(tf, dst)
            dst.rename(out / "best")
            done.append(f"trial {t.number}: copied, {len(others)} others")
    return "; ".join(done)


def run(kind: str, folder: str) -> None:
    """Run one entry point under the CLI's error handling; typer.Exit carries the exit code."""
    from edgeopt.cli.errors import handled

    with handled():
        text = check_cache(Path(folder)) if kind == "tflm-cache" else search_best(Path(folder))
    sys.stdout.write(text + "\n")


def main(argv: list[str]) -> int:
    import typer

    if len(argv) != 2 or argv[0] not in KINDS:
        sys.stderr.write(f"error: usage: fuzz_lib {{{','.join(KINDS)}}} FOLDER\n")
        return 2
    try:
        run(*argv)
    except typer.Exit as exc:
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
