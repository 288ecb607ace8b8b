"""ONNX sources with ONNX Runtime's CPU provider, from the already loaded ``onnx.ModelProto``.

Intermediates: every node output is added as a graph output of a copy of the model (types from
shape inference where known), so one run returns all of them with the graph's edges.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import UsageError
from deploykit.core.types import SourceModel
from deploykit.runners.base import Intermediate, Runner


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"

    def __init__(self, model: SourceModel):
        super().__init__()
        if model.framework != "onnx":
            raise UsageError(f"OnnxRuntimeRunner needs a loaded ONNX source, got {model.framework}")
        self.model = model
        self.proto = model.handle
        self._session = None

    def activate_impl(self):
        self._session = _session(self.proto, optimize=True)
        return self.model.inputs, self.model.outputs

    def deactivate_impl(self) -> None:
        self._session = None

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        names = [t.name for t in self.model.outputs]
        return dict(zip(names, self._session.run(names, feeds)))

    def trace(self, feeds: Mapping[str, Any]) -> list[Intermediate]:
        import onnx

        ready = self.check_feeds(feeds)
        model = onnx.ModelProto()
        model.CopyFrom(self.proto)
        try:
            inferred = onnx.shape_inference.infer_shapes(model)
            typed = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
        except Exception:
            typed = {}
        existing = {o.name for o in model.graph.output}
        wanted = []
        for node in model.graph.node:
            for name in node.output:
                if name and name not in existing:
                    model.graph.output.append(typed.get(name) or onnx.helper.ValueInfoProto(name=name))
                    existing.add(name)
                wanted.append((node, name))
        session = _session(model, optimize=False)
        available = {o.name for o in session.get_outputs()}
        names = [name for _, name in wanted if name in available]
        values = dict(zip(names, session.run(names, ready)))
        records = []
        nearest: dict[str, tuple[str, ...]] = {}  # tensor -> recorded tensors it stands for
        for node, name in wanted:
            value = values.get(name)
            inputs = tuple(dict.fromkeys(n for i in node.input for n in nearest.get(i, ())))
            if value is None or node.op_type == "Constant" or not np.issubdtype(value.dtype, np.floating):
                nearest[name] = inputs
                continue
            nearest[name] = (name,)
            records.append(Intermediate(name, f"{node.name or name} ({node.op_type})", node.op_type, value, inputs))
        return records


def _session(proto, *, optimize: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:  # fusions would hide the intermediates localization compares
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
