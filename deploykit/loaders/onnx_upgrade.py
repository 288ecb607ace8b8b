"""Old ONNX graphs upgraded before anything runs them.

ONNX Runtime dropped the kernels of many old operator versions (BatchNormalization-6, AveragePool-1, Mul-6
with its ``broadcast`` attribute: "Could not find an implementation for BatchNormalization(6)"), and both
converters lower the opset-13+ forms (Split/Squeeze/Unsqueeze axes as inputs, Upsample gone,
BatchNormalization without ``spatial``). So the loader upgrades a graph older than ``MIN_OPSET`` with onnx's
version converter first; the parity reference and every converter then start from that one graph
(``converters.onnx_prepare`` only records it).

    upgrade(model) -> (model, {"file": 6, "upgraded_to": 13})    # or {"file": 6, "not_upgraded": why}

Where the version converter's adapter changes what a graph computes, the graph is corrected before it runs:

- ``PRelu`` below opset 7 applied a 1-D slope of C values per channel (axis 1, Caffe2's semantics, what
  ``torch.onnx`` exported for ``nn.PReLU(C)``); from opset 7 the slope broadcasts from the right, so the
  adapter's unchanged ``(C,)`` slope meets the last axis (ONNX Runtime refuses it, or it silently scales the
  wrong axis when the sizes happen to agree). Such a constant slope becomes ``(C, 1, ..., 1)``.
"""

from __future__ import annotations

# onnx2coreml and onnx2tf both lower the opset-13+ forms; older graphs are upgraded to this opset first.
MIN_OPSET = 13


def opset_of(model) -> int:
    """The version of the default (``ai.onnx``) domain the model imports; 0 when it imports none."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade(model):
    """``(model, record)``: ``model`` upgraded to ``MIN_OPSET`` when it is older, else as it was (never modified).

    ``record`` is ``{"file": N}`` for a graph that needs nothing, ``{"file": N, "upgraded_to": MIN_OPSET}``,
    or ``{"file": N, "not_upgraded": why}`` when the version converter failed (then ``model`` is the original).
    """
    from onnx import version_converter

    before = opset_of(model)
    if before == 0 or before >= MIN_OPSET:  # 0: only custom domains, nothing the converter knows
        return model, {"file": before}
    try:
        fixed = _channel_slopes(model) if before < 7 else model
        upgraded = version_converter.convert_version(fixed, MIN_OPSET)
    except Exception as exc:  # the converter lacks an adapter for some old op
        text = str(exc).strip().splitlines()
        return model, {"file": before, "not_upgraded": f"{type(exc).__name__}: {text[0][:200] if text else ''}".strip()}
    _current_ir(upgraded)
    return upgraded, {"file": before, "upgraded_to": MIN_OPSET}


def _current_ir(model) -> None:
    """The IR version the upgraded opset needs, in place. The version converter leaves it as it was: an IR 3 file
    (PyTorch's exports at opset 6) then holds the constants the adapters add (Split's sizes) as initializers that
    are not graph inputs, which IR 3 forbids, and onnxsim refuses the graph ("_v_7 in initializer but not in
    graph input"). IR 3 listed every initializer among the inputs because it had to; from IR 4 a listed one is an
    input with a default value, so they leave the inputs: they are the weights they always were."""
    from onnx import helper

    needed = helper.find_min_ir_version_for([helper.make_opsetid("", MIN_OPSET)])
    if model.ir_version >= needed:
        return
    if model.ir_version < 4:
        weights = {t.name for t in model.graph.initializer}
        kept = [v for v in model.graph.input if v.name not in weights]
        del model.graph.input[:]
        model.graph.input.extend(kept)
    model.ir_version = needed


def _channel_slopes(model):
    """A copy of ``model`` whose opset < 7 ``PRelu`` nodes with a constant 1-D slope of C > 1 values on an
    input of rank r > 2 read a ``(C, 1, ..., 1)`` slope (r - 1 axes): per channel under opset 7's broadcasting
    too. ``model`` itself when there is none."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    if not any(n.op_type == "PRelu" for n in model.graph.node):
        return model
    ranks = _ranks(model)
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    graph = fixed.graph
    inits = {t.name: t for t in graph.initializer}
    reads: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            reads[name] = reads.get(name, 0) + 1
    changed = False
    for node in graph.node:
        if node.op_type != "PRelu" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        x, slope = node.input
        rank, tensor = ranks.get(x), inits.get(slope)
        if tensor is None or rank is None or rank <= 2 or len(tensor.dims) != 1 or tensor.dims[0] <= 1:
            continue
        values = numpy_helper.to_array(tensor)
        values = np.ascontiguousarray(values.reshape((values.shape[0],) + (1,) * (rank - 2)))
        if reads[slope] == 1:  # only this node reads it: reshaped in place (and where old exporters declare it)
            tensor.CopyFrom(numpy_helper.from_array(values, slope))
            for declared in list(graph.input) + list(graph.value_info):
                if declared.name == slope:
                    declared.type.tensor_type.shape.Clear()
                    declared.type.tensor_type.shape.dim.extend(
                        onnx.TensorShapeProto.Dimension(dim_value=d) for d in values.shape)
        else:
            name = _fresh(f"{slope}__per_channel", fixed)
            graph.initializer.append(numpy_helper.from_array(values, name))
            node.input[1] = name
        changed = True
    return fixed if changed else model


def _ranks(model) -> dict[str, int]:
    """The rank of every tensor shape inference (or the graph's declarations) knows."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    ranks = {}
    for value in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor_type = value.type.tensor_type
        if tensor_type.HasField("shape"):
            ranks[value.name] = len(tensor_type.shape.dim)
    for tensor in inferred.graph.initializer:
        ranks.setdefault(tensor.name, len(tensor.dims))
    return ranks


def _fresh(name: str, model) -> str:
    taken = {t.name for t in model.graph.initializer} | {i for n in model.graph.node for i in list(n.input) + list(n.output)}
    candidate, count = name, 2
    while candidate in taken:
        candidate, count = f"{name}_{count}", count + 1
    return candidate
