"""onnxruntime's quantizer failing on one node: find the node, quantize again with it kept in float.

    done = quantize_recovering(src, dst, recipe)  # dst written and checked, or UnsupportedOpError (exit 2)
    done.excluded, done.notes

onnxruntime's quantize_static (and quantize_dynamic) can raise on a node it mishandles (a grouped ConvTranspose
with per-channel weights: "operands could not be broadcast together"), or write a model that onnx.checker or
onnxruntime then rejects (QOperator QLinearMatMul with a per-channel 3-D or 1-D weight fails when it runs). The
written model is checked: onnx.checker, an onnxruntime CPU session with its default graph optimizations (as a
runner opens it), run on the first calibration sample. On a failure the node is found
- from the error, when it names nodes of the float model (or else their tensors): those are excluded first;
- else by bisection over the named nodes, in graph order: excluding every node is tried first (if that fails too,
  no exclusion helps and the failure is reported), then the shortest prefix whose exclusion passes; its last
  node is a culprit, kept in float, and the search repeats for the rest, up to MAX_EXCLUDED nodes.
Every attempt is a full quantization (with calibration); at most MAX_ATTEMPTS are made. Only int8 and dynamic
recover (they take nodes_to_exclude); float16 and none are written as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import ConversionError, UnsupportedOpError, cause_of
from edgeopt.profiles.schema import Scheme
from edgeopt.quantize.onnx import OnnxRecipe, first_sample, quantize_onnx

MAX_EXCLUDED = 8  # nodes kept in float before giving up
MAX_ATTEMPTS = 40  # quantizations in one recovery (each calibrates again)


@dataclass(frozen=True)
class Recovered:
    path: Path
    excluded: tuple[str, ...] = ()  # nodes kept in float so onnxruntime's quantizer output checks and loads
    cause: str = ""  # the first failure, in onnxruntime's or the checker's words
    attempts: int = 1

    @property
    def notes(self) -> tuple[str, ...]:
        if not self.excluded:
            return ()
        nodes = ", ".join(f"'{n}'" for n in self.excluded)
        return (f"onnxruntime's quantizer failed ({self.cause}); node{'s' if len(self.excluded) != 1 else ''} "
                f"{nodes} kept in float, found in {self.attempts} quantization attempts",)


class _Failed(Exception):
    """A quantization attempt failed: the quantizer raised or its output does not check or load."""


def quantize_recovering(src: Path, dst: Path, recipe: OnnxRecipe) -> Recovered:
    """quantize_onnx, its output checked; on a failure the failing nodes are kept in float (module docstring).
    Only int8 and dynamic exclude nodes: other schemes are quantize_onnx as it is."""
    if recipe.scheme not in (Scheme.INT8, Scheme.DYNAMIC):
        quantize_onnx(src, dst, recipe)
        return Recovered(dst)
    search = _Search(src, dst, recipe)
    try:
        search.attempt(())
        return Recovered(dst)
    except _Failed as exc:
        search.cause = str(exc)
    excluded = search.recover()
    return Recovered(dst, excluded, search.cause, search.attempts)


class _Search:
    def __init__(self, src: Path, dst: Path, recipe: OnnxRecipe) -> None:
        self.src, self.dst, self.recipe = src, dst, recipe
        self.attempts = 0
        self.cause = ""
        self.sample = first_sample(src, recipe)  # run once through each quantized model

    def attempt(self, extra: tuple[str, ...]) -> None:
        """Quantize with `extra` nodes also kept in float, and check the output; _Failed if either fails."""
        if self.attempts >= MAX_ATTEMPTS:
            self._give_up(f"no passing model within {MAX_ATTEMPTS} quantization attempts")
        self.attempts += 1
        recipe = replace(self.recipe, nodes_to_exclude=(*self.recipe.nodes_to_exclude, *extra))
        try:
            quantize_onnx(self.src, self.dst, recipe)
        except UnsupportedOpError:
            raise  # nothing to quantize, a scheme the format lacks: no node to blame
        except ConversionError as exc:
            msg = re.sub(r"^ONNX quantization \(\w+\) failed: ", "", str(exc)).split("; onnxruntime's quantizer could")[0]
            raise _Failed(cause_of(Exception(msg), 300)) from None
        try:
            _check_written(self.dst, self.sample)
        except Exception as exc:  # noqa: BLE001 - checker ValidationError, onnxruntime Fail / InvalidGraph / ...
            msg = f"its output does not check, load or run: {cause_of(exc, 300)}"
            raise _Failed(msg) from None

    def passes(self, extra: tuple[str, ...]) -> bool:
        try:
            self.attempt(extra)
        except (_Failed, UnsupportedOpError):  # with many nodes excluded there may be nothing left to quantize
            return False
        return True

    def recover(self) -> tuple[str, ...]:
        nodes = _named_nodes(self.src, self.recipe.nodes_to_exclude)
        named = _named_in(self.cause, nodes)
        if named and len(named) <= MAX_EXCLUDED and self.passes(named):
            return named
        if not nodes or not self.passes(tuple(n for n, _ in nodes)):
            self._give_up("keeping every node in float does not help either" if nodes else "no named node to exclude")
        culprits: list[str] = []
        rest = [n for n, _ in nodes]
        while True:
            lo, hi = 1, len(rest)  # excluding rest[:hi] passes; find the shortest such prefix
            while lo < hi:
                mid = (lo + hi) // 2
                if self.passes((*culprits, *rest[:mid])):
                    hi = mid
                else:
                    lo = mid + 1
            culprits.append(rest[hi - 1])
            rest = rest[:hi - 1]
            if self.passes(tuple(culprits)):
                return tuple(culprits)
            if len(culprits) >= MAX_EXCLUDED or not rest:
                self._give_up(f"keeping {', '.join(culprits)} in float is not enough")

    def _give_up(self, why: str) -> None:
        self.dst.unlink(missing_ok=True)
        msg = (f"onnxruntime's quantizer failed on this model ({self.cause}) and {why}; "
               "build it with [quantize] scheme = \"dynamic\" or \"float16\", or per_channel = false")
        raise UnsupportedOpError(msg)


def _check_written(path: Path, sample: dict[str, np.ndarray] | None) -> None:
    """onnx.checker and an onnxruntime CPU session with default optimizations (what a runner does), run on
    `sample` when there is one: some kernels (QLinearMatMul's weight zero point) refuse only when they run."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    if sample is not None:
        run = ort.RunOptions()
        run.log_severity_level = 4  # the exception says it; no log line on the console
        session.run(None, sample, run)


def _named_nodes(src: Path, already: tuple[str, ...]) -> list[tuple[str, set[str]]]:
    """(name, tensor names it reads or writes) of the float model's named top-level nodes, in graph order."""
    from edgeopt.runtime.verify_onnx import load_onnx

    graph: Any = load_onnx(src, check=False, external_data=False).graph
    return [(n.name, {*n.input, *n.output} - {""}) for n in graph.node if n.name and n.name not in already]


def _named_in(text: str, nodes: list[tuple[str, set[str]]]) -> tuple[str, ...]:
    """Nodes the error names: by node name, or by a tensor they read or write (quantized names derive from them)."""
    quoted = set(re.findall(r"['\"]([^'\"]+)['\"]", text)) | set(re.findall(r"Name:\s*'?([^'\s]+)", text))
    if not quoted:
        return ()
    by_name = tuple(name for name, _ in nodes if any(q == name or q.startswith(f"{name}_") for q in quoted))
    return by_name or tuple(name for name, tensors in nodes
                            if any(q == t or q.startswith(f"{t}_") for q in quoted for t in tensors))

