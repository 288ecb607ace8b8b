"""``int8`` on Core ML: 8-bit weights and activations (W8A8), calibrated on Linux.

coremltools makes W8A8 as ``linear_quantize_activations`` then ``linear_quantize_weights``. The first
takes the minimum and maximum of every activation over the calibration samples by running the model
with ``MLModel.predict``, which exists only on macOS, and then hands them to its graph passes. Here the
same statistics come from deploykit's numpy evaluator (``runners.coreml_eval``) running the same fp16
program on the ``--calibration`` samples: every op result as the program declares it (fp16 rounded), the
arithmetic ``predict`` would do up to the evaluator's float32 accumulation. Everything written into
the model is coremltools' own: concat ranges shared by its rule, quantize / dequantize pairs inserted by
its ``insert_prefix_quantize_dequantize_pair`` / ``insert_suffix_quantize_dequantize_pair`` passes from
those statistics ({var name: {"rmin", "rmax"}}, the form its calibration produces), then int8 weights
as the ``int8-weights`` scheme makes them (``quantize.int8_weights``).

Three deliberate differences from coremltools 9.0's calibration: the range is the min / max over all
samples (its ``record_intermediate_output`` overwrites the stored range with each sample's before
comparing, so it keeps the last sample's range only); ops the program computes in fp32 (a rescued
fp16 base's kept layers) are left without pairs (its suffix pass writes an fp16 scale, which an fp32
``quantize`` cannot take); and a tensor that is zero on every sample gets scale 1 (``_zero_scale``).

Activations are int8 linear (affine) per tensor: with lo = min(rmin, 0) and hi = max(rmax, 0), scale =
(hi - lo) / 255 and zero point = round((-128 hi - 127 lo) / (hi - lo)), coremltools' ``linear`` mode; its
pipeline then stores a non-negative activation (zero point -128) as uint8 without zero point, the same map
(``nullify_redundant_quantization_zero_point``: "the performance is better when zero point = 0"). Its
``linear_symmetric`` default (scale = max(|rmin|, |rmax|) / 127, no zero point) spends half the codes on
negative values that ReLU outputs never take: measured, it cost more (bench/results/coreml-w8a8.md: PP-OCRv4's
recogniser reads 45 % of the characters right instead of 57 %, the digits model's held-out logits 32.5 dB
instead of 34.3 dB), and Apple's own quantization-aware training gives activations zero points too
(coremltools.optimize.torch).
quantize / dequantize are iOS17 ops, so the scheme needs ``--coreml-target iOS17`` or later (``MIN_TARGETS``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploykit.core.errors import ConversionError, UsageError
from deploykit.formats import coremltools_facade

# Deployment targets whose opset has quantize / dequantize (iOS17 / macOS14 and later). Lower targets are
# refused (options.parse_quantize) rather than raised silently: the target is the app's contract, and
# the fp32 and fp16 artifacts of the same conversion would then claim iOS16 while this one needs iOS17.
MIN_TARGETS = ("iOS17", "iOS18", "macOS14", "macOS15")
ACTIVATION_MODE = "linear"
# The ops coremltools' passes put quantize / dequantize pairs around (their inputs, and their outputs
# with a fused activation): insert_prefix_quantize_dequantize_pair.SUPPORTED_OP_TYPES.
PATTERN_OPS = ("conv", "linear", "add", "avg_pool", "max_pool")
STATISTICS = "deploykit Core ML evaluator (coremltools' predict needs macOS)"


def quantize_w8a8(base: Path, out_path: Path, options, calibration, source_inputs) -> dict:
    """Write the W8A8 variant of the fp16 program ``base`` to ``out_path``; return its quantization record.

    ``calibration``: a ``quantize.calibration.Calibration`` in the source's layout; ``source_inputs``: the
    source's input specs, to move each sample into the program's layout where it differs."""
    if calibration is None:
        raise UsageError("Core ML int8 needs calibration data: --calibration FILE.npy / FILE.npz / IMAGE_FOLDER")
    from deploykit.quantize import int8_weights
    from deploykit.quantize.coreml import kept_float_ops, uncompressed_weights

    cto = coremltools_facade.optimize()
    mlmodel = coremltools_facade.load_mlmodel(base)
    kept = kept_float_ops(base, options.keep_float)
    stats = activation_statistics(base, program_feeds(base, calibration, source_inputs))
    try:
        coremltools_facade.share_concat_ranges(mlmodel, stats)
        skipped = {name: None for name in (*kept, *unquantizable_ops(base))}
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode=ACTIVATION_MODE, dtype="int8"),
                                        op_name_configs=skipped)
        activations = coremltools_facade.insert_activation_quantization(mlmodel, config, stats)
        compressed, described = int8_weights.coreml(activations, options, {name: None for name in kept}, cto)
    except Exception as exc:
        raise ConversionError(f"coremltools could not quantize to Core ML int8: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log; --quantize coreml=int8-weights keeps float "
                                   "activations") from exc
    compressed.save(str(out_path))
    pairs = quantized_activations(out_path)
    if not pairs:
        raise ConversionError("Core ML int8: no activation could be quantized (coremltools pairs quantize / dequantize "
                              f"with {', '.join(PATTERN_OPS)} computed in fp16, and the program has none)",
                              hint="--quantize coreml=int8-weights quantizes the weights and keeps float activations")
    per = described["weights"].rsplit(" ", 1)[-1]
    activations = "int8 linear symmetric per-tensor" if ACTIVATION_MODE == "linear_symmetric" else \
        "int8 linear per-tensor (scale and zero point; uint8 without one where non-negative)"
    return {"scheme": "int8", "engine": "coremltools.optimize.coreml (activation passes + linear_quantize_weights)",
            "base": "fp16 program", "weights": f"int8 linear symmetric {per}",
            "activations": f"{activations} ({len(pairs)} activations with quantize / dequantize pairs)",
            "quantized_activations": len(pairs), "calibration": calibration.to_json(), "statistics": STATISTICS,
            "kept_float": list(kept), "uncompressed_weights": uncompressed_weights(out_path)}


def program_feeds(package: Path, calibration, source_inputs) -> list[dict]:
    """The calibration samples as the program takes them: bound by name or position, transposed where the
    program's layout differs from the source's (an NHWC program of an NCHW source)."""
    from deploykit.formats.coreml.spec import load_spec, signature
    from deploykit.parity.layout import bind

    program_inputs, _ = signature(load_spec(package))
    bindings = bind(tuple(source_inputs), program_inputs)
    for binding in bindings:
        if binding.problem:
            raise UsageError(f"--calibration cannot feed the Core ML program: {binding.problem}")
    return [{b.artifact: b.to_artifact(np.asarray(sample[b.source])) for b in bindings} for sample in calibration.feeds]


def activation_statistics(package: Path, feeds: list[dict]) -> dict[str, dict[str, float]]:
    """{MIL var name: {"rmin", "rmax"}} over every sample: the program's inputs as fed and every float op
    result as the evaluator computes it (in the program's declared dtypes)."""
    from deploykit.runners.coreml_eval import evaluate

    stats: dict[str, dict[str, float]] = {}
    for feed in feeds:
        evaluation = evaluate(package, feed, keep_intermediates=True)
        for name, value in (*feed.items(), *evaluation.intermediates.items()):
            array = np.asarray(value)
            if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
                continue
            low, high = float(array.min()), float(array.max())
            if name in stats:
                low, high = min(low, stats[name]["rmin"]), max(high, stats[name]["rmax"])
            stats[name] = {"rmin": low, "rmax": high}
    # the range whose scale is 1 and zero point 0 (also in coremltools' fp16 arithmetic)
    unit = (-127.0, 127.0) if ACTIVATION_MODE == "linear_symmetric" else (-128.0, 127.0)
    for name, bounds in stats.items():
        if _zero_scale(bounds["rmin"], bounds["rmax"]):
            stats[name] = {"rmin": unit[0], "rmax": unit[1]}
    return stats


def _zero_scale(low: float, high: float) -> bool:
    """Whether coremltools would compute a zero scale for this range (a tensor that stays zero on every sample,
    e.g. a ReLU that never fires): it reads the range as fp16 and divides in fp16. Only its prefix pass in
    linear_symmetric mode turns such a scale into 1; elsewhere the quantize op refuses it (or the zero point
    becomes 0 / 0). Such a tensor gets scale 1 and zero point 0 here, which keeps it exactly zero."""
    low, high = np.float16(min(low, 0.0)), np.float16(max(high, 0.0))
    return bool(max(high, -low) * np.float16(2) / np.float16(254) == 0)


def unquantizable_ops(package: Path) -> list[str]:
    """Names of pattern ops that must stay without pairs: computed in anything but fp16 (see the module
    docstring), or an ``add`` of a constant (the prefix pass would leave a dangling pair there)."""
    from deploykit.formats.coreml.spec import load_spec, main_block
    from deploykit.quantize.coreml import op_name

    fp16 = coremltools_facade.mil_pb2().DataType.Value("FLOAT16")
    ops = list(main_block(load_spec(package)).operations)
    constant = {out.name for op in ops if op.type == "const" for out in op.outputs}
    declared = {out.name: out.type.tensorType.dataType for op in ops for out in op.outputs}
    left = []
    for op in ops:
        if op.type not in PATTERN_OPS:
            continue
        inputs = [b.name for key in ("x", "y") if key in op.inputs for b in op.inputs[key].arguments
                  if b.WhichOneof("binding") == "name"]
        if (op.outputs[0].type.tensorType.dataType != fp16 or any(declared.get(n, fp16) != fp16 for n in inputs)
                or (op.type == "add" and (len(inputs) < 2 or any(n in constant for n in inputs)))):
            left.append(op_name(op) or op.outputs[0].name)
    return left


def quantized_activations(package: Path) -> list[str]:
    """The activations the saved program quantizes: the input of every ``quantize`` op."""
    from deploykit.formats.coreml.spec import load_spec, main_block

    return [op.inputs["input"].arguments[0].name for op in main_block(load_spec(package)).operations
            if op.type == "quantize"]
