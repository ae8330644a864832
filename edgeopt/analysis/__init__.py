"""Params and MACs per layer. Submodules import their framework lazily."""
