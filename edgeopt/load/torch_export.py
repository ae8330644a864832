"""PyTorch in: an nn.Module or a saved `torch.export` program (.pt2) to ONNX, with torch's own exporter.

torch is the optional `torch` extra and imported only inside these functions (never by `bench`, `inspect` of a
.tflite/.onnx or the CLI's start). What comes out is a float ONNX model; builds take the ONNX route from there.

Loading a .pt2 runs code. `torch.export.load` (torch 2.13, torch/export/__init__.py) reads the archive with
`torch.export.pt2_archive._package.load_pt2`, which for weights and constants stored as pickles calls
`torch.load(..., weights_only=False)` and, for opaque constants, plain `pickle.loads`; the program's serialized
artifacts go through `torch._export.serde.serialize.deserialize_torch_artifact`, which falls back to
`torch.load(buffer, weights_only=False)` when the safe load fails. Any of these unpickles whatever the file holds,
so a crafted .pt2 runs Python on load: it is refused unless the user passes --unsafe-load (as a Keras Lambda).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.atomic import write_bytes_atomic
from edgeopt.errors import InputError, ModelFileError, RuntimeUnavailableError, cause_of

TORCH_INSTALL = ("pip install 'edgeopt[torch]' (on your own machine, the CPU-only build first: pip install torch "
                 "--index-url https://download.pytorch.org/whl/cpu)")
EXPORTER = "torch.onnx.export(dynamo=True)"


@dataclass(frozen=True)
class TorchExport:
    """A .pt2 exported to ONNX: where the ONNX file is and which torch made it."""

    onnx_path: Path
    torch_version: str

    @property
    def origin(self) -> str:
        return f"a .pt2 (torch.export) converted by torch {self.torch_version}'s ONNX exporter ({EXPORTER})"


def import_torch(what: str) -> Any:
    """The torch module, or RuntimeUnavailableError naming the pip line."""
    try:
        import torch
    except ImportError:
        msg = f"{what} needs PyTorch, which is not installed: {TORCH_INSTALL}"
        raise RuntimeUnavailableError(msg) from None
    return torch


def pt2_to_onnx(path: Path, folder: Path, unsafe_load: bool) -> TorchExport:
    """Load the `torch.export` program saved in `path` (only with `unsafe_load`: loading unpickles, see above) and
    export it to folder/model.onnx. `folder` is private to the caller (a build's staging folder)."""
    path = Path(path)
    if not unsafe_load:
        msg = (f"{path}: loading a .pt2 unpickles it (torch.export.load), which can run code from the file; "
               "pass --unsafe-load only if you trust this file")
        raise ModelFileError(msg)
    torch = import_torch(f"{path.name} (a .pt2 model)")
    try:
        with _quiet():
            program = torch.export.load(str(path))
    except Exception as exc:  # torch raises RuntimeError, KeyError, zipfile and pickle errors for a bad archive
        msg = f"{path}: torch {_version(torch)} cannot load it as a torch.export program: {cause_of(exc)}; save it with torch.export.save"
        raise ModelFileError(msg) from None
    args, kwargs = program.example_inputs or ((), {})
    if not args and not kwargs:
        msg = f"{path}: the program carries no example inputs; export it with torch.export.export(model, args) and save it again"
        raise ModelFileError(msg)
    onnx_path = Path(folder) / "model.onnx"
    _export(torch, program, tuple(args), onnx_path, kwargs=kwargs or None, label=str(path))
    return TorchExport(onnx_path, _version(torch))


def from_torch(module: Any, example_inputs: Sequence[Any], path: str | Path, *,
               input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
               dynamic_batch: bool = True) -> Path:
    """Export the nn.Module `module` to the ONNX file `path` with torch's own exporter; returns `path`.

    `example_inputs`: one tensor per forward() argument (a batch of any size); `input_names` / `output_names`
    default to the forward() argument names and torch's output names; `dynamic_batch` makes the first dimension of
    every input symbolic ("batch"). The file is written atomically, weights inside (no external data). Raises
    RuntimeUnavailableError without torch, InputError when the module cannot be exported.
    """
    torch = import_torch("edgeopt.from_torch")
    if not isinstance(module, torch.nn.Module):
        msg = f"edgeopt.from_torch takes a torch.nn.Module, not {type(module).__name__}; pass the model object"
        raise InputError(msg)
    args = tuple(example_inputs) if isinstance(example_inputs, list | tuple) else (example_inputs,)
    if not args or not all(isinstance(a, torch.Tensor) for a in args):
        msg = "edgeopt.from_torch: example_inputs must be a tuple of torch tensors, one per forward() argument"
        raise InputError(msg)
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        msg = f"edgeopt.from_torch writes an ONNX file; name it *.onnx, not {path.name}"
        raise InputError(msg)
    dynamic = None
    if dynamic_batch:
        batch = torch.export.Dim("batch")
        dynamic = tuple({0: batch} if a.dim() > 0 else None for a in args)
    was_training = module.training
    module.eval()
    try:
        _export(torch, module, args, path, dynamic_shapes=dynamic, input_names=input_names,
                output_names=output_names, label=type(module).__name__)
    finally:
        module.train(was_training)
    return path


def _export(torch: Any, model: Any, args: tuple[Any, ...], path: Path, label: str, **options: Any) -> None:
    """torch.onnx.export (dynamo) into memory, then one atomic write of `path`."""
    options = {k: v for k, v in options.items() if v is not None}
    with tempfile.TemporaryDirectory(prefix="edgeopt-torch-") as scratch, _quiet():
        try:
            program = torch.onnx.export(model, args, dynamo=True, external_data=False, verbose=False,
                                        artifacts_dir=scratch, **options)
        except Exception as exc:  # the exporter raises many types (torch._dynamo, onnxscript, export errors)
            msg = f"{label}: torch {_version(torch)}'s ONNX exporter failed: {_exporter_cause(exc)}"
            raise InputError(msg) from None
    if program is None:
        msg = f"{label}: torch {_version(torch)}'s ONNX exporter returned nothing; export with dynamo=True"
        raise InputError(msg)
    write_bytes_atomic(path, program.model_proto.SerializeToString())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """torch's progress and warnings kept off the user's terminal: the exporter prints "[torch.onnx] ..." to
    stdout (the CLI's --json channel), logs "torchvision is not installed" and raises FutureWarnings of its own
    internals. A failure still raises with its cause."""
    loggers = [logging.getLogger(name) for name in ("torch", "torch.onnx", "torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SUMMARY = "## Exception summary"


def _exporter_cause(exc: BaseException) -> str:
    """The cause of an exporter failure on one line: torch wraps it in a page of advice with colour codes and
    ends with "## Exception summary <type>: cause (Refer to the full stack trace ...)"."""
    text = _ANSI.sub("", str(exc))
    if _SUMMARY in text:
        text = text.split(_SUMMARY, 1)[1].split("(Refer to the full stack trace", 1)[0]
        return " ".join(text.split())[:600]
    return cause_of(exc)


def _version(torch: Any) -> str:
    return str(torch.__version__).split("+")[0]
