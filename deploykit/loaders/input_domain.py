"""What values a source model's inputs take, where the model itself says so: the range parity draws from.

Without ``--data``, parity feeds seeded random tensors (``parity.inputs``: uniform on [-1, 1) for
floats, integers on [0, 8)). Some models state another domain in their graph:

- a Keras model whose first layer on an input is ``Rescaling`` (keras.applications' built-in
  preprocessing: ``x / 255``, ``x / 127.5 - 1``) takes what that layer maps onto [0, 1] (no offset) or
  [-1, 1] (a negative offset): 0-255 pixels for both of those;
- a Keras model whose first layer is ``Normalization`` (ConvNeXt's ImageNet mean and variance in pixel
  units) takes, per channel, ``mean +/- sqrt(3 * variance)`` (a uniform draw with the mean and variance
  the layer expects); the union over channels is drawn from;
- an integer input that indexes an embedding table (Keras ``Embedding``, ``aten.embedding`` in an
  exported PyTorch graph, an ONNX ``Gather`` from a 2-D initializer) takes token ids in [0, vocabulary).

Anything else keeps the default. Each domain says why, and the record repeats it. A graph that cannot be
read only means no domain is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deploykit.core.types import SourceModel


@dataclass(frozen=True)
class InputDomain:
    low: float
    high: float  # exclusive for integers
    why: str


def input_domains(model: SourceModel) -> dict[str, InputDomain]:
    """Input name -> its domain, for the inputs whose domain the model states."""
    try:
        if model.framework == "keras" and model.handle is not None and not isinstance(model.handle, (str, dict)):
            found = _keras(model.handle)
        elif model.framework == "torch" and isinstance(model.handle, dict):
            found = _torch(model.handle.get("module"))
        elif model.framework == "onnx" and model.handle is not None:
            found = _onnx(model.handle)
        else:
            return {}
    except Exception:  # noqa: BLE001  (an unreadable graph: the default inputs)
        return {}
    names = {spec.name for spec in model.inputs}
    return {name: domain for name, domain in found.items() if name in names}


# -- Keras ------------------------------------------------------------------------------------------

def _keras(model) -> dict[str, InputDomain]:
    import numpy as np

    domains = {}
    for tensor in getattr(model, "inputs", None) or []:
        name = getattr(tensor, "name", None) or "input"  # the name keras_loader gives the input
        for layer in _keras_consumers(model, tensor):
            kind = type(layer).__name__
            if kind == "Rescaling":
                scale, offset = float(np.ravel(layer.scale)[0]), float(np.ravel(layer.offset)[0])
                target = (0.0, 1.0) if offset >= 0 else (-1.0, 1.0)
                ends = sorted(((target[0] - offset) / scale, (target[1] - offset) / scale))
                domains[name] = InputDomain(_round(ends[0]), _round(ends[1]),
                                            f"its first layer, Rescaling(scale={scale:.6g}, offset={offset:.6g}), maps "
                                            f"[{_round(ends[0]):g}, {_round(ends[1]):g}] onto [{target[0]:g}, {target[1]:g}]")
            elif kind == "Normalization" and not getattr(layer, "invert", False):
                mean = np.ravel(np.asarray(layer.mean, dtype=np.float64))
                spread = np.sqrt(3.0 * np.ravel(np.asarray(layer.variance, dtype=np.float64)))
                low, high = float((mean - spread).min()), float((mean + spread).max())
                if high > low and not (np.allclose(mean, 0) and np.allclose(spread, math.sqrt(3))):
                    domains[name] = InputDomain(_round(low), _round(high),
                                                "its first layer, Normalization, expects per-channel means "
                                                f"{_listed(mean)} and deviations {_listed(spread / math.sqrt(3))}")
            elif kind == "Embedding":
                domains[name] = InputDomain(0, int(layer.input_dim), f"token ids of its Embedding ({layer.name}, "
                                                                      f"{int(layer.input_dim)} rows)")
    return domains


def _keras_consumers(model, tensor) -> list:
    return [layer for layer in getattr(model, "layers", ())
            if any(t is tensor for node in getattr(layer, "_inbound_nodes", ()) for t in node.input_tensors)]


# -- PyTorch (exported graphs) ------------------------------------------------------------------------

def _torch(module) -> dict[str, InputDomain]:
    graph = getattr(module, "graph", None)
    if graph is None:
        return {}
    import functools

    domains = {}
    for node in graph.nodes:
        target = getattr(node.target, "__name__", str(node.target))
        if node.op != "call_function" or not target.startswith("embedding") or len(node.args) < 2:
            continue
        weight, indices = node.args[0], node.args[1]
        if getattr(indices, "op", None) != "placeholder" or getattr(weight, "op", None) != "get_attr":
            continue
        rows = int(functools.reduce(getattr, weight.target.split("."), module).shape[0])
        # ExportedProgram.module() keeps the program's input names as its placeholders' names, as the loader does.
        domains[indices.name] = InputDomain(0, rows, f"token ids of an embedding ({rows} rows)")
    return domains


# -- ONNX ---------------------------------------------------------------------------------------------

def _onnx(proto) -> dict[str, InputDomain]:
    graph = proto.graph
    weights = {t.name: t for t in graph.initializer}
    inputs = {v.name for v in graph.input if v.name not in weights}
    domains = {}
    for node in graph.node:
        if node.op_type != "Gather" or len(node.input) < 2 or node.input[1] not in inputs:
            continue
        table = weights.get(node.input[0])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if table is not None and len(table.dims) == 2 and axis == 0:
            rows = int(table.dims[0])
            domains[node.input[1]] = InputDomain(0, rows, f"token ids of a Gather from a {rows}-row table")
    return domains


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _listed(values) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
