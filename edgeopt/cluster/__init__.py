"""Cluster stage: weight sharing by k-means per layer (kmeans.py), layer selection (layers.py),
centroid fine-tuning (finetune.py), compressed-size measurement (sizes.py), the facade (clusterer.py)."""

from edgeopt.cluster.clusterer import (
    ClusterResult,
    ClusterSpec,
    LayerCluster,
    cluster_keras_file,
    cluster_model,
)
from edgeopt.cluster.kmeans import Init

__all__ = ["ClusterResult", "ClusterSpec", "Init", "LayerCluster", "cluster_keras_file", "cluster_model"]
