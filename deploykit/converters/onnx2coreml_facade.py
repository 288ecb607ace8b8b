"""The one seam between deploykit and onnx2coreml (pinned in constraints.txt): every onnx2coreml call
goes through here, so a version bump touches this file only.

Why onnx2coreml rather than deploykit's own ONNX -> MIL lowering (measured on the corpus, see
docs/conversion.md and bench/results/corpus.md): it builds ML Programs with coremltools' own MIL
builder (the same ops the PyTorch frontend emits, so deploykit's evaluator and MIL passes apply),
keeps the ONNX layout (NCHW in and out; the onnx2tf route turns it into NHWC), converts every
multi-output model of the corpus, and lowers 106 ONNX ops; the few it lacks are deploykit lowerings
(``deploykit.converters.onnx_lowerings``) registered on its converter. deploykit calls
``Converter.to_mil`` and serializes the MIL program itself with ``coremltools.convert``, so its
precision, deployment target and MIL pass pipeline are the same as on the other Core ML paths, and
no third-party author or licence text is stamped into the user's model metadata.
"""

from __future__ import annotations

from deploykit.core.errors import ConversionError, UnsupportedOperatorError
from deploykit.formats import coremltools_facade


def version() -> str:
    import onnx2coreml

    return onnx2coreml.__version__


def to_mil(model, coreml_target: str, precision: str, label: str, lowerings: dict, replacements: dict | None = None):
    """The MIL program for ``model`` (an onnx.ModelProto with static input shapes), built at the
    opset of ``coreml_target``, with deploykit's ``lowerings`` (op type -> ``fn(ctx, node)``) for the ops
    onnx2coreml lacks and ``replacements`` for the ops whose onnx2coreml lowering is inexact; onnx2coreml
    errors become deploykit errors naming the op and node."""
    ct = coremltools_facade.package()
    import onnx2coreml

    converter = onnx2coreml.Converter()
    builtin = _builtin_ops()
    for op_type, fn in lowerings.items():
        if op_type not in builtin:
            converter.register(op_type)(fn)
    for op_type, fn in (replacements or {}).items():
        converter.register(op_type)(fn)
    fp16 = ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32
    try:
        return converter.to_mil(model, target=getattr(ct.target, coreml_target), precision=fp16)
    except onnx2coreml.UnsupportedOpError as exc:
        ops = ", ".join(f"{key} ({len(nodes)} node(s), e.g. {nodes[0]})" for key, nodes in sorted(exc.missing.items()))
        raise UnsupportedOperatorError(f"{label}: no Core ML lowering for ONNX op(s) {ops}",
                                       hint="convert to tflite only, or replace the operator in the source model") from exc
    except onnx2coreml.ConversionError as exc:
        cause = str(exc.cause).strip().splitlines()[0][:300] if str(exc.cause).strip() else type(exc.cause).__name__
        error = UnsupportedOperatorError if isinstance(exc.cause, NotImplementedError) else ConversionError
        raise error(f"{label}: cannot lower ONNX {exc.op_key} node {exc.node_name!r}: {cause}",
                    hint="rerun with --verbose to see the converter's log") from exc
    except onnx2coreml.Onnx2CoreMLError as exc:
        raise ConversionError(f"{label}: {str(exc).strip().splitlines()[0][:300]}") from exc


def _builtin_ops() -> set[str]:
    import onnx2coreml

    return set(onnx2coreml.supported_ops())


def lower_subgraph(ctx, graph) -> list:
    """Lower an ONNX subgraph (an If branch) in a child scope of ``ctx``; returns the MIL Vars of its outputs.

    Outer values stay visible (ONNX subgraphs read enclosing-scope names), the branch's own values do not
    leak out. onnx2coreml lowers no control flow itself, so this reaches into its per-node dispatch
    (``Converter._lower_node``): the one private call, kept here so a version bump is found in this file.
    """
    mb = coremltools_facade.mil_builder()
    from onnx import numpy_helper
    from onnx2coreml._lowering import LoweringContext

    child = LoweringContext(values_map=dict(ctx.values_map), target=ctx.target, converter=ctx.converter)
    for tensor in graph.initializer:
        child.values_map[tensor.name] = mb.const(val=numpy_helper.to_array(tensor))
    for node in graph.node:
        ctx.converter._lower_node(child, node)
    return [child.values_map[o.name] for o in graph.output]
