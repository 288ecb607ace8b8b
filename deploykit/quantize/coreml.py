"""Compressed Core ML variants: ``coremltools.optimize.coreml`` applied to the fp16 program.

Every compressed variant starts from the program converted with ``compute_precision=FLOAT16``:
Core ML's default precision and what the GPU and Neural Engine compute in, and measured on
MobileNetV2 it keeps weights that stay uncompressed (biases, tensors under --keep-float small) at
2 bytes instead of 4 (int8-weights 1.06x instead of 1.08x of one byte per parameter).
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import ConversionError, UsageError
from deploykit.formats import coremltools_facade
from deploykit.formats.coreml.spec import op_name

LAYERS = ("conv", "conv_transpose", "linear", "matmul")


def compress_coreml(base: Path, out_path: Path, scheme: str, options, float_weights: tuple[str, ...] = ()) -> dict:
    """``float_weights``: weight constants left fp16 besides --keep-float's (a repair's choice, quantize.layerwise)."""
    ct = coremltools_facade.package()
    cto = coremltools_facade.optimize()
    from deploykit.quantize import int4, int8_weights, lut

    mlmodel = ct.models.MLModel(str(base), skip_model_load=True)
    kept = kept_float_ops(base, options.keep_float) + tuple(float_weights)
    op_name_configs = {name: None for name in kept}
    try:
        if scheme.startswith("lut"):
            compressed, described = lut.coreml(mlmodel, options, op_name_configs, cto, scheme)
        else:
            module = {"int8-weights": int8_weights, "int4": int4}[scheme]
            compressed, described = module.coreml(mlmodel, options, op_name_configs, cto)
    except Exception as exc:
        raise ConversionError(f"coremltools could not compress to {scheme}: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log") from exc
    compressed.save(str(out_path))
    from deploykit.quantize.coreml_fp16_weights import restore_fp16_weights

    restored = restore_fp16_weights(base, out_path)
    return {"scheme": scheme, "engine": "coremltools.optimize.coreml", "base": "fp16 program",
            **described, **({"uncompressed_restored_to_fp16": restored} if restored else {}), "kept_float": list(kept), "uncompressed_weights": uncompressed_weights(out_path)}


def uncompressed_weights(package: Path) -> list[str]:
    """Layers whose weight is still a plain fp16 const (or an fp16 const cast to float32): kept on purpose, under the size threshold, or
    skipped by coremltools (int4 blocks of 32 need at least 32 input channels)."""
    from deploykit.formats.coreml.spec import load_spec, main_block

    ops = list(main_block(load_spec(package)).operations)
    producer = {out.name: op.type for op in ops for out in op.outputs}
    left = []
    for op in ops:
        if op.type not in LAYERS:
            continue
        argument = op.inputs.get("weight") or op.inputs.get("y")
        names = [b.name for b in argument.arguments if b.WhichOneof("binding") == "name"] if argument else []
        kind = producer.get(names[0]) if names else None
        if kind == "cast":  # an fp16-weights program reads an fp16 const through a cast
            cast = next(o for o in ops if any(out.name == names[0] for out in o.outputs))
            read = [b.name for b in cast.inputs["x"].arguments if b.WhichOneof("binding") == "name"]
            kind = producer.get(read[0]) if read else None
        if kind == "const":
            left.append(op_name(op) or op.outputs[0].name)
    return left


def kept_float_ops(package: Path, keep) -> tuple[str, ...]:
    """Names of the conv / linear / matmul ops that --keep-float names (first, last, substrings)."""
    from deploykit.formats.coreml.spec import load_spec, main_block

    ops = [op for op in main_block(load_spec(package)).operations if op.type in LAYERS]
    names = [op.outputs[0].name for op in ops]
    op_names = [op_name(op) or out for op, out in zip(ops, names)]
    chosen = []
    if keep.first and ops:
        chosen.append(op_names[0])
    if keep.last and ops:
        chosen.append(op_names[-1])
    for wanted in keep.names:
        hits = [n for n, out in zip(op_names, names) if wanted in n or wanted in out]
        if not hits:
            raise UsageError(f"--keep-float {wanted}: no conv / linear op of the Core ML program has it in its name",
                             hint=f"names look like: {', '.join(op_names[:4])}")
        chosen += hits
    return tuple(dict.fromkeys(chosen))
