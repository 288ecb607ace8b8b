"""``decompose_prelu``: the PReLUs coremltools' PyTorch frontend refuses, as relu / mul / sub.

coremltools lowers ``aten::prelu`` to MIL ``prelu``, which takes a per-channel alpha only on rank-4
inputs: on rank 3 and 5 it fails with "prelu op: rank 3 or rank 5 input is only supported when all
the values of alpha are same", and a rank-2 input (a PReLU after ``nn.Linear``, as in MTCNN R-Net
and O-Net) is expanded to rank 3 first and fails the same way. MIL ``prelu`` takes no rank above 5.

ExecuTorch's XNNPACK lowering fails on the same PReLUs (its ChannelsLastTaggedReshapePass raises on MTCNN
R-Net's and O-Net's per-channel PReLU after ``nn.Linear``; the rewritten graph lowers, every op delegated,
bench/results/corpus-executorch.md), so the pass runs for the executorch target too.

Decision: rewrite exactly the PReLUs that would be refused (``refused``): input rank other than 4
with more than one alpha value, and any input rank above 5. A single alpha on rank 1-5, and any
rank-4 PReLU, stay one ``prelu`` op in the artifact. A per-channel alpha whose values happen to be
equal (which coremltools would take) is rewritten too: the rewrite is exact either way, and what
runs then depends on the graph alone, not on trained values.

PyTorch sources only, in the form the torch loader produces: the exported graph (``.pt2``, and
entry-point modules exported here as ``fold_batchnorm`` does; an entry point torch.export cannot
export has its ``nn.PReLU`` submodules swapped instead), and TorchScript (frozen, rewritten in place).
"""

from __future__ import annotations

import copy
import dataclasses
import functools

from deploykit.passes.registry import PassResult, register_pass

# aten.prelu is what torch.export keeps; _prelu_kernel is what it decomposes to with run_decompositions.
_PRELU = {"prelu", "_prelu_kernel"}


def refused(rank: int, alphas: int) -> bool:
    """Whether coremltools' torch frontend refuses a PReLU of this input rank and alpha count."""
    return rank > 5 or (rank != 4 and alphas > 1)


@register_pass(
    "decompose_prelu",
    stage="source",
    needed_for={("torch", "coreml"), ("torch", "executorch")},
    summary="Rewrite the PReLUs coremltools refuses (per-channel alpha on rank 2, 3, 5) as relu(x) - alpha * relu(-x).",
)
def decompose_prelu(source, context=None) -> PassResult:
    """Rewrite the PReLUs coremltools refuses (per-channel alpha on rank 2, 3, 5) as relu(x) - alpha * relu(-x).

    Given:
        %y = prelu(%x, alpha)                    # %x of rank 2, 3 or 5 (or above 5), alpha of shape (C,)
    Result:
        %p = relu(%x)
        %n = relu(neg(%x))
        %y = sub(%p, mul(%n, alpha'))            # alpha' = alpha reshaped to (C,), (C, 1) or (C, 1, 1, 1)

    alpha' broadcasts over the channel axis 1, as PReLU does, so the result is exact
    (max(x, 0) - a * max(-x, 0) is x for x >= 0 and a * x otherwise). ``sub`` rather than ``add`` of
    a negated alpha keeps coremltools' own ``fuse_prelu`` pass (it matches ``relu(x) + a * relu(-x)``)
    from folding the pattern back into the prelu it refuses. The rank is read from the exported
    graph's shape metadata (``meta["val"]``), or from a run on the example inputs.
    """
    if source.framework != "torch":
        return PassResult(source, notes=("PyTorch sources only; left as is",))
    if source.handle["torchscript"]:
        return _rewrite_torchscript(source)
    try:
        exported = _graph_module(source)
    except Exception as exc:  # not exportable (data-dependent control flow): swap nn.PReLU modules instead
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        result = _swap_modules(source)
        return dataclasses.replace(result, notes=(f"torch.export failed ({first}); nn.PReLU modules swapped",))
    # A copy: the source graph stays as loaded for the targets that do not run this pass.
    graph_module = copy.deepcopy(exported)
    ranks = _ranks(graph_module, source)
    items, unknown = [], []
    for node in [n for n in graph_module.graph.nodes if _kind(n) in _PRELU]:
        alpha, rank = _attr(graph_module, node.args[1]), ranks.get(node.name)
        if rank is None or alpha is None:  # not a constant alpha, or no shape: nothing exact to write
            unknown.append(_name(node))
        elif refused(rank, int(alpha.numel())):
            _rewrite_fx(graph_module, node, len(items), alpha, rank)
            items.append(f"{_name(node)} (rank {rank})")
    notes = (f"left to the converter (alpha not a constant or rank unknown): {', '.join(unknown)}",) if unknown else ()
    if not items:
        return PassResult(source, notes=notes)
    graph_module.graph.lint()
    graph_module.recompile()
    return PassResult(_with_module(source, graph_module), tuple(items), notes)


def _channel_shaped(alpha, rank: int):
    """alpha as (C,) for rank 2, (C, 1) for rank 3, (C, 1, 1, 1) for rank 5: broadcast over axis 1."""
    return alpha.detach().reshape(-1, *([1] * max(rank - 2, 0))).contiguous()


# --- exported graphs (.pt2, entry points) ------------------------------------------------------

def _graph_module(source):
    """The exported graph: the .pt2's own, or the entry point exported once and cached on the handle
    (the same cache ``fold_batchnorm`` uses, so a conversion exports once)."""
    from deploykit.passes.fold_batchnorm_torch import _graph_module as exported

    return exported(source)


def _ranks(graph_module, source) -> dict[str, int]:
    """Input rank of each PReLU node, from ``meta["val"]``; when a graph lacks it, from ShapeProp's
    run on the example inputs (``meta["tensor_meta"]``)."""
    prelus = [n for n in graph_module.graph.nodes if _kind(n) in _PRELU]
    if not all(hasattr(n.args[0].meta.get("val"), "dim") for n in prelus):
        import torch
        from torch.fx.passes.shape_prop import ShapeProp

        from deploykit.loaders.torch_loader import example_tensors

        with torch.no_grad():
            ShapeProp(graph_module).propagate(*example_tensors(source.inputs))
    ranks = {}
    for node in prelus:
        val, shape_meta = node.args[0].meta.get("val"), node.args[0].meta.get("tensor_meta")
        if hasattr(val, "dim"):
            ranks[node.name] = val.dim()
        elif shape_meta is not None:
            ranks[node.name] = len(shape_meta.shape)
    return ranks


def _rewrite_fx(graph_module, node, index: int, alpha, rank: int) -> None:
    import torch

    aten = torch.ops.aten
    name = f"_deploykit_prelu{index}_alpha"
    graph_module.register_buffer(name, _channel_shaped(alpha, rank))
    graph = graph_module.graph
    x, meta = node.args[0], dict(node.meta)
    with graph.inserting_before(node):
        alpha_node = graph.get_attr(name)
        positive = graph.call_function(aten.relu.default, (x,))
        negated = graph.call_function(aten.neg.default, (x,))
        negative = graph.call_function(aten.relu.default, (negated,))
        scaled = graph.call_function(aten.mul.Tensor, (negative, alpha_node))
        result = graph.call_function(aten.sub.Tensor, (positive, scaled))
    # Every new value has the PReLU's shape; keeping meta (val, nn_module_stack) lets later passes
    # read ranks and names from the rewritten graph as from an exported one.
    for new in (positive, negated, negative, scaled, result):
        new.meta.update(meta)
    node.replace_all_uses_with(result)
    old_alpha = node.args[1]
    graph.erase_node(node)
    if getattr(old_alpha, "op", None) == "get_attr" and not old_alpha.users:
        graph.erase_node(old_alpha)


def _kind(node) -> str:
    target = getattr(node.target, "__name__", str(node.target))
    return target.split(".")[0] if node.op == "call_function" else ""


def _attr(graph_module, node):
    if getattr(node, "op", None) != "get_attr":
        return None
    return functools.reduce(getattr, node.target.split("."), graph_module)


def _name(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        return list(stack.values())[-1][0] or node.name
    return node.name


def _with_module(source, module):
    return dataclasses.replace(source, handle={**source.handle, "module": module})


# --- entry points torch.export cannot export ----------------------------------------------------

def _swap_modules(source) -> PassResult:
    """Replace refused ``nn.PReLU`` submodules by the decomposition; ranks from one run on the example inputs.
    A functional ``F.prelu`` call is out of reach here and is left to the converter."""
    import torch

    from deploykit.loaders.torch_loader import example_tensors

    module = copy.deepcopy(source.handle["module"]).eval()
    ranks: dict[str, set] = {}
    hooks = [m.register_forward_pre_hook(functools.partial(_note_rank, ranks, path))
             for path, m in module.named_modules() if isinstance(m, torch.nn.PReLU)]
    try:
        with torch.no_grad():
            module(*example_tensors(source.inputs))
    finally:
        for hook in hooks:
            hook.remove()
    items = []
    for path, seen in ranks.items():
        prelu = module.get_submodule(path)
        # One module called at several ranks has no single alpha shape; it stays a PReLU.
        if len(seen) != 1 or not refused(next(iter(seen)), prelu.weight.numel()):
            continue
        rank = next(iter(seen))
        parent, _, leaf = path.rpartition(".")
        setattr(module.get_submodule(parent), leaf, _decomposed_module(_channel_shaped(prelu.weight, rank)))
        items.append(f"{path} (rank {rank})")
    return PassResult(_with_module(source, module) if items else source, tuple(items))


def _note_rank(ranks: dict, path: str, _module, args) -> None:
    ranks.setdefault(path, set()).add(args[0].dim())


def _decomposed_module(alpha):
    """An nn.Module computing relu(x) - alpha * relu(-x) (the class is built here: torch loads lazily)."""
    import torch

    class DecomposedPReLU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("alpha", alpha)

        def forward(self, x):
            return torch.relu(x) - self.alpha * torch.relu(-x)

    return DecomposedPReLU()


# --- TorchScript --------------------------------------------------------------------------------

def _rewrite_torchscript(source) -> PassResult:
    """Freeze (alpha becomes a constant), learn each prelu's input rank by running a copy of the graph
    that also returns those inputs, then rewrite the frozen graph in place."""
    import torch

    from deploykit.loaders.torch_loader import example_tensors

    module = source.handle["module"]
    if not any(n.kind() == "aten::prelu" for n in module.inlined_graph.nodes()):
        return PassResult(source)
    frozen = torch.jit.freeze(module.eval())
    graph = frozen.graph
    prelus = [n for n in graph.nodes() if n.kind() == "aten::prelu"]
    try:
        ranks = _torchscript_ranks(graph, len(prelus), example_tensors(source.inputs))
    except Exception as exc:  # e.g. a frozen graph that still reads ``self``: no probe, no rewrite
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        return PassResult(source, notes=(f"TorchScript ranks unknown ({first}); PReLUs left to the converter",))
    items = []
    for node, rank in zip(prelus, ranks):
        alpha_node = node.inputsAt(1).node()
        if alpha_node.kind() != "prim::Constant" or not refused(rank, alpha_node.t("value").numel()):
            continue
        alpha = _channel_shaped(alpha_node.t("value"), rank)
        with graph.insert_point_guard(node):
            x = node.inputsAt(0)
            positive = graph.insert("aten::relu", [x])
            negative = graph.insert("aten::relu", [graph.insert("aten::neg", [x])])
            scaled = graph.insert("aten::mul", [negative, graph.insertConstant(alpha)])
            result = graph.insert("aten::sub", [positive, scaled])
        node.output().replaceAllUsesWith(result)
        node.destroy()
        items.append(f"{_torchscript_label(alpha_node)} (rank {rank})")
    if not items:
        return PassResult(source)
    torch._C._jit_pass_dce(graph)
    return PassResult(_with_module(source, frozen), tuple(items))


def _torchscript_label(alpha_node) -> str:
    """``p1`` for the frozen constant ``self.p1.weight``: the PReLU module's path."""
    name = alpha_node.output().debugName()
    return name.removeprefix("self.").removesuffix(".weight") or name


def _torchscript_ranks(graph, count: int, examples) -> list[int]:
    import torch

    probe = graph.copy()
    probe.eraseInput(0)  # ``self``: unused once frozen
    originals = list(probe.outputs())
    for node in [n for n in probe.nodes() if n.kind() == "aten::prelu"]:
        probe.registerOutput(node.inputsAt(0))
    probe.makeMultiOutputIntoTuple()
    with torch.no_grad():
        values = torch._C._create_function_from_graph("deploykit_prelu_ranks", probe)(*examples)
    return [v.dim() for v in values[len(originals):len(originals) + count]]
