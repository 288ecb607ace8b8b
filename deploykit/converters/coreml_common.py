"""What every Core ML path shares: deployment targets, compute precision (fp32, or fp16 with the
variance of normalizations kept fp32), meaningful feature names, saving."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import ConversionError, UnsupportedOperatorError
from deploykit.formats import coremltools_facade


def deployment_target(name: str):
    ct = coremltools_facade.package()
    return getattr(ct.target, name)


def tensor_types(inputs):
    ct = coremltools_facade.package()
    import numpy as np

    from deploykit.core.names import feature_names

    return [ct.TensorType(name=name, shape=coreml_shape(t), dtype=np.dtype(t.dtype).type)
            for name, t in zip(feature_names(t.name for t in inputs), inputs)]


def coreml_shape(spec):
    """The static shape, or Core ML's ``EnumeratedShapes`` / ``RangeDim`` shape of a flexible input."""
    ct = coremltools_facade.package()
    from deploykit.core.flexible import flexible_of

    flexible = flexible_of(spec)
    if flexible is None:
        return spec.shape
    if flexible.kind == "enumerated":
        return ct.EnumeratedShapes(shapes=[list(s) for s in flexible.shapes], default=list(flexible.default))
    return ct.Shape(shape=tuple(low if low == high else ct.RangeDim(lower_bound=low, upper_bound=high, default=low)
                                for low, high in flexible.bounds))


def output_types(outputs, named: bool):
    """Float outputs stay float32 in every variant: with fp16 compute and an iOS16+ target coremltools
    would make them float16, and an app's interface must not change between fp32 and fp16 artifacts.
    The TensorFlow frontend names outputs itself (``named=False``); PyTorch takes the source's names."""
    ct = coremltools_facade.package()
    import numpy as np

    from deploykit.core.names import feature_names

    types = []
    for name, spec in zip(feature_names(s.name for s in outputs), outputs):
        dtype = np.float32 if str(spec.dtype).startswith("float") else None
        types.append(ct.TensorType(name=name, dtype=dtype) if named else ct.TensorType(dtype=dtype))
    return types


# fp16 programs keep the variance of a normalization written out as elementwise ops in fp32: the
# square, the mean (or sum) of the squares, the epsilon added to it, and its square root. That is the
# form ONNX exports of LayerNorm (opset < 17, Paddle), ConvNeXt's channels-first LayerNorm and RMSNorm
# (``x.pow(2).mean(-1)``) reach Core ML in; coremltools fuses none of these into ``layer_norm``. In fp16
# the square overflows (inf) once |x - mean| > 255.9, although the normalized output is in range
# (TensorRT warns about the same pattern and forces its Reduce/Pow layers to fp32). Nothing else is
# kept: softmax, reduce_mean, erf, matmul, linear in fp32 measured no gain on PP-OCRv6 (docs/quantization.md,
# "Core ML fp16: the ops kept in fp32"), the evaluator computes fused ops (layer_norm, softmax) in fp32
# anyway, and an fp32 op leaves the Neural Engine, which computes fp16 only.
FP32_VARIANCE_OPS = "square -> reduce_mean/reduce_sum -> + epsilon -> sqrt/rsqrt (variance of a normalization)"
_SQUARE_REDUCTIONS = ("reduce_mean", "reduce_sum")
_ROOTS = ("sqrt", "rsqrt", "inverse")


def climb_coreml(ladder, source, out_path: Path, options, workspace, path_label: str):
    """The Core ML climb every path shares: ``--route``; the fp16 base checked as fp16; and every variant of one
    source taking the fp32 artifact's route (``remember``), since routes can give different layouts (ONNX:
    NCHW direct, NHWC through onnx2tf) and an app's interface must not change between variants."""
    from deploykit.converters import Converted, route_for
    from deploykit.converters.ladder import climb, select

    variant = "fp16" if options.coreml_precision == "fp16" else "fp32"
    route = route_for(options, "coreml")
    climbed = climb(select(ladder, route, path_label), out_path, "coreml", workspace, variant=variant, route=route,
                    remember=("coreml-route", source.path))
    return Converted(climbed.path, climbed.converter, attempts=climbed.attempts, parity=climbed.parity)


def fp16_compute_precision(fp32_ops=()):
    """The ``compute_precision`` of every deploykit fp16 Core ML program: coremltools' FP16ComputePrecision
    (casts at the edges of every op it can type fp16; inputs and outputs stay fp32 at the interface)
    with an op selector that keeps the ops of ``FP32_VARIANCE_OPS`` in fp32, and the ops whose saved
    name (first output) is in ``fp32_ops`` (chosen by ``quantize.fp16_mixed``) with their weights."""
    ct = coremltools_facade.package()
    kept = frozenset(fp32_ops)

    def selected(op) -> bool:
        if keeps_fp32(op):
            return False
        return not (kept and op.outputs and saved_name_in(op.outputs[0].name, kept))

    return ct.transform.FP16ComputePrecision(op_selector=selected)


LAYER_OPS = ("conv", "conv_transpose", "linear", "matmul")


def saved_name_in(name: str, saved: frozenset) -> bool:
    """Whether the op output ``name`` (as the fp16 pass sees it) is saved under one of ``saved``.

    Names change after the pass: the serializer replaces characters outside [A-Za-z0-9_] with "_"
    (coremltools' NameSanitizer) and deploykit's shorten_names then drops a prefix the names share
    (``p2o.pd_op.conv2d.0.0`` is saved as ``op_conv2d_0_0``), so a saved name is the sanitized name or
    one of its suffixes that starts after a "_"."""
    import re

    clean = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if clean in saved:
        return True
    return any(clean[i + 1:] in saved for i, char in enumerate(clean) if char == "_")


def fp32_layers(mlmodel_or_path) -> list[str]:
    """conv / linear / matmul ops (by first output) that an ML Program computes in float32."""
    MIL_pb2 = coremltools_facade.mil_pb2()
    fp32 = MIL_pb2.DataType.Value("FLOAT32")
    spec = _spec(mlmodel_or_path)
    found = []
    for function in spec.mlProgram.functions.values() if spec.WhichOneof("Type") == "mlProgram" else ():
        for op in function.block_specializations[function.opset].operations:
            if op.type in LAYER_OPS and op.outputs and \
                    op.outputs[0].type.tensorType.dataType == fp32:
                found.append(op.outputs[0].name)
    return found


def _spec(mlmodel_or_path):
    ct = coremltools_facade.package()
    model = ct.models.MLModel(str(mlmodel_or_path), skip_model_load=True) if isinstance(mlmodel_or_path, (str, Path)) \
        else mlmodel_or_path
    return model.get_spec()


def keeps_fp32(op) -> bool:
    """Whether ``op`` belongs to the variance of a normalization (``FP32_VARIANCE_OPS``).

    coremltools' fp16 pass asks op by op in program order: an op's producers may already be fp16 (read
    through the ``cast`` back to fp32 the pass inserts), its consumers are still untouched."""
    if op.op_type in _SQUARE_REDUCTIONS + ("reduce_sum_square",):
        return _is_variance(op)
    if _is_square(op):
        return any(child.op_type in _SQUARE_REDUCTIONS for child in op.outputs[0].child_ops)
    if op.op_type == "add":
        return _is_variance(op)
    if op.op_type in _ROOTS or (op.op_type == "pow" and _const(op.y) in (0.5, -0.5)):
        return _is_variance(_producer(op.x))
    return False


def _is_variance(op) -> bool:
    """A mean / sum of squares, or one plus a constant (the epsilon)."""
    if op is None:
        return False
    if op.op_type == "reduce_sum_square":
        return True
    if op.op_type in _SQUARE_REDUCTIONS:
        return _is_square(_producer(op.x))
    if op.op_type == "add":
        x, y = op.x, op.y
        if _const(y) is not None:
            return _is_variance(_producer(x))
        if _const(x) is not None:
            return _is_variance(_producer(y))
    return False


def _is_square(op) -> bool:
    if op is None:
        return False
    if op.op_type == "square":
        return True
    if op.op_type == "pow":
        return _const(op.y) == 2.0
    if op.op_type == "mul":
        return _source(op.x) is _source(op.y)
    return False


def _source(var):
    """``var`` before any ``cast`` (coremltools' fp16 pass inserts casts between ops of different dtypes)."""
    while var.op is not None and var.op.op_type == "cast":
        var = var.op.x
    return var


def _producer(var):
    return _source(var).op if var is not None else None


def _const(var):
    """The scalar value of a constant input, or None."""
    import numpy as np

    value = getattr(_source(var), "val", None) if var is not None else None
    if value is None:
        return None
    array = np.asarray(value)
    return float(array.reshape(-1)[0]) if array.size == 1 and array.dtype.kind == "f" else None


def fp32_ops(mlmodel_or_path) -> list[str]:
    """The op types an ML Program computes in fp32, read from its declared output dtypes (``const`` and
    ``cast`` aside): in an fp16 program, what ``FP32_VARIANCE_OPS`` kept, plus what coremltools keeps
    itself (ops with constants beyond the fp16 range, control flow)."""
    MIL_pb2 = coremltools_facade.mil_pb2()
    fp32 = MIL_pb2.DataType.Value("FLOAT32")
    spec = _spec(mlmodel_or_path)
    if spec.WhichOneof("Type") != "mlProgram":
        return []
    found: set[str] = set()

    def walk(operations):
        for op in operations:
            for block in op.blocks:
                walk(block.operations)
            if op.type in ("const", "cast"):
                continue
            if any(o.type.WhichOneof("type") == "tensorType" and o.type.tensorType.dataType == fp32
                   for o in op.outputs):
                found.add(op.type)

    for function in spec.mlProgram.functions.values():
        walk(function.block_specializations[function.opset].operations)
    return sorted(found)



def run_ct_convert(model, *, label: str, options=None, **kwargs):
    """``coremltools.convert`` for an ML Program (fp32 unless ``options.coreml_precision`` is fp16, then
    ``fp16_compute_precision()``; with ``options.coreml_pipeline`` when deploykit passes run), failures
    turned into deploykit errors."""
    ct = coremltools_facade.package()
    fp16 = options is not None and options.coreml_precision == "fp16"
    precision = fp16_compute_precision(options.coreml_fp32_ops) if fp16 else ct.precision.FLOAT32
    if options is not None and options.coreml_pipeline is not None:
        kwargs["pass_pipeline"] = options.coreml_pipeline
    try:
        return ct.convert(model, convert_to="mlprogram", compute_precision=precision, **kwargs)
    except NotImplementedError as exc:
        raise UnsupportedOperatorError(
            f"{label}: coremltools cannot convert an operator: {_first_line(exc)}",
            hint="replace the operator with a supported equivalent, or convert to tflite only",
        ) from exc
    except Exception as exc:
        text = _first_line(exc)
        if "not implemented" in text.lower() or "unsupported" in text.lower():
            raise UnsupportedOperatorError(f"{label}: {text}", hint="convert to tflite only, or replace the operator") from exc
        raise ConversionError(f"{label}: coremltools failed: {text}", hint="rerun with --verbose to see the converter's log") from exc


def rename_and_save(mlmodel, out_path: Path, input_names: list[str], output_names: list[str]) -> None:
    """Give features the source model's names (converters produce names like ``Identity`` or ``var_412``),
    made identifier-safe (``deploykit.core.names``): Core ML refuses ``sigmoid_0.tmp_0``."""
    ct = coremltools_facade.package()
    from deploykit.core.names import feature_names

    input_names, output_names = feature_names(input_names), feature_names(output_names)
    spec = mlmodel.get_spec()
    renames = []
    for feature, wanted in zip(spec.description.input, input_names):
        if feature.name != wanted:
            renames.append((feature.name, wanted, True))
    for feature, wanted in zip(spec.description.output, output_names):
        if feature.name != wanted:
            renames.append((feature.name, wanted, False))
    if renames:
        for old, new, is_input in renames:
            ct.utils.rename_feature(spec, old, new, rename_inputs=is_input, rename_outputs=not is_input)
        mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    mlmodel.save(str(out_path))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:400]
