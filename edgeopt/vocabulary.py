"""The closed sets a user names in a profile or on the command line: one StrEnum each.

The profile schema, the library and the CLI choices all use these classes, so a value has
one spelling everywhere (`bn-scale`, `kmeans++`, `embedded-mcu`). This module imports
nothing, so `edgeopt --help` can list the choices without loading pydantic or numpy.
Sets only the profile names (schemes, I/O types, ...) live in edgeopt.profiles.schema.
"""

from __future__ import annotations

from enum import StrEnum


class DeviceClass(StrEnum):
    MOBILE_CPU = "mobile-cpu"
    EMBEDDED_MCU = "embedded-mcu"  # TFLite Micro delivery: arena, C export, MCU budgets
    EDGE_SERVER = "edge-server"


class RuntimeName(StrEnum):
    LITERT = "litert"
    ONNXRUNTIME = "onnxruntime"
    TFLM = "tflm"


class GraphOptimization(StrEnum):
    """onnxruntime graph optimization levels."""

    DISABLE = "disable"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class PruneCriterion(StrEnum):
    """Channel importance (edgeopt.prune.importance)."""

    L1 = "l1"
    L2 = "l2"
    BN_SCALE = "bn-scale"
    RANDOM = "random"


class PruneAllocation(StrEnum):
    GLOBAL = "global"  # one threshold over all groups (scores normalised per group)
    UNIFORM = "uniform"  # the same ratio in every group


class ClusterInit(StrEnum):
    LINEAR = "linear"  # evenly spaced between min and max (keeps the large weights)
    KMEANS_PP = "kmeans++"  # D^2 sampling (k-means++), seeded


class SparsityAllocation(StrEnum):
    """How a target sparsity is spread over the selected kernels (edgeopt.sparsify)."""

    PER_LAYER = "per-layer"  # every kernel reaches the target sparsity
    GLOBAL = "global"  # one magnitude threshold over all selected kernels


class EnergyMethod(StrEnum):
    """How an energy-per-inference figure was obtained (edgeopt.energy, report stages.energy)."""

    MEASURED = "measured"  # an energy counter (RAPL) over the benchmark window, idle subtracted
    ESTIMATE = "estimate"  # profile power x a latency figure
    UNAVAILABLE = "unavailable"  # neither a readable counter nor profile constants


class SamplerName(StrEnum):
    """Optuna samplers `edgeopt search --sampler` offers."""

    NSGA2 = "nsga2"  # NSGA-II: multi-objective genetic search (default)
    TPE = "tpe"  # multi-objective Tree-structured Parzen Estimator
    GRID = "grid"  # every point of the space, in Optuna's grid order


class AccuracyMetric(StrEnum):
    """How an output of an artifact is scored against the float model (edgeopt.validate.metrics)."""

    AUTO = "auto"  # agreement (top1 with labels) for class scores (N, classes >= 2), snr for the others
    TOP1 = "top1"  # top-1 accuracy against integer labels, percent (class scores)
    AGREEMENT = "agreement"  # percent of samples whose top-1 equals the float model's (class scores)
    SNR = "snr"  # signal-to-noise ratio against the float model's output, dB (regression, maps, sequences)
    COSINE = "cosine"  # mean cosine similarity per sample with the float model's output
    MAX_ABS = "max-abs"  # largest absolute difference from the float model's output
