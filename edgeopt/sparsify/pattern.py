"""Sparsity patterns: which zeros a kernel may take.

- `unstructured`: any weight.
- `N:M` (e.g. `2:4`): in every group of M consecutive input channels (per output channel and
  kernel position) at most N weights are non-zero; the sparsity is fixed at 1 - N/M.
- `block:RxC` (e.g. `block:1x4`): whole blocks of R output channels x C input channels are zero,
  the layout TFLite's sparse FULLY_CONNECTED kernels read (1x4 along the input).

Kernels are seen as (positions, in, out): Keras kernels keep input channels on axis -2 and
output channels on axis -1 (Dense (in, out), ConvND (..., in, out)). Depthwise kernels have one
input channel per filter, so N:M and blocks along the input cannot apply to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from edgeopt.errors import InputError


class PatternKind(StrEnum):
    UNSTRUCTURED = "unstructured"
    N_M = "n:m"
    BLOCK = "block"


_NM = re.compile(r"^(\d+):(\d+)$")
_BLOCK = re.compile(r"^block:(\d+)x(\d+)$")
HELP = "unstructured, N:M (e.g. 2:4) or block:RxC (e.g. block:1x4)"


@dataclass(frozen=True)
class Pattern:
    kind: PatternKind
    n: int = 0  # N:M: non-zeros kept per group
    m: int = 0  # N:M: group length along the input channels
    rows: int = 1  # block: output channels per block
    cols: int = 1  # block: input channels per block

    @property
    def fixed_sparsity(self) -> float | None:
        """The sparsity the pattern itself sets (N:M), else None (any target)."""
        return 1.0 - self.n / self.m if self.kind is PatternKind.N_M else None

    @property
    def group_in(self) -> int:
        """Input channels one group or block spans (1 for unstructured)."""
        return {PatternKind.UNSTRUCTURED: 1, PatternKind.N_M: self.m, PatternKind.BLOCK: self.cols}[self.kind]

    def __str__(self) -> str:
        if self.kind is PatternKind.N_M:
            return f"{self.n}:{self.m}"
        if self.kind is PatternKind.BLOCK:
            return f"block:{self.rows}x{self.cols}"
        return "unstructured"


def parse_pattern(text: str) -> Pattern:
    """'unstructured' | 'N:M' | 'block:RxC' -> Pattern; anything else is an InputError naming the forms."""
    t = text.strip().lower()
    if t == "unstructured":
        return Pattern(PatternKind.UNSTRUCTURED)
    if mt := _NM.match(t):
        n, m = int(mt.group(1)), int(mt.group(2))
        if not 0 < n < m:
            msg = f"--pattern {text}: N:M needs 0 < N < M (e.g. 2:4)"
            raise InputError(msg)
        return Pattern(PatternKind.N_M, n=n, m=m)
    if mt := _BLOCK.match(t):
        r, c = int(mt.group(1)), int(mt.group(2))
        if r < 1 or c < 1 or r * c < 2:
            msg = f"--pattern {text}: a block needs at least 2 weights (e.g. block:1x4)"
            raise InputError(msg)
        return Pattern(PatternKind.BLOCK, rows=r, cols=c)
    msg = f"--pattern '{text}' is not a sparsity pattern; use {HELP}"
    raise InputError(msg)
