"""The public API: evaluate / supported_ops / CoreMLEvaluatorRunner, program caching, the light
import, and sub-byte unpacking against coremltools' own unpacker."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from coreml_eval_support import save_small_program
from deploykit.core.errors import UsageError

X = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    pytest.importorskip("coremltools")
    return save_small_program(tmp_path_factory.mktemp("api") / "small.mlpackage")


def test_supported_ops_lists_the_cnn_core():
    from deploykit.runners.coreml_eval import supported_ops

    ops = supported_ops()
    assert ops == sorted(ops)
    assert {"conv", "conv_transpose", "avg_pool", "max_pool", "l2_pool", "relu", "relu6", "clip", "sigmoid",
            "sigmoid_hard", "silu", "gelu", "softmax", "prelu", "leaky_relu", "add", "real_div", "pow", "rsqrt",
            "reduce_mean", "linear", "matmul", "batch_norm", "layer_norm", "concat", "split", "slice_by_index",
            "pad", "gather", "cast", "identity", "constexpr_lut_to_dense",
            "constexpr_affine_dequantize", "constexpr_blockwise_shift_scale", "constexpr_sparse_to_dense",
            "constexpr_cast", "upsample_bilinear"} <= set(ops)


def test_runner_context_manager(package):
    from deploykit.runners.base import Runner
    from deploykit.runners.coreml_eval import CoreMLEvaluatorRunner, evaluate

    runner = CoreMLEvaluatorRunner(package)
    assert isinstance(runner, Runner)
    with pytest.raises(UsageError, match="not active"):
        runner.infer({"x": X})
    with runner as active:
        assert active.is_active
        assert active.input_names == ["x"] and active.output_names == ["gelu_out"]
        (spec,) = active.input_specs
        assert (spec.shape, spec.dtype) == ((1, 3, 8, 8), "float32")
        out = active.infer({"x": X})
        np.testing.assert_array_equal(out["gelu_out"], evaluate(package, {"x": X})["gelu_out"])
        assert active.last_inference_time is not None
        with pytest.raises(UsageError, match="shape"):
            active.infer({"x": X[0]})
        with pytest.raises(UsageError, match="missing x"):
            active.infer({})
    assert not runner.is_active


def test_runner_trace(package):
    from deploykit.runners.coreml_eval import CoreMLEvaluatorRunner

    with CoreMLEvaluatorRunner(package) as runner:
        records = runner.trace({"x": X})
        final = runner.infer({"x": X})["gelu_out"]
    assert [(r.name, r.op) for r in records] == [("conv_out", "conv"), ("relu_out", "relu"), ("gelu_out", "gelu")]
    assert [r.inputs for r in records] == [(), ("conv_out",), ("relu_out",)]
    np.testing.assert_array_equal(records[-1].value, final)


def test_weights_are_read_once(package, monkeypatch):
    from deploykit.runners.coreml_eval import CoreMLEvaluatorRunner, api, evaluate
    from deploykit.formats.coreml import package as package_module

    reads = []
    original = package_module.BlobFile.__init__

    def counting(self, path):
        reads.append(path)
        original(self, path)

    monkeypatch.setattr(package_module.BlobFile, "__init__", counting)
    monkeypatch.setattr(api, "_cache", type(api._cache)())
    with CoreMLEvaluatorRunner(package) as runner:
        for _ in range(3):
            runner.infer({"x": X})
    evaluate(package, {"x": X})
    evaluate(package, {"x": X})
    assert len(reads) == 1


def test_cache_notices_a_rewritten_package(package, tmp_path):
    import shutil

    from deploykit.runners.coreml_eval import evaluate

    copy = tmp_path / "copy.mlpackage"
    shutil.copytree(package, copy)
    first = evaluate(copy, {"x": X})["gelu_out"]
    weights = copy / "Data/com.apple.CoreML/weights/weight.bin"
    data = bytearray(weights.read_bytes())
    data[-4:] = np.float32(100.0).tobytes()  # the last weight of the conv
    weights.write_bytes(bytes(data))
    assert not np.array_equal(evaluate(copy, {"x": X})["gelu_out"], first)


def test_import_does_not_load_coremltools_or_torch(package):
    """The evaluator reads the protobuf schema without importing coremltools (which imports torch
    and TensorFlow); a later real import sees the very same message classes."""
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from deploykit.runners.coreml_eval import evaluate
        from deploykit.formats import coremltools_facade as _proto
        out = evaluate({str(package)!r}, {{"x": np.zeros((1, 3, 8, 8), np.float32)}})
        assert out["gelu_out"].shape == (1, 8, 8, 8)
        heavy = [m for m in ("coremltools", "torch", "tensorflow") if m in sys.modules]
        assert not heavy, heavy
        ours = _proto.model_pb2().Model
        for blocked in ("torch", "tensorflow", "keras", "sklearn"):  # keep the coremltools import fast
            sys.modules[blocked] = None
        import coremltools.proto.Model_pb2 as real
        assert ours is real.Model, (ours, real.Model)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=str(__import__("pathlib").Path(__file__).resolve().parents[3]))
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


@pytest.mark.parametrize("dtype_name", ["uint1", "uint2", "uint3", "uint4", "uint6", "int4"])
def test_sub_byte_unpacking_matches_coremltools(dtype_name):
    pytest.importorskip("coremltools")
    from coremltools.optimize._utils import restore_elements_from_packed_bits

    from deploykit.formats.coreml.values import BY_NAME, unpack_bits

    dtype = BY_NAME[dtype_name]
    count = 37  # not a multiple of 8: the last byte is partly padding
    packed = np.random.default_rng(7).integers(0, 256, size=-(-count * dtype.bits // 8), dtype=np.uint8)
    expected = restore_elements_from_packed_bits(packed, dtype.bits, count, dtype.signed)
    np.testing.assert_array_equal(unpack_bits(packed.tobytes(), count, dtype), expected)


def test_fast_fp16_rounding_equals_numpy_cast():
    from deploykit.formats.coreml.values import round_fp16

    rng = np.random.default_rng(11)
    every_kind = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = np.array([0.0, -0.0, 65504, 65519.99, 65520, -65520, np.inf, -np.inf, np.nan, 2**-14,
                      2**-14 * 0.999, 2**-24, 2**-25, 1.00048828125, 1.0014648, -3.0e-6], np.float32)
    for values in (every_kind, edges, rng.normal(size=(3, 5, 7)).astype(np.float32), np.float32(0.1)):
        with np.errstate(over="ignore"):
            expected = np.asarray(values).astype(np.float16).astype(np.float32)
        got = round_fp16(values)
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32)[~np.isnan(expected)],
                                      expected.view(np.uint32)[~np.isnan(expected)])
        assert np.isnan(got[np.isnan(expected)]).all()


def test_threads_option(package):
    from deploykit.runners.coreml_eval import evaluate

    one = evaluate(package, {"x": X})["gelu_out"]
    np.testing.assert_allclose(evaluate(package, {"x": X}, threads=None)["gelu_out"], one, rtol=1e-6, atol=1e-6)
