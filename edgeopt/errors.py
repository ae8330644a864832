"""One flat error family. Library code raises these; only the CLI formats them.

Each error carries an exit code: 2 for bad input or usage, 3 for a failed budget,
1 for anything internal. The message is one line that names the problem and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass


class EdgeoptError(Exception):
    """Base class. `exit_code` is what the CLI returns."""

    exit_code: int = 1


class InputError(EdgeoptError):
    """Bad input or usage: a file, a flag, a value the user can fix."""

    exit_code = 2


class ModelFileError(InputError):
    """A model file is missing, empty, corrupt or of the wrong kind."""


class DataError(InputError):
    """Calibration, eval or benchmark data does not fit the model."""


class ProfileError(InputError):
    """A target profile is unknown or invalid."""


class UnsupportedOpError(InputError):
    """The runtime or converter lacks an op the model uses."""

    def __init__(self, message: str, ops: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.ops = ops


class KernelPrepareError(UnsupportedOpError):
    """A runtime kernel refused the model in Prepare (a tensor type, shape or quantization it does not take).

    Not a memory shortage: `op` and `node` name the kernel, `detail` is the runtime's own message.
    """

    def __init__(self, message: str, op: str, node: int, detail: str) -> None:
        super().__init__(message, (op,))
        self.op = op
        self.node = node
        self.detail = detail


class RuntimeUnavailableError(InputError):
    """A runtime or optional dependency is not installed."""


class OutputError(InputError):
    """The output location cannot be written."""


class RemoteError(InputError):
    """A remote device could not be reached or used."""


class ConversionError(EdgeoptError):
    """A converter failed on a model we believed valid (internal)."""


class ConversionCrashed(ConversionError):
    """The TFLite converter or calibrator died (a signal) in its child process: the model, not us (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class BudgetViolation:
    name: str
    limit: float
    actual: float
    unit: str

    def describe(self) -> str:
        side = ">" if self.actual > self.limit else "<" if self.actual < self.limit else "at"  # at most / at least
        return f"{self.name}: {self.actual:g} {self.unit} {side} limit {self.limit:g} {self.unit}"


class BudgetExceededError(EdgeoptError):
    """One or more budgets failed. Artifacts and the report were still written."""

    exit_code = 3

    def __init__(self, violations: tuple[BudgetViolation, ...], detail: str = "") -> None:
        self.violations = violations
        msg = "budget exceeded: " + "; ".join(v.describe() for v in violations)
        super().__init__(msg + (f" ({detail})" if detail else ""))


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (its class name when empty), at most `limit` characters.

    Native libraries raise multi-line messages; a one-line error shows only the head.
    """
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]


def cause_of(exc: BaseException, limit: int = 600) -> str:
    """One line from a third-party exception that keeps the part naming the cause.

    onnxruntime and tf2onnx put the cause at the end of long messages, so a long
    message keeps its start and its end, joined by " ... ", instead of being cut.
    """
    import re

    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip()) or type(exc).__name__
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : ", "", text)
    if len(text) <= limit:
        return text
    head = limit // 3
    return f"{text[:head].rstrip()} ... {text[-(limit - head - 5):].lstrip()}"


class FirmwareMismatchError(EdgeoptError):
    """The firmware on the emulated core disagrees with host TFLM (same model, same samples): a failed check."""

    exit_code = 3


class NoFeasibleCandidateError(EdgeoptError):
    """A search finished and no candidate met every budget (search.json still written)."""

    exit_code = 3


class ModelCodeError(InputError):
    """The model's own code, run in the sandbox, crashed, ran past its time or CPU limit (exit 2)."""


class TflmMismatchError(EdgeoptError):
    """A quantized model computes other values on host TFLite Micro than on LiteRT (same model, same samples):
    a failed check, the model is not shipped."""

    exit_code = 3
