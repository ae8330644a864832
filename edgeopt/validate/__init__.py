"""Validate stage: run artifacts in their real runtime and compare with the float model."""
