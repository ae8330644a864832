"""Weight-level sparsity: magnitude pruning (unstructured, N:M, blocks) on a polynomial schedule.

Zeros are not removed parameters: a sparsified kernel keeps its shape, so what sparsity buys
(gzip, sparse encodings, sparse kernels) is measured per artifact, not assumed.
"""

from edgeopt.sparsify.pattern import Pattern, PatternKind, parse_pattern
from edgeopt.sparsify.sparsifier import (
    LayerSparsity,
    SparsifyResult,
    SparsifySpec,
    check_sparsity,
    sparsify_keras_file,
    sparsify_model,
)

__all__ = ["LayerSparsity", "Pattern", "PatternKind", "SparsifyResult", "SparsifySpec", "check_sparsity",
           "parse_pattern", "sparsify_keras_file", "sparsify_model"]
