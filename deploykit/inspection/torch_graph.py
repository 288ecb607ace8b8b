"""PyTorch models: the ATen graph of ``torch.export``, one layer per call_function node.

A .pt2 file is an exported program already; an entry point's module is exported here on the resolved
input shapes; a TorchScript module is re-exported with torch's TorchScript-to-export converter where it
can be. Layer names are the module paths the export records (``features.0``), as in the AlexNet and VGG
per-layer tables.
"""

from __future__ import annotations

from deploykit.core.errors import InputError
from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.model import Inspection
from deploykit.inspection.rules import conv_layer_type, conv_macs, matmul_macs, transposed_conv_macs

# (positional index of weight, bias, groups) per convolution overload; transposed flag where it has one.
_CONVS = {
    "aten.conv1d.default": (1, 2, 6), "aten.conv2d.default": (1, 2, 6), "aten.conv3d.default": (1, 2, 6),
    "aten.convolution.default": (1, 2, 8),
}
_TRANSPOSED = {"aten.conv_transpose1d.input": 6, "aten.conv_transpose2d.input": 6, "aten.conv_transpose3d.input": 6}
_MATMULS = ("aten.mm.default", "aten.bmm.default", "aten.matmul.default", "aten.addmm.default", "aten.baddbmm.default")
# Batch norm overloads and the argument positions of their running statistics, which are state.
_BATCH_NORMS = {"aten.batch_norm.default": (3, 4), "aten._native_batch_norm_legit_no_training.default": (3, 4),
                "aten._native_batch_norm_legit.default": (3, 4), "aten.native_batch_norm.default": (3, 4)}
_ALIASES = ("getitem",)


def inspect(source: str, fmt: str, inputs: list[str] | None) -> Inspection:
    from deploykit.loaders import load_source

    return walk_model(load_source(source, inputs=inputs or None))


def walk_model(model) -> Inspection:
    """The inspection of a loaded torch SourceModel, exported at its resolved input shapes."""
    program = _exported(model)
    builder = GraphBuilder(model.path, model.format)
    _walk(program, builder)
    return builder.build()


def _exported(model):
    import torch

    from deploykit.loaders.torch_loader import example_tensors

    source = model.path
    module = model.handle["module"]
    examples = example_tensors(model.inputs)
    if model.handle["torchscript"]:
        try:
            from torch._export.converter import TS2EPConverter

            return TS2EPConverter(module, examples).convert()
        except Exception as exc:
            raise InputError(f"{source}: torch could not re-export this TorchScript module to count its layers: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}",
                             hint="export the nn.Module with torch.export.save(...) to a .pt2 file and inspect that") from exc
    try:
        with torch.no_grad():
            return torch.export.export(module, examples, strict=False)
    except Exception as exc:
        raise InputError(f"{source}: torch.export could not trace the model to count its layers: "
                         f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from exc


def _walk(program, builder: GraphBuilder) -> None:
    import torch

    signature = program.graph_signature
    constants = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
                 **signature.inputs_to_lifted_tensor_constants}
    user_inputs = set(signature.user_inputs)
    aliases: dict[str, str] = {}
    for node in program.graph.nodes:
        val = node.meta.get("val")
        if node.op == "placeholder":
            if node.name in constants:
                builder.constant(node.name, tuple(val.shape), _dtype(val))
            elif node.name in user_inputs and isinstance(val, torch.Tensor):
                builder.input(node.name, tuple(val.shape), _dtype(val))
        elif node.op == "call_function":
            _node(node, val, builder, aliases)
        elif node.op == "output":
            for arg in node.args[0]:
                if isinstance(arg, torch.fx.Node) and isinstance(arg.meta.get("val"), torch.Tensor):
                    out = arg.meta["val"]
                    builder.output(aliases.get(arg.name, arg.name), tuple(out.shape), _dtype(out))


def _node(node, val, builder: GraphBuilder, aliases: dict[str, str]) -> None:
    import torch

    aten_op = str(node.target)
    if node.target.__name__ in _ALIASES if hasattr(node.target, "__name__") else False:
        source = node.args[0]
        aliases[node.name] = aliases.get(source.name, source.name)
        if builder.is_constant(aliases[node.name]):
            builder.fold([(node.name, tuple(val.shape), _dtype(val))], [aliases[node.name]])
        return
    args = [aliases.get(a.name, a.name) if isinstance(a, torch.fx.Node) else a for a in node.args]
    tensor_args = [a for a in args if isinstance(a, str)]
    first = val[0] if isinstance(val, (tuple, list)) else val
    if not isinstance(first, torch.Tensor):
        return  # a shape computation (sym_size) or a side effect: not a layer
    out_shape, dtype = tuple(first.shape), _dtype(first)
    if tensor_args and all(builder.is_constant(a) for a in tensor_args):
        builder.fold([(node.name, out_shape, dtype)], tensor_args)
        return
    builder.activation(node.name, out_shape, dtype)
    name = _module_path(node) or node.name
    common = dict(name=name, op=aten_op.removeprefix("aten.").removesuffix(".default"), writes=[node.name], output_shape=out_shape)
    if aten_op in _CONVS or aten_op in _TRANSPOSED:
        _conv(node, aten_op, args, out_shape, builder, common)
    elif aten_op == "aten.linear.default":
        weight_shape = _shape_of(node.args[1])
        builder.layer(layer_type="fully_connected", macs=matmul_macs(out_shape, weight_shape[-1]),
                      reads=[args[0]], weights=[a for a in args[1:3] if isinstance(a, str)], **common)
    elif aten_op in _MATMULS:
        left = node.args[1] if aten_op in ("aten.addmm.default", "aten.baddbmm.default") else node.args[0]
        reduced = _shape_of(left)[-1]
        constant = any(builder.is_constant(a) for a in tensor_args)
        builder.layer(layer_type="fully_connected" if constant else "other", macs=matmul_macs(out_shape, reduced),
                      reads=[a for a in tensor_args if not builder.is_constant(a)],
                      weights=[a for a in tensor_args if builder.is_constant(a)], **common)
    elif aten_op in _BATCH_NORMS:
        state = _BATCH_NORMS[aten_op]
        builder.layer(reads=[args[0]], weights=[a for i, a in enumerate(args[1:3], 1) if isinstance(a, str)
                                                 and i not in state], **common)
    else:
        builder.layer(reads=tensor_args, **common)


def _conv(node, aten_op: str, args: list, out_shape: tuple, builder: GraphBuilder, common: dict) -> None:
    in_shape, weight_shape = _shape_of(node.args[0]), _shape_of(node.args[1])
    if aten_op in _TRANSPOSED:
        groups = int(args[_TRANSPOSED[aten_op]]) if len(args) > _TRANSPOSED[aten_op] else 1
        transposed = True
    else:
        _, _, groups_at = _CONVS[aten_op]
        transposed = aten_op == "aten.convolution.default" and bool(args[6])
        groups = int(args[groups_at]) if len(args) > groups_at else 1
    kernel = tuple(weight_shape[2:])
    weights = [a for a in args[1:3] if isinstance(a, str)]
    if transposed:
        out_channels = weight_shape[1] * groups
        builder.layer(layer_type="conv", macs=transposed_conv_macs(in_shape, out_channels, groups, kernel),
                      reads=[args[0]], weights=weights, **common)
        return
    in_channels = in_shape[1]
    builder.layer(layer_type=conv_layer_type(kernel, groups, in_channels, tuple(in_shape[2:])),
                  macs=conv_macs(out_shape, in_channels, groups, kernel), reads=[args[0]], weights=weights, **common)


def _shape_of(node) -> tuple:
    return tuple(int(d) for d in node.meta["val"].shape)


def _module_path(node) -> str | None:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return None
    path = list(stack.values())[-1][0]
    return path.removeprefix("L['self'].").replace("L__self___", "") or None


def _dtype(val) -> str:
    return str(val.dtype).removeprefix("torch.")
