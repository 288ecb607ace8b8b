"""ONNX sources in onnx's own reference evaluator (``onnx.reference.ReferenceEvaluator``), numpy only.

The parity reference for a graph ONNX Runtime cannot run: an old opset the version converter could not
upgrade, whose operator versions ONNX Runtime no longer implements (``loaders.onnx_loader`` chooses it and
records ``source.opset["reference"] = "onnx.reference"``). It runs the file's graph as it is, every operator
version the ONNX standard defined; it is slow on large graphs (convolutions in numpy), exact on small ones.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import UsageError
from deploykit.core.types import SourceModel
from deploykit.runners.base import Intermediate, Runner

NAME = "onnx.reference"


class OnnxReferenceRunner(Runner):
    name = NAME

    def __init__(self, model: SourceModel):
        super().__init__()
        if model.framework != "onnx":
            raise UsageError(f"OnnxReferenceRunner needs a loaded ONNX source, got {model.framework}")
        self.model = model
        self.proto = model.handle
        self._evaluator = None

    def activate_impl(self):
        self._evaluator = evaluator(self.proto)
        return self.model.inputs, self.model.outputs

    def deactivate_impl(self) -> None:
        self._evaluator = None

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        names = [t.name for t in self.model.outputs]
        return dict(zip(names, (np.asarray(v) for v in self._evaluator.run(names, feeds))))

    def trace(self, feeds: Mapping[str, Any]) -> list[Intermediate]:
        ready = self.check_feeds(feeds)
        values = self._evaluator.run(None, ready, intermediate=True)
        records = []
        nearest: dict[str, tuple[str, ...]] = {}  # tensor -> recorded tensors it stands for
        for node in self.proto.graph.node:
            inputs = tuple(dict.fromkeys(n for i in node.input for n in nearest.get(i, ())))
            for name in node.output:
                value = values.get(name) if name else None
                value = None if value is None else np.asarray(value)
                if value is None or node.op_type == "Constant" or not np.issubdtype(value.dtype, np.floating):
                    nearest[name] = inputs
                    continue
                nearest[name] = (name,)
                records.append(Intermediate(name, f"{node.name or name} ({node.op_type})", node.op_type, value, inputs))
        return records


def evaluator(proto):
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(proto)
