"""``fold_batchnorm`` for ONNX graphs: Conv or Gemm followed by BatchNormalization with constant
statistics. ``torch.onnx.export`` folds Conv + BatchNorm itself in eval mode but leaves
Gemm + BatchNormalization (a ``Linear`` + ``BatchNorm1d``); graphs exported without constant
folding keep every BatchNormalization.

The ONNX conversion paths read the model from a file, so the folded model is written into the
workspace and the returned source points at it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deploykit.passes.fold_batchnorm import BatchNormSite
from deploykit.passes.registry import PassResult


def sites(source) -> list[BatchNormSite]:
    return [site for site, *_ in _analyse(source.handle)]


def fold(source, context) -> PassResult:
    import copy

    import onnx

    model = copy.deepcopy(source.handle)
    plan = [(site, bn, producer) for site, bn, producer in _analyse(model) if site.foldable]
    if not plan:
        return PassResult(source)
    inits = {t.name: t for t in model.graph.initializer}
    for _, bn, producer in plan:
        _fold_one(model.graph, inits, bn, producer)
    _drop_unused_initializers(model.graph)
    path = context.workspace / f"{source.name}.folded.onnx"
    onnx.save(model, str(path))
    return PassResult(dataclasses.replace(source, handle=model, path=str(path)), tuple(s.label for s, *_ in plan))


def _analyse(model):
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    found = []
    for node in graph.node:
        if node.op_type != "BatchNormalization":
            continue
        stats = node.input[1:5]
        channels = int(np.prod(numpy_helper.to_array(inits[stats[2]]).shape)) if stats[2] in inits else 0
        producer = producers.get(node.input[0])
        reason = ""
        if producer is None or producer.op_type not in ("Conv", "Gemm"):
            reason = f"follows {producer.op_type if producer is not None else 'a graph input'}"
        elif uses.get(node.input[0], 0) != 1 or node.input[0] in outputs:
            reason = "the producer's output is used elsewhere"
        elif not all(s in inits for s in stats) or producer.input[1] not in inits:
            reason = "weights or statistics are not constants"
        elif len(producer.input) > 2 and producer.input[2] and producer.input[2] not in inits:
            reason = "the bias is not a constant"
        elif _training(node):
            reason = "training-mode batch norm"
        has_bias = producer is not None and len(producer.input) > 2 and bool(producer.input[2])
        site = BatchNormSite(node.name or node.output[0], channels,
                             (producer.name or producer.output[0]) if not reason else None, has_bias, not reason, reason,
                             4 * channels)
        found.append((site, node, producer))
    return found


def _training(node) -> bool:
    return any(a.name == "training_mode" and a.i for a in node.attribute) or len(node.output) > 1


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _fold_one(graph, inits, bn, producer) -> None:
    from onnx import numpy_helper

    gamma, beta, mean, var = (numpy_helper.to_array(inits[n]).astype(np.float64) for n in bn.input[1:5])
    eps = float(_attrs(bn).get("epsilon", 1e-5))
    scale = gamma / np.sqrt(var + eps)
    weight_init = inits[producer.input[1]]
    weight = numpy_helper.to_array(weight_init).astype(np.float64)
    has_bias = len(producer.input) > 2 and bool(producer.input[2])
    bias = numpy_helper.to_array(inits[producer.input[2]]).astype(np.float64) if has_bias else np.zeros_like(mean)
    if producer.op_type == "Conv":
        weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))  # (out, in/groups, k...)
        bias = (bias - mean) * scale + beta
    else:  # Gemm: Y = alpha * A @ op(B) + beta * C, output features on op(B)'s last axis
        attrs = _attrs(producer)
        beta_c = float(attrs.get("beta", 1.0))  # alpha scales A @ op(B), which now carries the scale
        weight = weight * (scale[:, None] if attrs.get("transB", 0) else scale[None, :])
        bias = (np.broadcast_to(bias * beta_c, mean.shape) - mean) * scale + beta
        if beta_c != 1.0:
            _set_attr(producer, "beta", 1.0)
    dtype = numpy_helper.to_array(weight_init).dtype
    weight_name = _new_initializer(graph, inits, f"{producer.input[1]}_bnfolded", weight.astype(dtype))
    bias_name = _new_initializer(graph, inits, f"{producer.name or producer.output[0]}_bnfolded_bias", bias.astype(dtype))
    inputs = list(producer.input[:2]) + [bias_name]
    inputs[1] = weight_name
    del producer.input[:]
    producer.input.extend(inputs)
    # The producer now writes the batch norm's output name, so every consumer stays wired.
    stale = producer.output[0]
    producer.output[0] = bn.output[0]
    graph.node.remove(bn)
    for info in [v for v in graph.value_info if v.name == stale]:
        graph.value_info.remove(info)


def _set_attr(node, name, value) -> None:
    import onnx

    for attr in list(node.attribute):
        if attr.name == name:
            node.attribute.remove(attr)
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _new_initializer(graph, inits, name, value) -> str:
    from onnx import numpy_helper

    while name in inits:
        name += "_"
    tensor = numpy_helper.from_array(value, name)
    graph.initializer.append(tensor)
    inits[name] = tensor
    return name


def _drop_unused_initializers(graph) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
