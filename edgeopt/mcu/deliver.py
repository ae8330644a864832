"""The one entry point `edgeopt build` calls for an embedded-mcu target."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgeopt.data.tensors import Batch, batch_count
from edgeopt.mcu.c_export import check_c_name, export_c
from edgeopt.mcu.check import DEFAULT_SAMPLES, check_model, measure
from edgeopt.mcu.report import McuReport
from edgeopt.profiles.schema import Profile

DEFAULT_NAME = "g_model"


def deliver(tflite_path: Path, profile: Profile | Any, samples: Batch | None = None,
            out_dir: Path | None = None, *, name: str = DEFAULT_NAME, sample_source: str = "",
            layouts: tuple[tuple[str | None, ...], tuple[str | None, ...]] = ((), ())) -> McuReport:
    """Verify `tflite_path` for the MCU `profile` and write `<name>.h` / `<name>.cc` beside it (or in `out_dir`).

    `profile` is a Profile (or a ResolvedProfile). `samples` is float (or already int8) data shaped
    like the model input with a leading sample axis; None uses seeded random inputs.
    Raises ModelFileError / UnsupportedOpError (exit 2) when the model cannot run on TFLite Micro.
    Budget violations are returned in `report.violations` (call `report.enforce_budgets()` to raise exit 3)
    so the caller can still write its report first. `layouts`: each input's / output's dimension order, when
    known, written into the header.
    """
    profile = getattr(profile, "profile", profile)
    check_c_name(name)
    tflite_path = Path(tflite_path)
    verified = measure(tflite_path, profile)
    count = batch_count(samples) if samples is not None else DEFAULT_SAMPLES  # compare on every sample given
    report = check_model(tflite_path, profile, samples=samples, sample_source=sample_source, sample_count=count,
                         verified=verified)
    files = export_c(tflite_path, verified.graph, Path(out_dir) if out_dir else tflite_path.parent, name,
                     arena_bytes=verified.arena_with_margin, arena_measured=verified.arena.arena_bytes,
                     margin_note=verified.margin_note, layouts=layouts)
    return dataclasses.replace(report, c_header=str(files.header), c_source=str(files.source))
