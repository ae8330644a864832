"""Dependency-aware structural channel pruning for Keras 3 models.

graph.py groups layers whose channels shrink together, importance.py scores channels,
rules.py says how each layer type is sliced (the rule table), surgery.py rebuilds the smaller model,
pruner.py runs the schedule,
finetune.py recovers accuracy. Keras is imported lazily inside functions.
"""

from edgeopt.prune.importance import Criterion
from edgeopt.prune.pruner import Allocation, GroupResult, PruneResult, PruneSpec, Unprunable, prune_model

__all__ = ["Allocation", "Criterion", "GroupResult", "PruneResult", "PruneSpec", "Unprunable", "prune_model"]
