"""PyTorch sources: the loaded ``nn.Module`` / GraphModule / TorchScript module, run on CPU in eval mode.

Intermediates come from a ``torch.fx.Interpreter`` walk of a GraphModule (what a ``.pt2`` loads
as), or of ``torch.export`` of an eager module; both keep the graph's edges and the module path
each node came from (``nn_module_stack``). When export fails, forward hooks on leaf modules give
the tensors without edges. TorchScript modules expose none.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import InputError, UsageError
from deploykit.core.types import SourceModel
from deploykit.runners.base import Intermediate, Runner


class TorchRunner(Runner):
    name = "pytorch"

    def __init__(self, model: SourceModel):
        super().__init__()
        if model.framework != "torch" or not isinstance(model.handle, dict):
            raise UsageError(f"TorchRunner needs a loaded PyTorch source, got {model.framework}")
        self.model = model
        self.module = model.handle["module"]
        self.torchscript = bool(model.handle.get("torchscript"))

    def activate_impl(self):
        return self.model.inputs, self.model.outputs

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in self.model.inputs]
        with torch.no_grad():
            result = self.module(*args)
        flat = [result] if isinstance(result, torch.Tensor) else list(result)
        return {t.name: r.detach().cpu().numpy() for t, r in zip(self.model.outputs, flat)}

    def infer_float64(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        """The outputs of a float64 copy of the module (parity's measure of float32 rounding,
        ``parity.conditioning``); raises when the module cannot run in double (a graph that casts to float32)."""
        import copy

        import torch

        if getattr(self, "_double", None) is None:
            self._double = copy.deepcopy(self.module).double()
        args = [torch.from_numpy(np.ascontiguousarray(feeds[t.name])) for t in self.model.inputs]
        args = [a.double() if a.is_floating_point() else a for a in args]
        with torch.no_grad():
            result = self._double(*args)
        flat = [result] if isinstance(result, torch.Tensor) else list(result)
        return {t.name: r.detach().cpu().numpy() for t, r in zip(self.model.outputs, flat)}

    def trace(self, feeds: Mapping[str, Any]) -> list[Intermediate]:
        import torch

        if self.torchscript:
            raise UsageError("localization cannot see inside a TorchScript module",
                             hint="export the model with torch.export.save to a .pt2 file and verify that")
        ready = self.check_feeds(feeds)
        args = tuple(torch.from_numpy(np.ascontiguousarray(ready[t.name])) for t in self.model.inputs)
        graph_module = self.module if isinstance(self.module, torch.fx.GraphModule) else _export(self.module, args)
        if graph_module is None:
            return _hooked(self.module, args)
        return _interpret(graph_module, args)


def _export(module, args):
    import torch

    try:
        return torch.export.export(module, args).module()
    except Exception:  # data-dependent control flow and the like: fall back to hooks
        return None


def _interpret(graph_module, args) -> list[Intermediate]:
    import torch

    records: list[Intermediate] = []
    # Node -> the recorded nodes it stands for: itself if recorded, else its inputs' (so edges pass
    # through tuples, getitem and integer nodes that are not recorded).
    nearest: dict[str, tuple[str, ...]] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            result = super().run_node(node)
            inputs = tuple(dict.fromkeys(n for a in node.all_input_nodes for n in nearest.get(a.name, ())))
            if node.op == "call_function" and isinstance(result, torch.Tensor) and result.is_floating_point():
                stack = list((node.meta.get("nn_module_stack") or {}).values())
                path, cls = stack[-1] if stack else ("", "")
                op = str(node.target).removeprefix("aten.").removesuffix(".default")
                scope = f"{path} ({cls.rsplit('.', 1)[-1]}: {op})" if path else op
                records.append(Intermediate(node.name, scope, op, result.detach().numpy().copy(), inputs))
                nearest[node.name] = (node.name,)
            else:
                nearest[node.name] = inputs
            return result

    with torch.no_grad():
        try:
            Recorder(graph_module).run(*args)
        except Exception as exc:
            raise InputError(f"cannot trace the PyTorch graph for localization: {str(exc).splitlines()[0][:200]}") from exc
    return records


def _hooked(module, args) -> list[Intermediate]:
    import torch

    records: list[Intermediate] = []
    handles = []
    for path, sub in module.named_modules():
        if path and not list(sub.children()):
            def hook(mod, _inputs, output, path=path):
                if isinstance(output, torch.Tensor) and output.is_floating_point():
                    records.append(Intermediate(f"{path}#{len(records)}", f"{path} ({type(mod).__name__})",
                                                type(mod).__name__, output.detach().numpy().copy(), None))
            handles.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(*args)
    finally:
        for handle in handles:
            handle.remove()
    return records
