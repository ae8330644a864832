"""Data stage: calibration, eval and training arrays from .npz/.npy (never pickle)."""
