"""``fold_batchnorm`` for PyTorch, on the exported ATen graph.

A ``.pt2`` source already is an exported graph (``torch.export.load(...).module()``); an entry-point
module is exported here with the resolved example inputs. In that graph a batch norm is
``aten.batch_norm`` (or ``aten._native_batch_norm_legit_no_training`` + ``getitem``) whose input is
an ``aten.conv*`` / ``aten.linear`` node with constant weights. TorchScript sources are folded by
``torch.jit.freeze`` (FoldFrozenConvBatchnorm / FoldFrozenLinearBatchnorm), the TorchScript way.
"""

from __future__ import annotations

import copy
import dataclasses
import functools

from deploykit.passes.fold_batchnorm import BatchNormSite
from deploykit.passes.registry import PassResult

_CONV = {"conv1d", "conv2d", "conv3d", "convolution"}
_BATCH_NORM = {"batch_norm", "_native_batch_norm_legit_no_training"}


def sites(source) -> list[BatchNormSite]:
    if source.handle["torchscript"]:
        return _script_sites(source.handle["module"])
    try:
        graph_module = _graph_module(source)
    except Exception:  # not exportable (data-dependent control flow): nothing to analyse or fold
        return []
    return [site for site, *_ in _analyse(graph_module)]


def fold(source, context) -> PassResult:
    import torch

    if source.handle["torchscript"]:
        before = _script_sites(source.handle["module"])
        frozen = torch.jit.freeze(source.handle["module"].eval())
        left = {s.name for s in _script_sites(frozen)}
        items = tuple(s.label for s in before if s.foldable and s.name not in left)
        return PassResult(_with_module(source, frozen), items)
    try:
        exported = _graph_module(source)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return PassResult(source, notes=(f"torch.export failed ({first}); batch norms left to the converter",))
    # A copy: the source graph stays as loaded for the targets that do not run this pass.
    graph_module = copy.deepcopy(exported)
    plan = [(site, bn, producer) for site, bn, producer in _analyse(graph_module) if site.foldable]
    for index, (_, bn, producer) in enumerate(plan):
        _fold_one(graph_module, index, bn, producer)
    graph_module.graph.lint()
    graph_module.recompile()
    return PassResult(_with_module(source, graph_module), tuple(site.label for site, *_ in plan))


def _with_module(source, module):
    return dataclasses.replace(source, handle={**source.handle, "module": module})


def _graph_module(source):
    """The exported ATen graph module of ``source`` (exported once, then cached on the handle)."""
    import torch

    module = source.handle["module"]
    if isinstance(module, torch.fx.GraphModule):
        return module
    cached = source.handle.get("_exported")
    if cached is None:
        from deploykit.loaders.torch_loader import example_tensors

        cached = torch.export.export(module.eval(), example_tensors(source.inputs)).module()
        source.handle["_exported"] = cached
    return cached


def _kind(node) -> str:
    target = getattr(node.target, "__name__", str(node.target))
    return target.split(".")[0] if node.op == "call_function" else ""


def _attr(graph_module, node):
    if node is None or getattr(node, "op", None) != "get_attr":
        return None
    return functools.reduce(getattr, node.target.split("."), graph_module)


def _analyse(graph_module):
    found = []
    for node in graph_module.graph.nodes:
        if _kind(node) not in _BATCH_NORM:
            continue
        args = list(node.args)
        mean = _attr(graph_module, args[3] if len(args) > 3 else None)
        channels = int(mean.shape[0]) if mean is not None else 0
        producer = args[0]
        kind = _kind(producer)
        reason = ""
        if kind not in _CONV and kind != "linear":
            reason = f"follows {kind or producer.op}"
        elif len(producer.users) != 1:
            reason = "the producer's output is used elsewhere"
        elif _attr(graph_module, producer.args[1]) is None or mean is None:
            reason = "weights or statistics are not constants"
        elif _kind(node) == "batch_norm" and len(args) > 5 and args[5]:
            reason = "training-mode batch norm"
        elif kind == "convolution" and len(producer.args) > 6 and producer.args[6]:
            reason = "transposed convolution"
        has_bias = len(producer.args) > 2 and producer.args[2] is not None
        stored = sum(int(t.numel()) for t in (_attr(graph_module, a) for a in args[1:5] if a is not None) if t is not None)
        site = BatchNormSite(_name(node), channels, _name(producer) if not reason else None, has_bias, not reason, reason, stored)
        found.append((site, node, producer))
    return found


def _name(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        return list(stack.values())[-1][0] or node.name
    return node.name


def _fold_one(graph_module, index: int, bn, producer) -> None:
    import torch

    args = list(bn.args)
    weight, bias, mean, var = (_attr(graph_module, a) if a is not None else None for a in args[1:5])
    eps = args[7] if _kind(bn) == "batch_norm" else args[6]
    w = _attr(graph_module, producer.args[1]).detach().double()
    b_node = producer.args[2] if len(producer.args) > 2 else None
    b = _attr(graph_module, b_node).detach().double() if b_node is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    mean, var = mean.detach().double(), var.detach().double()
    gamma = weight.detach().double() if weight is not None else torch.ones_like(mean)
    beta = bias.detach().double() if bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + eps)
    new_w = (w * scale.reshape(-1, *([1] * (w.dim() - 1)))).to(w.dtype if w.is_floating_point() else torch.float32).float()
    new_b = ((b - mean) * scale + beta).float()
    names = (f"_deploykit_fold{index}_weight", f"_deploykit_fold{index}_bias")
    for name, value in zip(names, (new_w, new_b)):
        graph_module.register_buffer(name, value.contiguous())
    graph = graph_module.graph
    with graph.inserting_before(producer):
        w_node, b_node_new = graph.get_attr(names[0]), graph.get_attr(names[1])
    new_args = list(producer.args)
    new_args[1] = w_node
    if len(new_args) > 2:
        new_args[2] = b_node_new
    else:
        new_args.append(b_node_new)
    old_inputs = [a for a in producer.args[1:3] if a is not None]
    producer.args = tuple(new_args)
    users = list(bn.users)
    if _kind(bn) == "batch_norm":
        bn.replace_all_uses_with(producer)
    else:  # (out, mean, rstd) tuple: only getitem 0 may be used
        for user in users:
            user.replace_all_uses_with(producer)
            graph.erase_node(user)
    bn_inputs = [a for a in bn.args[1:5] if a is not None]
    graph.erase_node(bn)
    for node in old_inputs + bn_inputs:
        if not node.users:
            graph.erase_node(node)


def _script_sites(module) -> list[BatchNormSite]:
    """Batch norms in a TorchScript graph (inlined), foldable when fed by a convolution or linear."""
    graph = module.inlined_graph
    found = []
    for node in graph.nodes():
        if node.kind() != "aten::batch_norm":
            continue
        producer = node.inputsAt(0).node()
        kind = producer.kind().split("::")[-1]
        foldable = kind in ("_convolution", "conv1d", "conv2d", "conv3d", "linear")
        name = node.scopeName() or node.output().debugName()
        found.append(BatchNormSite(name, 0, kind if foldable else None, False, foldable, "" if foldable else f"follows {kind}"))
    return found
