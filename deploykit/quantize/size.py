"""Size accounting: each artifact against its physical limit, parameters x bits per weight / 8.

``parameters`` counts the values a deployed network must store: every weight and bias of the
source, with each foldable batch norm replaced by what folding leaves (nothing when the conv has a
bias, one bias value per channel when it has not) and each other batch norm by a scale and a shift.
This is stricter than a framework's parameter count (Keras counts batch-norm statistics, PyTorch
does not count buffers), so the ratio shows real overhead: scales, zero points, look-up tables,
tensors kept in float, biases, graph structure and names.
"""

from __future__ import annotations

import math

import numpy as np


def count_parameters(source) -> tuple[int, int]:
    """(deployed parameters, parameters as stored in the source)."""
    from deploykit.passes.fold_batchnorm import batchnorm_sites

    stored = _stored(source)
    if source.framework == "torch" and source.handle["torchscript"]:
        return _frozen_script_constants(source.handle["module"]), stored
    sites = batchnorm_sites(source)
    deployed = stored - sum(s.parameters for s in sites) + sum(s.deployed_parameters for s in sites)
    return deployed, stored


def size_limit(size_bytes: int, parameters: int, source_parameters: int, bits: int) -> dict:
    limit = math.ceil(parameters * bits / 8)
    return {
        "parameters": parameters,
        "source_parameters": source_parameters,
        "bits_per_weight": bits,
        "limit_bytes": limit,
        "ratio": round(size_bytes / limit, 4) if limit else None,
    }


def _stored(source) -> int:
    if source.framework == "keras":
        if source.format == "savedmodel":
            return sum(int(np.prod(v.shape)) for v in source.handle["loaded"].variables)
        return sum(int(np.prod(w.shape)) for w in source.handle.weights)
    if source.framework == "torch":
        state = source.handle["module"].state_dict()
        return sum(int(t.numel()) for t in state.values() if t.is_floating_point())
    from onnx import numpy_helper

    graph = source.handle.graph
    total = sum(int(np.prod(t.dims)) for t in graph.initializer if t.data_type in (1, 10, 11, 16))
    for node in graph.node:  # Constant tensors, except scalars (clip bounds and the like: op arguments)
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type in (1, 10, 11, 16):
                    size = int(numpy_helper.to_array(attr.t).size)
                    total += size if size > 1 else 0
    return total


def _frozen_script_constants(module) -> int:
    """Float constants of the frozen TorchScript graph: freezing folds conv / linear batch norms."""
    import torch

    frozen = torch.jit.freeze(module.eval())
    total = 0
    for node in frozen.graph.nodes():
        if node.kind() == "prim::Constant" and node.output().type().kind() == "TensorType":
            value = node.output().toIValue()
            if value.is_floating_point():
                total += int(value.numel())
    return total
