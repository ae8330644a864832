"""Samples given by input name, checked where they meet an ONNX model's inputs (channels first: NCHW).

The usual mistake is image data saved channels-last (N, H, W, C) for a model that wants (N, C, H, W): the
shapes hold the same numbers, so it is refused with a line saying so and how to transpose, instead of a
plain shape mismatch.

Samples are counted per input as a run takes them (`data.tensors.sample_count`): a symbolic first dimension is
one row per sample, a fixed first dimension N (a recurrent state [2, 1, 128]) N rows per sample, a 0-d input
(a sample rate) one element of a 1-D array per sample. Every input holds the same count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from edgeopt.data.tensors import IOSpec, feed_unit, sample_count
from edgeopt.errors import DataError


def check_onnx_samples(inputs: Sequence[IOSpec], samples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One array per ONNX input, by name, batch first, each fitting its input's shape; the arrays in input order."""
    wanted = [s.name for s in inputs]
    missing = [n for n in wanted if n not in samples]
    extra = [n for n in samples if n not in wanted]
    if missing or extra:
        what = "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                     f"unknown {', '.join(extra)}" if extra else "") if p)
        msg = f"samples do not match the model's inputs ({what}); give one array per input: {', '.join(wanted)}"
        raise DataError(msg)
    out: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for spec in inputs:
        a = np.asarray(samples[spec.name])
        _check_shape(spec, tuple(a.shape))
        unit = feed_unit(spec.shape)
        if unit > 1 and a.shape[0] % unit:
            dims = ", ".join("?" if d is None else str(d) for d in spec.shape)
            msg = (f"samples for input '{spec.name}' have {a.shape[0]} rows; its first dimension is fixed at {unit} "
                   f"({dims}), so each sample is {unit} rows: give k x {unit} rows")
            raise DataError(msg)
        counts[spec.name] = sample_count(a, unit)
        out[spec.name] = a
    if len(set(counts.values())) > 1:
        got = ", ".join(f"{n}: {c}" for n, c in counts.items())
        msg = (f"the inputs hold different sample counts ({got}); give the same count for each (a fixed first "
               "dimension N is N rows per sample, a 0-d input one element per sample)")
        raise DataError(msg)
    return out



def looks_channels_last(want: tuple[int | None, ...], got: tuple[int, ...]) -> bool:
    """`got` is `want` (N, C, spatial...) with C moved last, and not `want` itself."""
    if len(want) < 3 or len(got) != len(want) or want[1] is None:
        return False
    moved = (want[0], *want[2:], want[1])
    return not _fits(want, got) and _fits(moved, got)


def _fits(want: tuple[int | None, ...], got: tuple[int, ...]) -> bool:
    return len(want) == len(got) and all(w is None or w == g for w, g in zip(want[1:], got[1:], strict=True))


def _pretty(want: tuple[int | None, ...]) -> str:
    if not want:
        return "(a scalar)"
    return "(N, " + ", ".join("?" if d is None else str(d) for d in want[1:]) + ")"


def _check_shape(spec: IOSpec, got: tuple[int, ...]) -> None:
    want = spec.shape
    if not want:  # 0-d: a scalar, or one per sample in a 1-D array
        if len(got) <= 1:
            return
        msg = (f"samples for input '{spec.name}' have shape {got}; the model takes a scalar: give one, or a 1-D "
               "array of them (one per sample)")
        raise DataError(msg)
    if _fits(want, got):
        return
    pretty = _pretty(want)
    if looks_channels_last(want, got):
        order = ", ".join(["0", str(len(got) - 1), *map(str, range(1, len(got) - 1))])
        msg = (f"samples for input '{spec.name}' have shape {got}, which looks channels-last; the ONNX model takes "
               f"channels first {pretty}: transpose them with x.transpose({order})")
        raise DataError(msg)
    msg = f"samples for input '{spec.name}' have shape {got}; the model expects {pretty}"
    raise DataError(msg)
