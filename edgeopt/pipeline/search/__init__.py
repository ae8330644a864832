"""`edgeopt search`: Optuna trials, each a real `edgeopt build`, into a Pareto front and the chosen build.

space.py (the typed space from [search]) -> study.py (storage, study, sampler) -> trial.py (one trial = one build)
-> front.py (Pareto front) -> results.py (search.json) ; run.py runs them, worker.py is a worker process;
trial_files.py reads a finished trial's files back (OUT/trials/NNNN only, checked against the study's sha256s).
"""
