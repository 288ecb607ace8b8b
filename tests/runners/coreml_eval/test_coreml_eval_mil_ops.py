"""Ops that the PyTorch and Keras frontends rarely emit, checked against coremltools' own numpy
``value_inference`` of the same MIL op (an independent implementation of the spec), plus the
documented grid examples of the resize ops, and the fp16 rounding rule."""

from __future__ import annotations

import numpy as np
import pytest

from coreml_eval_support import FP32_TOL, only_output, quiet

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

X = np.random.default_rng(0).uniform(-2, 2, (1, 4, 6, 6)).astype(np.float32)
_f = np.float32

CASES = {
    "l2_norm": lambda v: mb.l2_norm(x=v, epsilon=1e-3),
    "reduce_log_sum_exp": lambda v: mb.reduce_log_sum_exp(x=v, axes=[1], keep_dims=True),
    "reduce_l1_norm": lambda v: mb.reduce_l1_norm(x=v, axes=[-1]),
    "reduce_l2_norm": lambda v: mb.reduce_l2_norm(x=v, axes=[2, 3]),
    "reduce_prod": lambda v: mb.reduce_prod(x=v, axes=[1]),
    "reduce_sum_square": lambda v: mb.reduce_sum_square(x=v, axes=[0, 1]),
    "reduce_log_sum": lambda v: mb.reduce_log_sum(x=mb.abs(x=v), axes=[1]),
    "reduce_argmax": lambda v: mb.reduce_argmax(x=v, axis=1),
    "reduce_argmin_keep": lambda v: mb.reduce_argmin(x=v, axis=-1, keep_dims=True),
    "clamped_relu": lambda v: mb.clamped_relu(x=v, alpha=0.2, beta=1.5),
    "scaled_tanh": lambda v: mb.scaled_tanh(x=v, alpha=1.5, beta=0.7),
    "linear_activation": lambda v: mb.linear_activation(x=v, alpha=1.5, beta=0.7),
    "thresholded_relu": lambda v: mb.thresholded_relu(x=v, alpha=0.3),
    "softsign": lambda v: mb.softsign(x=v),
    "softplus_parametric": lambda v: mb.softplus_parametric(
        x=v, alpha=np.linspace(0.5, 1.5, 4).astype(_f), beta=np.linspace(0.5, 2, 4).astype(_f)),
    "threshold": lambda v: mb.threshold(x=v, alpha=0.3),
    "select": lambda v: mb.select(cond=mb.greater(x=v, y=0.0), a=v, b=mb.mul(x=v, y=3.0)),
    "flatten2d": lambda v: mb.flatten2d(x=v, axis=2),
    "slice_by_size": lambda v: mb.slice_by_size(x=v, begin=[0, 1, 2, 0], size=[1, 2, -1, 3]),
    "gather_along_axis": lambda v: mb.gather_along_axis(
        x=v, indices=np.tile(np.array([3, 0, 1], np.int32).reshape(1, 1, 3, 1), (1, 4, 1, 6)), axis=2),
    "floor_div": lambda v: mb.floor_div(x=v, y=0.7),
    "mod": lambda v: mb.mod(x=v, y=0.7),
    "sign_square": lambda v: mb.add(x=mb.sign(x=v), y=mb.square(x=v)),
    "exp2": lambda v: mb.exp2(x=v),
    "erf": lambda v: mb.erf(x=v),
    "inverse": lambda v: mb.inverse(x=v, epsilon=0.01),
    "round": lambda v: mb.round(x=mb.mul(x=v, y=2.0)),
    "ceil_floor": lambda v: mb.add(x=mb.ceil(x=v), y=mb.floor(x=v)),
    "cast_int32": lambda v: mb.cast(x=mb.mul(x=v, y=3.0), dtype="int32"),
    "stack": lambda v: mb.stack(values=(v, v), axis=2),
    "split_num": lambda v: mb.split(x=v, num_splits=2, axis=1)[1],
    "elu": lambda v: mb.elu(x=v, alpha=0.5),
    "trig": lambda v: mb.add(x=mb.atan(x=v), y=mb.add(x=mb.cos(x=v), y=mb.sin(x=v))),
    "logical": lambda v: mb.cast(x=mb.logical_and(x=mb.greater(x=v, y=0.0), y=mb.less_equal(x=v, y=1.0)), dtype="fp32"),
    "inverse_trig_hyperbolic": lambda v: mb.add(
        x=mb.add(x=mb.acos(x=mb.tanh(x=v)), y=mb.asin(x=mb.tanh(x=v))),
        y=mb.add(x=mb.atanh(x=mb.mul(x=mb.tanh(x=v), y=0.9)), y=mb.add(x=mb.cosh(x=v), y=mb.sinh(x=mb.tan(x=v))))),
    "comparisons": lambda v: mb.cast(x=mb.logical_or(
        x=mb.logical_xor(x=mb.equal(x=v, y=mb.round(x=v)), y=mb.not_equal(x=v, y=0.5)),
        y=mb.logical_not(x=mb.logical_and(x=mb.greater_equal(x=v, y=-0.5), y=mb.less(x=v, y=0.5)))), dtype="fp32"),
    "identity": lambda v: mb.identity(x=v),
    "softmax_axis2": lambda v: mb.softmax(x=v, axis=2),
    "einsum": lambda v: mb.einsum(values=(v, mb.transpose(x=v, perm=[0, 3, 2, 1])), equation="nchw,nwhr->nchr"),
}


def _save(build, shape, path, target=None, precision="fp32"):
    """A one-input MIL program -> .mlpackage, with no graph passes (the op stays as written)."""
    target = target or ct.target.iOS16

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=target)
    def program(x):
        return build(x)

    prec = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    with quiet():
        model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=target,
                           compute_precision=prec, pass_pipeline=ct.PassPipeline.EMPTY if precision == "fp32" else None)
        model.save(str(path))
    return path


def _value_inference(build, x):
    """coremltools' numpy evaluation of the same op with a constant input."""
    captured = []

    @mb.program(input_specs=[mb.TensorSpec(shape=(1,))], opset_version=ct.target.iOS16)
    def program(dummy):
        captured.append(build(x).val)
        return dummy

    assert captured[0] is not None, "coremltools has no value_inference for this op"
    return np.asarray(captured[0])


@pytest.mark.parametrize("name", list(CASES))
def test_matches_coremltools_value_inference(name, tmp_path):
    from deploykit.runners.coreml_eval import evaluate

    with quiet():
        reference = _value_inference(CASES[name], X)
    path = _save(CASES[name], X.shape, tmp_path / f"{name}.mlpackage")
    out = only_output(evaluate(path, {"x": X}))
    assert out.shape == reference.shape
    if out.dtype.kind in "iub":
        np.testing.assert_array_equal(out, reference)
    else:
        np.testing.assert_allclose(out, reference, **FP32_TOL)


# Grid points from the MIL reference's resize_bilinear docstring (input [0, 1], i.e. X_in = 2).
GRIDS = {
    ("UNALIGN_CORNERS", 5): [0.0, 0.1, 0.5, 0.9, 1.0],
    ("STRICT_ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("DEFAULT", 5): [0.0, 0.4, 0.8, 1.0, 1.0],
    ("OFFSET_CORNERS", 5): [0.1, 0.3, 0.5, 0.7, 0.9],
    ("UNALIGN_CORNERS", 6): [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0],
    ("STRICT_ALIGN_CORNERS", 6): [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
}


@pytest.mark.parametrize("mode,size", list(GRIDS), ids=[f"{m}-{s}" for m, s in GRIDS])
def test_resize_bilinear_documented_grids(mode, size, tmp_path):
    """On a [0, 1] ramp the interpolated value is the grid point itself."""
    from deploykit.runners.coreml_eval import evaluate

    ramp = np.tile(np.array([0.0, 1.0], np.float32), (1, 1, 2, 1))  # (1, 1, 2, 2): width is the ramp
    path = _save(lambda v: mb.resize_bilinear(x=v, target_size_height=2, target_size_width=size, sampling_mode=mode),
                 ramp.shape, tmp_path / "resize.mlpackage")
    out = only_output(evaluate(path, {"x": ramp}))
    np.testing.assert_allclose(out[0, 0, 0], GRIDS[(mode, size)], atol=1e-6)


def test_l2_pool_against_loops(tmp_path):
    from deploykit.runners.coreml_eval import evaluate

    path = _save(lambda v: mb.l2_pool(x=v, kernel_sizes=[3, 2], strides=[2, 2], pad_type="custom", pad=[1, 1, 0, 0]),
                 X.shape, tmp_path / "l2pool.mlpackage")
    padded = np.pad(X, [(0, 0), (0, 0), (1, 1), (0, 0)])
    expected = np.zeros((1, 4, 3, 3), np.float32)
    for i in range(3):
        for j in range(3):
            window = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 2]
            expected[:, :, i, j] = np.sqrt((window ** 2).sum(axis=(2, 3)))
    np.testing.assert_allclose(only_output(evaluate(path, {"x": X})), expected, **FP32_TOL)


def test_fp16_results_are_rounded_per_op(tmp_path):
    """An fp16 program rounds every op result: (x + 1e-4) - x is 0 for x = 1 in fp16."""
    from deploykit.runners.coreml_eval import evaluate

    tiny = np.float32(1e-4)

    def build(v):
        return mb.sub(x=mb.add(x=v, y=tiny), y=v)

    path = _save(build, (1, 3), tmp_path / "round.mlpackage", precision="fp16")
    x = np.array([[1.0, 0.001, 64.0]], np.float32)
    out = only_output(evaluate(path, {"x": x}))
    expected = (x.astype(np.float16) + np.float16(tiny)) - x.astype(np.float16)
    np.testing.assert_array_equal(out.astype(np.float16), expected.astype(np.float16))
    assert out[0, 0] == 0.0 and out[0, 1] != 0.0


def test_constexpr_cast(tmp_path):
    """iOS16 constexpr_cast: an fp16 constant widened to fp32 at load."""
    from deploykit.runners.coreml_eval import evaluate

    half = np.linspace(-1, 1, 36, dtype=np.float16).reshape(1, 1, 6, 6)
    path = _save(lambda v: mb.add(x=v, y=mb.constexpr_cast(source_val=half, output_dtype="fp32")),
                 X.shape, tmp_path / "constexpr_cast.mlpackage")
    assert "constexpr_cast" in {op.type for op in _program_ops_with_constexpr(path)}
    np.testing.assert_array_equal(only_output(evaluate(path, {"x": X})), X + half.astype(np.float32))


def _program_ops_with_constexpr(path):
    from coremltools.proto import Model_pb2

    model = Model_pb2.Model()
    model.ParseFromString((path / "Data/com.apple.CoreML/model.mlmodel").read_bytes())
    fn = model.mlProgram.functions["main"]
    return fn.block_specializations[fn.opset].operations
