"""ONNX -> Core ML: directly, with onnx2coreml (NCHW stays NCHW), and the onnx2tf SavedModel route
only as the named fallback rung when the direct route cannot convert or fails parity.

Both rungs start from the prepared graph (``onnx_prepare``: input shapes fixed, opset >= 13,
onnxsim). Input and output names are made identifier-safe (``deploykit.core.names``) in the graph
itself before lowering, so the Core ML features carry exactly the names the record lists.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.coreml_common import climb_coreml
from deploykit.converters.ladder import Rung
from deploykit.core.flexible import has_flexible, refuse
from deploykit.formats import coremltools_facade

DIRECT = "onnx->coreml (onnx2coreml)"
# onnx2coreml lowers MaxPool without its dilations (MIL max_pool has none), so the direct route rewrites a dilated
# one exactly first (passes/onnx_dilated_max_pool.py) and says so in the converter it records.
DIRECT_PHASED = "onnx->coreml (onnx2coreml, phased-dilated-pool)"
FALLBACK = "onnx->coreml (onnx2tf SavedModel -> coremltools, fallback)"


def rungs(source, options, workspace) -> list[Rung]:
    return [
        Rung("onnx2coreml", _direct_label(source, workspace), lambda path: _direct(source, path, options, workspace),
             "direct ONNX -> MIL lowering; keeps the ONNX layout"),
        Rung("onnx2tf-savedmodel", FALLBACK, lambda path: _via_onnx2tf(source, path, options, workspace),
             "onnx2tf's TensorFlow SavedModel through coremltools' TF frontend; inputs become NHWC"),
    ]


def convert(source, out_path: Path, options, workspace) -> Converted:
    if has_flexible(source.inputs):
        raise refuse(source, "onnx->coreml (onnx2coreml)", "onnx2coreml lowers static shapes only")
    return climb_coreml(rungs(source, options, workspace), source, out_path, options, workspace, "ONNX -> Core ML")


def _direct_label(source, workspace) -> str:
    from deploykit.converters.onnx_prepare import prepared
    from deploykit.passes.onnx_dilated_max_pool import dilated_max_pool_sites

    try:
        model = prepared(source, workspace).model
    except Exception:  # the rung itself reports it, when it runs
        return DIRECT
    return DIRECT_PHASED if dilated_max_pool_sites(model) else DIRECT


def _without_dilated_max_pools(model):
    from deploykit.passes.onnx_dilated_max_pool import dilated_max_pool_as_phases, dilated_max_pool_sites

    if not dilated_max_pool_sites(model):
        return model
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    dilated_max_pool_as_phases(copy)
    return copy


def _direct(source, path: Path, options, workspace) -> None:
    ct = coremltools_facade.package()
    from deploykit.converters import onnx2coreml_facade
    from deploykit.converters.coreml_common import run_ct_convert
    from deploykit.converters.onnx_lowerings import lowerings, replacements
    from deploykit.converters.onnx_prepare import prepared
    from deploykit.core.names import feature_names

    model = _with_branch_weights(_with_safe_names(_without_dilated_max_pools(prepared(source, workspace).model),
                                                  feature_names))
    # onnx2coreml saturates constants into fp16's range when told the program is fp16 (a Clip's max of
    # 3.4e38 becomes 65504). An op kept in float32 must keep its constants: openWakeWord's melspectrogram
    # clips a power spectrum of up to 1e12 before its log.
    precision = "fp32" if options.coreml_fp32_ops else options.coreml_precision
    program = onnx2coreml_facade.to_mil(model, options.coreml_target, precision, DIRECT, lowerings(), replacements())
    mlmodel = run_ct_convert(program, label=DIRECT, options=options,
                             minimum_deployment_target=getattr(ct.target, options.coreml_target))
    mlmodel.save(str(path))


def _with_safe_names(model, feature_names):
    """A copy of ``model`` whose graph inputs and outputs have identifier-safe names."""
    from deploykit.converters.onnx_names import renamed

    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v.name for v in graph.input if v.name not in initializers]
    outputs = [v.name for v in graph.output]
    mapping = {old: new for old, new in zip(inputs + outputs, feature_names(inputs + outputs)) if old != new}
    return renamed(model, mapping) if mapping else model


def _with_branch_weights(model):
    """Copy the outer initializers that If / Loop branches read into the branches themselves.

    onnx2coreml prunes initializers no top-level node reads, so weights used only inside a branch (a
    wake-word head's verifier) would be gone by the time the branch is lowered.
    """
    import onnx

    weights = {t.name: t for t in model.graph.initializer}
    branches = [sub for node in model.graph.node for attr in node.attribute
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)]
    if not branches:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                own = {t.name for t in sub.initializer}
                read = {name for n in sub.node for name in n.input}
                sub.initializer.extend(weights[name] for name in sorted(read - own) if name in weights)
    return copy


def _via_onnx2tf(source, path: Path, options, workspace) -> None:
    from deploykit.converters.coreml_common import deployment_target, output_types, rename_and_save, run_ct_convert
    from deploykit.converters.onnx2tf_facade import onnx2tf_output, private_copy

    folder = onnx2tf_output(str(private_copy(source, workspace)), source.inputs, workspace)
    mlmodel = run_ct_convert(str(folder), label=FALLBACK, options=options, outputs=output_types(source.outputs, named=False),
                             source="tensorflow", minimum_deployment_target=deployment_target(options.coreml_target))
    rename_and_save(mlmodel, path, [t.name for t in source.inputs], [t.name for t in source.outputs])
