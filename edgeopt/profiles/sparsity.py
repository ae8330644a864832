"""The `[sparsity]` profile section: weight-level magnitude pruning in `edgeopt build` (edgeopt.sparsify).

    [sparsity]
    sparsity = 0.8            # fraction of filter weights set to zero (N:M patterns set it themselves)
    pattern = "unstructured"  # or "2:4", "block:1x4"
    layers = "conv|dense"     # regex of layer names (unset: every Conv/Dense/Depthwise/Separable layer)
    allocation = "per-layer"  # or "global"
    epochs = 12               # pruning while fine-tuning (needs --train); 0 = one-shot
    learning_rate = 1e-3
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeopt.vocabulary import SparsityAllocation


class SparsitySection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)

    sparsity: Annotated[float | None, Field(ge=0, lt=1, description="fraction of filter weights set to zero")] = None
    pattern: Annotated[str, Field(description="unstructured, N:M (e.g. 2:4) or block:RxC (e.g. block:1x4)")] = "unstructured"
    layers: Annotated[str | None, Field(description="regex searched in layer names; unset = all prunable layers")] = None
    allocation: SparsityAllocation = SparsityAllocation.PER_LAYER
    epochs: Annotated[int, Field(ge=0, le=1000, description="fine-tuning epochs while pruning; 0 = one-shot")] = 12
    learning_rate: Annotated[float, Field(gt=0, le=1, description="Adam learning rate for fine-tuning")] = 1e-3

    @model_validator(mode="after")
    def _spec_is_valid(self) -> SparsitySection:
        """The library's own rules (pattern syntax, N:M fixes the sparsity, regex), refused at load."""
        from edgeopt.errors import InputError

        try:
            self.spec()
        except InputError as exc:
            raise ValueError(str(exc).replace("--sparsity", "sparsity.sparsity").replace("--pattern", "sparsity.pattern")
                             .replace("--allocation", "sparsity.allocation").replace("--layers", "sparsity.layers")) from None
        return self

    def spec(self):  # type: ignore[no-untyped-def]  # -> edgeopt.sparsify.SparsifySpec (imported lazily)
        from edgeopt.cluster.layers import compile_pattern
        from edgeopt.sparsify.sparsifier import SparsifySpec

        compile_pattern(self.layers)
        return SparsifySpec(sparsity=self.sparsity, pattern=self.pattern, layers=self.layers,  # type: ignore[arg-type]
                            allocation=self.allocation, finetune=self.epochs > 0, epochs=max(1, self.epochs),
                            learning_rate=self.learning_rate)
