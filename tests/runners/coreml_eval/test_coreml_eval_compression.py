"""Compressed weights: coremltools.optimize.coreml applied to a converted small net.

For each scheme three things are checked:
1. every weight the evaluator decompresses equals, bit for bit, what coremltools' own MIL op
   computes (``materialized_val_inference``, i.e. the ops' ``decompress``);
2. evaluating the compressed package equals evaluating ``decompress_weights(model)`` exactly;
3. the result stays close to the uncompressed fp32 model (a sanity bound per scheme, below).
"""

from __future__ import annotations

import numpy as np
import pytest

from coreml_eval_support import convert_torch, only_output, quiet, seeded

ct = pytest.importorskip("coremltools")
cto = pytest.importorskip("coremltools.optimize.coreml")

THRESHOLD = 64  # compress every weight with at least this many elements (the stem and head too)

# (id, base model target, compression) and the bound on ||compressed - fp32|| / ||fp32|| on the
# logits: quantization noise grows as bits shrink. Each bound is about three times the value
# measured on this net (in brackets), so it catches a wrong decompression (order-one error)
# without depending on k-means details.
SCHEMES = {
    "lut4_kmeans": ("iOS16", lambda m: cto.palettize_weights(m, _cfg(cto.OpPalettizerConfig(
        mode="kmeans", nbits=4, weight_threshold=THRESHOLD))), 0.2),  # 16 levels per tensor (measured 0.055)
    "lut2_grouped": ("iOS18", lambda m: cto.palettize_weights(m, _cfg(cto.OpPalettizerConfig(
        mode="kmeans", nbits=2, granularity="per_grouped_channel", group_size=4,
        weight_threshold=THRESHOLD))), 0.6),  # 4 levels per group of 4 channels: coarse (0.23)
    "lut4_vector2": ("iOS18", lambda m: cto.palettize_weights(m, _cfg(cto.OpPalettizerConfig(
        mode="kmeans", nbits=4, cluster_dim=2, weight_threshold=THRESHOLD))), 0.3),  # 2-D centroids
    "lut4_channel_scale": ("iOS18", lambda m: cto.palettize_weights(m, _cfg(cto.OpPalettizerConfig(
        mode="kmeans", nbits=4, enable_per_channel_scale=True, weight_threshold=THRESHOLD))), 0.2),
    "lut4_int8_lut": ("iOS18", lambda m: cto.linear_quantize_weights(_lut4(m), _cfg(cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_tensor", weight_threshold=THRESHOLD)),
        joint_compression=True), 0.2),
    "int8_per_channel": ("iOS16", lambda m: cto.linear_quantize_weights(m, _cfg(cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=THRESHOLD))), 0.01),  # (0.002)
    "uint8_asymmetric": ("iOS16", lambda m: cto.linear_quantize_weights(m, _cfg(cto.OpLinearQuantizerConfig(
        mode="linear", dtype="uint8", granularity="per_tensor", weight_threshold=THRESHOLD))), 0.01),  # (0.003)
    "int4_per_block": ("iOS18", lambda m: cto.linear_quantize_weights(m, _cfg(cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=8,
        weight_threshold=THRESHOLD))), 0.15),  # 15 levels per block of 8 (0.04)
    "uint4_per_block_offset": ("iOS18", lambda m: cto.linear_quantize_weights(m, _cfg(cto.OpLinearQuantizerConfig(
        mode="linear", dtype="uint4", granularity="per_block", block_size=8, weight_threshold=THRESHOLD))), 0.15),  # (0.05)
    "prune50_ios16": ("iOS16", lambda m: cto.prune_weights(m, _cfg(cto.OpMagnitudePrunerConfig(
        target_sparsity=0.5, weight_threshold=THRESHOLD))), 0.8),  # half the weights zeroed (0.31)
    "prune50_ios18": ("iOS18", lambda m: cto.prune_weights(m, _cfg(cto.OpMagnitudePrunerConfig(
        target_sparsity=0.5, weight_threshold=THRESHOLD))), 0.8),  # (0.31)
    "prune_then_lut4": ("iOS18", lambda m: cto.palettize_weights(_prune(m), _cfg(cto.OpPalettizerConfig(
        mode="kmeans", nbits=4, weight_threshold=THRESHOLD)), joint_compression=True), 0.8),  # (0.26)
    "prune_then_int8": ("iOS18", lambda m: cto.linear_quantize_weights(_prune(m), _cfg(cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", weight_threshold=THRESHOLD)), joint_compression=True), 0.8),  # (0.27)
}


def _cfg(op_config):
    return cto.OptimizationConfig(global_config=op_config)


def _lut4(m):
    return cto.palettize_weights(m, _cfg(cto.OpPalettizerConfig(mode="kmeans", nbits=4, weight_threshold=THRESHOLD)))


def _prune(m):
    return cto.prune_weights(m, _cfg(cto.OpMagnitudePrunerConfig(target_sparsity=0.3, weight_threshold=THRESHOLD)))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The zoo ResNet converted at fp32 for iOS16 and iOS18 targets, its input and fp32 outputs."""
    import torch

    from deploykit.runners.coreml_eval import evaluate

    from tests.zoo import torch_nets

    folder = tmp_path_factory.mktemp("compression")
    module = torch_nets.build("resnet")
    x = seeded((1, 3, 32, 32), seed=5)
    models = {}
    for target in ("iOS16", "iOS18"):
        path = convert_torch(module, torch.from_numpy(x), folder / f"base_{target}.mlpackage", "fp32", target)
        models[target] = (ct.models.MLModel(str(path), skip_model_load=True), only_output(evaluate(path, {"x": x})))
    return folder, x, models


def _coremltools_weights(path) -> dict[str, np.ndarray]:
    """Each constexpr op's value as coremltools computes it (its ops' static ``decompress``), by
    output name. Inputs produced by an earlier constexpr op (a quantized LUT, a per-channel scale
    after a LUT) are fed the values computed for that op, which ``materialized_val_inference``
    alone does not do for every op."""
    import inspect

    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    with quiet():
        program = load_milproto(spec, spec.specificationVersion, str(path / "Data/com.apple.CoreML/weights"))
    values: dict[str, np.ndarray] = {}
    for op in program.functions["main"].operations:
        if not op.op_type.startswith("constexpr_"):
            continue
        if hasattr(type(op), "decompress"):
            params = inspect.signature(type(op).decompress).parameters
            inputs = {}
            for key in params:
                var = op.inputs.get(key)
                inputs[key] = None if var is None else (var.val if var.val is not None else values[var.name])
            value = type(op).decompress(**inputs)
        else:
            value = op.materialized_val_inference()
        for var, v in zip(op.outputs, value if isinstance(value, tuple) else (value,)):
            values[var.name] = np.asarray(v)
    return values


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_compressed_weights(scheme, base):
    from deploykit.runners.coreml_eval import evaluate, load_program

    folder, x, models = base
    target, compress, bound = SCHEMES[scheme]
    mlmodel, fp32_out = models[target]
    with quiet():
        compressed = compress(mlmodel)
        decompressed = cto.decompress_weights(compressed)
    path, plain = folder / f"{scheme}.mlpackage", folder / f"{scheme}_decompressed.mlpackage"
    compressed.save(str(path))
    decompressed.save(str(plain))

    # 1. decompression is exact, for every compressed weight
    ours = load_program(path).constants
    theirs = _coremltools_weights(path)
    assert theirs, f"{scheme}: no constexpr op in the compressed program"
    for name, value in theirs.items():
        np.testing.assert_array_equal(np.asarray(ours[name]).astype(value.dtype), value, err_msg=f"{scheme}: {name}")

    # 2. same outputs as the decompressed model
    out = only_output(evaluate(path, {"x": x}))
    np.testing.assert_array_equal(out, only_output(evaluate(plain, {"x": x})))

    # 3. close to the uncompressed model
    relative = np.linalg.norm(out - fp32_out) / np.linalg.norm(fp32_out)
    assert relative < bound, f"{scheme}: relative error {relative:.3f} >= {bound}"


def test_fp16_palettized_lut(base):
    """An fp16 program whose LUT is fp16: decompressed weights are fp16 values."""
    import torch

    from deploykit.runners.coreml_eval import evaluate, load_program

    from tests.zoo import torch_nets

    folder, x, models = base
    path = convert_torch(torch_nets.build("resnet"), torch.from_numpy(x), folder / "fp16.mlpackage", "fp16", "iOS18")
    with quiet():
        compressed = cto.palettize_weights(ct.models.MLModel(str(path), skip_model_load=True), _cfg(
            cto.OpPalettizerConfig(mode="kmeans", nbits=4, weight_threshold=THRESHOLD)))
    out_path = folder / "fp16_lut4.mlpackage"
    compressed.save(str(out_path))
    theirs = _coremltools_weights(out_path)
    ours = load_program(out_path).constants
    for name, value in theirs.items():
        assert value.dtype == np.float16
        np.testing.assert_array_equal(np.asarray(ours[name]).astype(np.float16), value)
    out = only_output(evaluate(out_path, {"x": x}))
    assert out.dtype == np.float16
    fp32_out = models["iOS18"][1]
    assert np.linalg.norm(out - fp32_out) / np.linalg.norm(fp32_out) < 0.2
