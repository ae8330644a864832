"""Model rebuild: a new functional model with the chosen channels of every group sliced away.

The per-layer-type slicing comes from the rule table (edgeopt.prune.rules); which layers shrink
together comes from the dependency graph (edgeopt.prune.graph).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgeopt.errors import EdgeoptError
from edgeopt.prune.graph import DependencyGraph
from edgeopt.prune.rules import Role, layer_weights

# --- rebuild ----------------------------------------------------------------------------------------

def rebuild(graph: DependencyGraph, keep: Mapping[int, np.ndarray], warnings: list[str]) -> Any:
    """A new functional model with the groups in `keep` (group index -> kept channel indices) sliced.

    Layer names are kept (a name clashing after inlining a nested sub-model gets a numeric suffix).
    Non-layer Keras ops, and layers that cannot be re-created from their config, are reused as is.
    """
    import keras

    flat = graph.flat
    new: dict[int, Any] = {}
    inputs = []
    for key, name in zip(flat.inputs, flat.input_names, strict=True):
        t = flat.tensors[key]
        new[key] = keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=name)
        inputs.append(new[key])
    used: set[str] = set(flat.input_names)
    counts = {g: len(k) for g, k in keep.items()}
    for node in flat.nodes:
        layer = node.layer
        plan = graph.plans.get(id(layer))
        in_keep = out_keep = None
        if plan is not None:
            in_keep = graph.assemble(plan.in_layout, keep)
            out_keep = in_keep if plan.rule.role == Role.CHANNELWISE else graph.assemble(plan.out_layout, keep)
        name = _unique(layer.name, used)
        if not isinstance(layer, keras.layers.Layer):
            new_layer = layer  # stateless Keras op
        else:
            try:
                config = layer.get_config()
                if plan is not None and plan.rule.config is not None and out_keep is not None:
                    config = plan.rule.config(config, len(out_keep))
                if isinstance(layer, keras.layers.Reshape) and config["target_shape"][-1] != -1:
                    dim = graph.layouts[node.outputs[0]].dim(counts)
                    config["target_shape"] = (*tuple(config["target_shape"])[:-1], dim)
                config["name"] = name
                new_layer = type(layer).from_config(config)
            except Exception as exc:  # noqa: BLE001 - any failure means: reuse the instance
                if plan is not None and (in_keep is not None or out_keep is not None):
                    msg = f"internal: cannot re-create pruned layer {layer.name!r}: {exc}"
                    raise EdgeoptError(msg) from None
                warnings.append(f"layer {layer.name!r} ({type(layer).__name__}) cannot be re-created from its config; "
                                "it is shared with the original model")
                new_layer = layer
        tensor_dict = {raw: new[k] for raw, k in zip(node.arg_ids, node.inputs, strict=True)}
        args, kwargs = node.arguments.fill_in(tensor_dict)
        outs = keras.tree.flatten(new_layer(*args, **kwargs))
        for k, t in zip(node.outputs, outs, strict=True):
            new[k] = t
        if new_layer is not layer and layer.weights:
            if plan is not None:
                sliced = plan.rule.prune(layer_weights(layer), in_keep, out_keep)
                # same class, same build order; auto-named variables ("variable_3") differ between instances
                for v, old in zip(new_layer.weights, layer.weights, strict=True):
                    v.assign(sliced[old.name])
            else:
                new_layer.set_weights(layer.get_weights())
    outputs = [new[k] for k in flat.outputs]
    return keras.Model(inputs=inputs[0] if len(inputs) == 1 else inputs,
                       outputs=outputs[0] if len(outputs) == 1 else outputs, name=graph.model_name)


def _unique(name: str, used: set[str]) -> str:
    out, i = name, 1
    while out in used:
        out, i = f"{name}_{i}", i + 1
    used.add(out)
    return out
