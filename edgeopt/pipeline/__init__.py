"""Pipeline: the build orchestration and atomic output staging."""
