"""``drop_alias``: the ``aten.alias`` calls coremltools' PyTorch frontends refuse, removed.

torch.export writes a slice that takes a whole axis (GhostNet's ``torch.cat([x1, x2], 1)[:, :out]`` when
``out`` is all the channels; a Swin window crop after zero padding) as ``aten.alias``: a view of its input,
the same values. ``torch.jit.trace`` of the exported module keeps it as ``aten::alias``, and both of
coremltools' frontends stop there ("PyTorch convert function for op 'alias' not implemented"; the
ExportedProgram frontend: "Unsupported fx node alias"). LiteRT and ExecuTorch take it, so the pass runs
for Core ML only.

PyTorch sources only: the exported graph (``.pt2``, entry points exported as ``fold_batchnorm`` does), and
TorchScript (frozen, rewritten in place).
"""

from __future__ import annotations

import copy
import dataclasses

from deploykit.passes.registry import PassResult, register_pass

_ALIASES = {"alias", "alias_copy"}


@register_pass(
    "drop_alias",
    stage="source",
    needed_for={("torch", "coreml")},
    summary="Remove aten.alias (a view that is its input: a whole-axis slice), which coremltools cannot convert.",
)
def drop_alias(source, context=None) -> PassResult:
    """Remove aten.alias (a view that is its input: a whole-axis slice), which coremltools cannot convert.

    Given:
        %y = aten.alias(%x)
        %z = f(%y)
    Result:
        %z = f(%x)

    An alias has its input's shape, dtype and values, so reading ``%x`` instead is exact. The graphs
    deploykit converts are inference graphs: nothing writes through the view.
    """
    if source.framework != "torch":
        return PassResult(source, notes=("PyTorch sources only; left as is",))
    if source.handle["torchscript"]:
        return _drop_torchscript(source)
    from deploykit.passes.fold_batchnorm_torch import _graph_module

    try:
        exported = _graph_module(source)
    except Exception as exc:  # not exportable: the converter sees the module as it is
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return PassResult(source, notes=(f"torch.export failed ({first}); left as is",))
    aliases = [n for n in exported.graph.nodes if _kind(n) in _ALIASES]
    if not aliases:
        return PassResult(source)
    graph_module = copy.deepcopy(exported)  # the source graph stays as loaded for the other targets
    items = []
    for node in [n for n in graph_module.graph.nodes if _kind(n) in _ALIASES]:
        items.append(_name(node))
        node.replace_all_uses_with(node.args[0])
        graph_module.graph.erase_node(node)
    graph_module.graph.lint()
    graph_module.recompile()
    return PassResult(dataclasses.replace(source, handle={**source.handle, "module": graph_module}), tuple(items))


def _drop_torchscript(source) -> PassResult:
    import torch

    module = source.handle["module"]
    if not any(n.kind() == "aten::alias" for n in module.inlined_graph.nodes()):
        return PassResult(source)
    frozen = torch.jit.freeze(module.eval())
    items = []
    for node in [n for n in frozen.graph.nodes() if n.kind() == "aten::alias"]:
        items.append(node.output().debugName())
        node.output().replaceAllUsesWith(node.inputsAt(0))
        node.destroy()
    return PassResult(dataclasses.replace(source, handle={**source.handle, "module": frozen}), tuple(items))


def _kind(node) -> str:
    target = getattr(node.target, "__name__", str(node.target))
    return target.split(".")[0] if node.op == "call_function" else ""


def _name(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return (list(stack.values())[-1][0] or node.name) if stack else node.name
