"""From the ``Model`` protobuf to a runnable ``Program``, and running it on numpy feeds.

Loading walks ``mlProgram.functions["main"]`` and its block for the function's opset once:
``const`` values are decoded (weight.bin is read here and never again), compressed-weight
``constexpr_*`` ops are decompressed, and every other op becomes an ``OpNode`` whose arguments are
either names bound at run time or constants. Op parameters stored as op attributes (the iOS16
constexpr form) are treated exactly like inputs. Unknown op types are refused at load.

Running feeds the inputs by name, executes the ops in order and rounds each result to the dtype
the program declares for it (fp16 emulation, see ``values``), checking the computed shape against
the declared one. Values no later op needs are dropped as soon as possible.

Control-flow ops (``while_loop``, ``cond``) carry nested blocks, compiled the same way into
``Block``s. A block runs in the scope of its enclosing block: it reads outer values by name, and
what it computes is dropped when it returns. An outer value read inside a block counts as read by
the op that owns the block, so it stays alive until that op is done.
"""

from __future__ import annotations

import contextlib
import re
from collections import ChainMap
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import InputError, UnsupportedOperatorError, UsageError
from deploykit.formats.coreml.values import decode_value, public, tensor_type, to_runtime

from . import ops
from .args import Args, Binding, OpNode, TensorDecl


@dataclass(frozen=True)
class Program:
    """A loaded ML Program function. ``version`` is the iOS version of its opset (CoreML7 -> 17)."""

    opset: str
    version: int
    inputs: tuple[TensorDecl, ...]
    outputs: tuple[TensorDecl, ...]  # MIL values returned by the block
    output_names: tuple[str, ...]  # the model's names for them (usually identical)
    constants: Mapping[str, Any]
    steps: tuple[OpNode, ...]
    frees: tuple[tuple[str, ...], ...]  # names no longer needed after each step
    op_types: Mapping[str, str] = field(default_factory=dict)  # MIL value name -> producing op type


@dataclass(frozen=True)
class Block:
    """A nested block: its inputs (bound by the owning op), own constants, steps and output names."""

    inputs: tuple[TensorDecl, ...]
    constants: Mapping[str, Any]
    steps: tuple[OpNode, ...]
    frees: tuple[tuple[str, ...], ...]
    outputs: tuple[str, ...]


def compile_model(model, blobs, function: str = "main") -> Program:
    if model.WhichOneof("Type") != "mlProgram":
        raise InputError(f"the model is a {model.WhichOneof('Type')}, not an ML Program",
                         hint="the numpy evaluator handles ML Programs (convert_to='mlprogram') only")
    if function not in model.mlProgram.functions:
        raise InputError(f"the ML Program has no function {function!r}")
    fn = model.mlProgram.functions[function]
    if fn.opset not in fn.block_specializations:
        raise InputError(f"function {function!r} has no block for its opset {fn.opset!r}")
    version = _ios_version(fn.opset)
    block = fn.block_specializations[fn.opset]

    inputs = tuple(_decl(v, f"input '{v.name}'") for v in fn.inputs)
    decls: dict[str, TensorDecl] = {d.name: d for d in inputs}
    op_types: dict[str, str] = {}
    constants, steps = _compile_ops(block.operations, blobs, decls, {}, version, op_types)
    outputs = []
    for name in block.outputs:
        if name not in decls:
            raise InputError(f"the program returns '{name}', which nothing produces")
        outputs.append(decls[name])
    model_outputs = [o.name for o in model.description.output]
    names = tuple(model_outputs) if len(model_outputs) == len(outputs) else tuple(o.name for o in outputs)
    return Program(
        opset=fn.opset, version=version, inputs=inputs, outputs=tuple(outputs), output_names=names,
        constants=MappingProxyType(constants), steps=tuple(steps),
        frees=_liveness(steps, {o.name for o in outputs}), op_types=MappingProxyType(op_types),
    )


def _compile_ops(operations, blobs, decls: dict, outer_constants: Mapping[str, Any], version: int,
                 op_types: dict) -> tuple[dict[str, Any], list[OpNode]]:
    """(constants, steps) of one block; ``decls`` gains every value the block defines."""
    constants: dict[str, Any] = {}
    scope = ChainMap(constants, outer_constants)  # constexpr ops may read constants of enclosing blocks
    steps: list[OpNode] = []
    for op_proto in operations:
        node = _node(op_proto, blobs, decls, scope, version, op_types)
        decls.update((o.name, o) for o in node.outputs)
        op_types.update((o.name, node.type) for o in node.outputs)
        if node.type == "const":
            constants[node.outputs[0].name] = _const_value(op_proto, node.outputs[0], blobs)
            continue
        impl = ops.lookup(node.type, node.outputs[0].name if node.outputs else "?")
        if impl.constexpr:
            constants.update(_execute(node, impl.fn, scope, version))
        else:
            steps.append(node)
    for value in constants.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False  # shared by every run (and cached): never modified in place
    return constants, steps


def _compile_block(block_proto, blobs, known: Mapping[str, TensorDecl], outer_constants, version: int,
                   op_types: dict, where: str) -> Block:
    inputs = tuple(_decl(v, f"{where} block input '{v.name}'") for v in block_proto.inputs)
    decls = dict(known)
    decls.update((d.name, d) for d in inputs)
    constants, steps = _compile_ops(block_proto.operations, blobs, decls, outer_constants, version, op_types)
    for name in block_proto.outputs:
        if name not in decls:
            raise InputError(f"Core ML program: a block of {where} returns '{name}', which nothing produces")
    outputs = tuple(block_proto.outputs)
    return Block(inputs=inputs, constants=MappingProxyType(constants), steps=tuple(steps),
                 frees=_liveness(steps, set(outputs)), outputs=outputs)


def check_feeds(program: Program, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Feeds by input name, checked (names, shapes, dtype kinds) and rounded to the declared types.

    A float feed for an fp16 input is accepted and rounded, as Core ML converts float32
    MLMultiArrays for fp16 inputs; an integer feed for a float input (or the reverse) is refused.
    """
    names = [d.name for d in program.inputs]
    unknown = sorted(set(feeds) - set(names))
    if unknown:
        raise UsageError(f"unknown input(s) {unknown}; the model takes {names}")
    ready = {}
    for decl in program.inputs:
        if decl.name not in feeds:
            raise UsageError(f"missing input '{decl.name}'; the model takes {names}")
        arr = np.asarray(feeds[decl.name])
        if decl.shape is not None and (arr.ndim != len(decl.shape) or any(
                d is not None and d != s for d, s in zip(decl.shape, arr.shape))):
            wanted = tuple("?" if d is None else d for d in decl.shape)
            raise UsageError(f"input '{decl.name}' has shape {arr.shape}, the model expects {wanted}")
        if _kind(arr.dtype) != _kind(decl.dtype.public):
            raise UsageError(f"input '{decl.name}' has dtype {arr.dtype}, the model expects {decl.dtype.name}")
        ready[decl.name] = to_runtime(arr, decl.dtype)
    return ready


def _kind(dtype) -> str:
    dtype = np.dtype(dtype)
    return "float" if np.issubdtype(dtype, np.floating) else "bool" if dtype == np.bool_ else "int"


def run(program: Program, feeds: Mapping[str, np.ndarray], keep_intermediates: bool = False,
        threads: int | None = 1, fp16_results=None):
    """Outputs by model output name, and (if asked) every op result by MIL name, public dtypes.

    ``threads`` caps BLAS threads while running (None: leave BLAS as configured). One is the
    default because the per-layer matrix products are small: on 2 shared cores a multi-threaded
    OpenBLAS spent most of its time spinning (MobileNetV2 224: 0.6 s with 2 threads under load,
    0.05 s with 1).

    ``fp16_results``: a predicate on an op; the float32 results of the main block's ops it accepts are
    rounded to fp16, which is how an fp32 program is made to estimate its fp16 conversion
    (``quantize.fp16_mixed``: the evaluator emulates declared fp16 the same way, by rounding results).
    """
    with blas_threads(threads):
        return _run(program, feeds, keep_intermediates, fp16_results)


def _run(program: Program, feeds: Mapping[str, np.ndarray], keep_intermediates: bool, fp16_results=None):
    env: dict[str, Any] = dict(program.constants)
    env.update(check_feeds(program, feeds))
    intermediates: dict[str, np.ndarray] | None = {} if keep_intermediates else None
    _run_steps(program.steps, program.frees, env, program.version, intermediates, fp16_results)
    outputs = {name: public(env[decl.name], decl.dtype) for name, decl in zip(program.output_names, program.outputs)}
    if not keep_intermediates:
        return outputs, None
    decls = {o.name: o for node in program.steps for o in node.outputs}
    return outputs, {name: public(v, decls[name].dtype) for name, v in intermediates.items()}


def _run_steps(steps, frees, env, version: int, intermediates: dict | None = None, fp16_results=None) -> None:
    """Execute ``steps`` into ``env``; with ``intermediates`` given, record results and free nothing."""
    for index, node in enumerate(steps):
        impl = ops.lookup(node.type, node.outputs[0].name)
        rounding = fp16_results is not None and fp16_results(node)
        for name, value in _execute(node, impl.fn, env, version).items():
            if rounding and isinstance(value, np.ndarray) and value.dtype == np.float32:
                value = value.astype(np.float16).astype(np.float32)
            env[name] = value
            if intermediates is not None:
                intermediates[name] = value
        if intermediates is None:
            for name in frees[index]:
                env.pop(name, None)  # in a nested block's scope this only ever drops the block's own values


def _run_block(block: Block, values: list, env: Mapping[str, Any], version: int) -> list:
    if len(values) != len(block.inputs):
        raise UnsupportedOperatorError(f"Core ML evaluator: a block taking {len(block.inputs)} inputs was given {len(values)}")
    local = {decl.name: value for decl, value in zip(block.inputs, values)}
    scope = ChainMap(local, block.constants, env)
    _run_steps(block.steps, block.frees, scope, version)
    return [scope[name] for name in block.outputs]


_controller = None


def blas_threads(threads: int | None):
    """A context capping BLAS threads (threadpoolctl, which scikit-learn brings), or a no-op."""
    global _controller
    if threads is None:
        return contextlib.nullcontext()
    try:
        import threadpoolctl
    except ImportError:
        return contextlib.nullcontext()
    if _controller is None:
        _controller = threadpoolctl.ThreadpoolController()
    return _controller.limit(limits=threads, user_api="blas")


def _execute(node: OpNode, fn, env: Mapping[str, Any], version: int) -> dict[str, Any]:
    args = Args(node, env, version, run_block=lambda block, values: _run_block(block, values, env, version))
    result = fn(args)
    args.finish()
    results = result if isinstance(result, tuple) else (result,)
    if len(results) != len(node.outputs):
        raise UnsupportedOperatorError(f"Core ML evaluator: {args.where} declares {len(node.outputs)} outputs, "
                                       f"the implementation gave {len(results)}")
    return {decl.name: _conform(value, decl, args) for decl, value in zip(node.outputs, results)}


def _conform(value, decl: TensorDecl, args: Args):
    """Check the computed shape against the declared one, and round to the declared dtype."""
    arr = np.asarray(value)
    if decl.shape is not None:
        same = arr.ndim == len(decl.shape) and all(d is None or d == s for d, s in zip(decl.shape, arr.shape))
        if not same:
            raise UnsupportedOperatorError(
                f"Core ML evaluator: {args.where} computed shape {arr.shape}, the program declares "
                f"{tuple('?' if d is None else d for d in decl.shape)}; the implementation does not match this case")
    return to_runtime(arr, decl.dtype)


def _node(op_proto, blobs, known: Mapping[str, TensorDecl], constants: Mapping[str, Any] = MappingProxyType({}),
          version: int = 0, op_types: dict | None = None) -> OpNode:
    outputs = tuple(_decl(o, f"op '{op_proto.type}' output '{o.name}'") for o in op_proto.outputs)
    first = outputs[0].name if outputs else "?"
    where = f"op '{op_proto.type}' (output '{first}')"
    blocks = tuple(_compile_block(b, blobs, known, constants, version, {} if op_types is None else op_types, where)
                   for b in op_proto.blocks)
    inputs: dict[str, tuple[Binding, ...]] = {}
    for key, argument in op_proto.inputs.items():
        bindings = []
        for binding in argument.arguments:
            if binding.WhichOneof("binding") == "name":
                if binding.name not in known:
                    raise InputError(f"Core ML program: {where} reads '{binding.name}' before it is produced")
                bindings.append(Binding(name=binding.name))
            else:
                bindings.append(Binding(value=decode_value(binding.value, blobs, f"{where} argument '{key}'")))
        inputs[key] = tuple(bindings)
    for key, value in op_proto.attributes.items():
        if key == "name" or (op_proto.type == "const" and key == "val"):
            continue
        if key in inputs:
            raise InputError(f"Core ML program: {where} gives '{key}' both as input and as attribute")
        inputs[key] = (Binding(value=decode_value(value, blobs, f"{where} attribute '{key}'")),)
    if op_proto.type == "const" and (inputs or len(outputs) != 1):
        raise UnsupportedOperatorError(f"Core ML evaluator: {where} has unexpected arguments {sorted(inputs)}")
    name = first
    if "name" in op_proto.attributes:
        name = str(decode_value(op_proto.attributes["name"], blobs, f"{where} attribute 'name'"))
    return OpNode(type=op_proto.type, name=name, inputs=MappingProxyType(inputs), outputs=outputs, blocks=blocks)


def _const_value(op_proto, decl: TensorDecl, blobs):
    where = f"op 'const' (output '{decl.name}')"
    if "val" not in op_proto.attributes:
        raise InputError(f"Core ML program: {where} has no value")
    value = decode_value(op_proto.attributes["val"], blobs, where)
    if isinstance(value, str):
        return value
    if decl.shape is not None and value.shape != decl.shape:
        raise InputError(f"Core ML program: {where} holds shape {value.shape}, declares {decl.shape}")
    return to_runtime(value, decl.dtype)


def _decl(named_value_type, where: str) -> TensorDecl:
    dtype, shape = tensor_type(named_value_type.type, where)
    return TensorDecl(named_value_type.name, dtype, shape)


def _ios_version(opset: str) -> int:
    match = re.fullmatch(r"CoreML(\d+)", opset)
    if not match:
        raise InputError(f"unknown ML Program opset {opset!r}")
    return int(match.group(1)) + 10  # CoreML5 is the iOS15 opset, CoreML8 the iOS18 one


def _reads(node: OpNode):
    """Names the node reads, including those its nested blocks read (and return) from any scope."""
    for bindings in node.inputs.values():
        for b in bindings:
            if b.name is not None:
                yield b.name
    for block in node.blocks:
        yield from block.outputs
        for step in block.steps:
            yield from _reads(step)


def _liveness(steps: list[OpNode], keep: set[str]) -> tuple[tuple[str, ...], ...]:
    last: dict[str, int] = {}
    for index, node in enumerate(steps):
        for name in _reads(node):
            last[name] = index
    frees: list[list[str]] = [[] for _ in steps]
    for name, index in last.items():
        if name not in keep:
            frees[index].append(name)
    return tuple(tuple(f) for f in frees)
