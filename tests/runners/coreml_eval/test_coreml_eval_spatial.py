"""conv_transpose with every pad type and ``output_shape``, 3-D conv and 3-D pooling, against torch.

Each case is a MIL program built directly (no graph passes), so the attribute variant under test reaches
the evaluator as written, on random inputs. The references are independent of the evaluator's code:

- conv_transpose is, by MIL's definition, the gradient of conv with respect to its input; with
  ``output_shape`` that conv's input has that shape. The reference is exactly that: torch's autograd
  through ``F.convNd`` of an input of the output's size (asymmetric ``custom`` pads applied with
  ``F.pad``), and, where torch has the layer, ``F.conv_transposeNd`` with ``output_padding`` itself.
- ``same`` padding is checked against TensorFlow's ``conv_transpose`` with ``output_shape`` (the op
  coremltools' TensorFlow frontend maps onto MIL's ``same``), TensorFlow being imported only there.
- 3-D conv and pooling: ``F.conv3d``, ``F.max_pool3d``, ``F.avg_pool3d`` (padding, count_include_pad;
  MIL has no ``ceil_mode`` for 3-D pooling).
- The onnx wheel's ConvTranspose2d and 3-D layer graphs, converted as deploykit converts ONNX, against
  the expected outputs that ship with them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from coreml_eval_support import FP32_TOL, only_output, save_mil

torch = pytest.importorskip("torch")
ct = pytest.importorskip("coremltools")
import torch.nn.functional as F  # noqa: E402
from coremltools.converters.mil import Builder as mb  # noqa: E402

from deploykit.core.errors import UnsupportedOperatorError  # noqa: E402


def _rand(shape, seed):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _evaluate(build, x, tmp_path, name):
    from deploykit.runners.coreml_eval import evaluate

    path = save_mil(build, [x.shape], tmp_path / f"{name}.mlpackage")
    return only_output(evaluate(path, {"x": x}))


def _conv_gradient(x, w, bias, out_sizes, strides, dilations, groups, pad):
    """The gradient, with respect to its input, of ``F.convNd(F.pad(input, pad), W)`` at the point where
    the conv's output equals ``x``, for an input of spatial size ``out_sizes``: MIL's conv_transpose.
    ``pad`` is MIL's [before, after] per spatial dim."""
    spatial = x.ndim - 2
    conv = (F.conv1d, F.conv2d, F.conv3d)[spatial - 1]
    # conv_transpose weight is [C_in, C_out / groups, *K]: the conv it is the gradient of maps C_out -> C_in.
    channels = w.shape[1] * groups
    source = torch.zeros((x.shape[0], channels, *out_sizes), requires_grad=True)
    torch_pad = [p for i in reversed(range(spatial)) for p in (pad[2 * i], pad[2 * i + 1])]
    y = conv(F.pad(source, torch_pad), torch.from_numpy(w), stride=strides, dilation=dilations, groups=groups)
    assert tuple(y.shape) == x.shape, f"no conv of input {out_sizes} gives {x.shape}: the case is ill-posed"
    (y * torch.from_numpy(x)).sum().backward()
    grad = source.grad.numpy()
    return grad if bias is None else grad + bias.reshape((1, -1) + (1,) * spatial)


# name, x shape, weight shape, strides, dilations, groups, pad_type, pad,
# output spatial sizes (None: the spec's formula)
GRADIENT_CASES = [
    ("custom_outpad_2d", (1, 3, 7, 6), (3, 4, 3, 3), (3, 2), (1, 1), 1, "custom", (1, 1, 1, 1), (20, 12)),
    ("custom_outpad_1d", (1, 4, 9), (4, 2, 4), (3,), (1,), 1, "custom", (1, 1), (28,)),
    ("custom_outpad_3d_groups", (1, 4, 3, 4, 5), (4, 3, 3, 2, 3), (2, 2, 3), (1, 1, 1), 2, "custom",
     (1, 1, 0, 0, 1, 1), (6, 9, 14)),
    ("custom_asymmetric", (1, 3, 5, 6), (3, 2, 3, 3), (2, 2), (1, 1), 1, "custom", (2, 0, 0, 1), None),
    ("custom_asymmetric_output_shape", (1, 3, 5, 6), (3, 2, 3, 3), (2, 2), (1, 1), 1, "custom", (2, 0, 0, 1),
     (10, 13)),
    ("custom_dilated_output_shape", (1, 2, 5, 5), (2, 3, 3, 2), (2, 3), (2, 2), 1, "custom", (1, 2, 1, 0),
     (11, 15)),
    ("valid_output_shape_longer", (1, 3, 7, 6), (3, 4, 3, 3), (3, 2), (1, 1), 1, "valid", (0, 0, 0, 0), (22, 14)),
    ("valid_3d", (1, 2, 3, 4, 3), (2, 4, 2, 3, 2), (2, 1, 2), (1, 2, 1), 1, "valid", (0,) * 6, None),
    ("valid_3d_output_shape", (1, 2, 3, 4, 3), (2, 4, 2, 3, 2), (2, 1, 2), (1, 2, 1), 1, "valid", (0,) * 6,
     (7, 8, 7)),
    ("depthwise_output_shape", (1, 4, 5, 5), (4, 1, 3, 3), (2, 2), (1, 1), 4, "custom", (1, 1, 1, 1), (10, 10)),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in GRADIENT_CASES])
def test_conv_transpose_is_the_gradient_of_conv(case, tmp_path):
    name, x_shape, w_shape, strides, dilations, groups, pad_type, pad, outs = case
    x, w, bias = _rand(x_shape, 1), _rand(w_shape, 2), _rand((w_shape[1] * groups,), 3)
    spatial = len(strides)
    if outs is None:
        full = [(x_shape[2 + i] - 1) * strides[i] + (w_shape[2 + i] - 1) * dilations[i] + 1 for i in range(spatial)]
        expected_sizes = [full[i] - pad[2 * i] - pad[2 * i + 1] for i in range(spatial)]
    else:
        expected_sizes = list(outs)
    kwargs = dict(weight=w, bias=bias, strides=list(strides), dilations=list(dilations), groups=groups,
                  pad_type=pad_type)
    if pad_type == "custom":
        kwargs["pad"] = list(pad)
    if outs is not None:
        kwargs["output_shape"] = [x_shape[0], w_shape[1] * groups, *outs]
    out = _evaluate(lambda x: mb.conv_transpose(x=x, **kwargs), x, tmp_path, name)
    reference = _conv_gradient(x, w, bias, expected_sizes, strides, dilations, groups, pad)
    assert out.shape == reference.shape
    np.testing.assert_allclose(out, reference, **FP32_TOL)


# torch's own transposed convolution with output_padding (the ONNX ConvTranspose of the onnx wheel's
# test_ConvTranspose2d is the first one): MIL output_shape = torch's output size, pad = [p, p] per dim.
TORCH_CASES = [
    ("2d_stride3x2_outpad", (1, 3, 7, 6), (3, 4, 3, 3), dict(stride=(3, 2), padding=1, output_padding=1)),
    ("2d_groups_dilated_outpad", (1, 4, 5, 4), (4, 3, 3, 3), dict(stride=2, padding=2, output_padding=1, groups=2,
                                                                  dilation=2)),
    ("1d_outpad2", (2, 2, 6), (2, 3, 5), dict(stride=3, padding=2, output_padding=2)),
    ("3d_outpad", (1, 2, 3, 4, 3), (2, 3, 3, 3, 2),
     dict(stride=(2, 2, 3), padding=(1, 1, 0), output_padding=(1, 0, 2))),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in TORCH_CASES])
def test_conv_transpose_output_shape_matches_torch_output_padding(case, tmp_path):
    name, x_shape, w_shape, options = case
    x, w = _rand(x_shape, 4), _rand(w_shape, 5)
    spatial = len(x_shape) - 2
    groups = options.get("groups", 1)
    bias = _rand((w_shape[1] * groups,), 6)
    layer = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[spatial - 1]
    reference = layer(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias), **options).numpy()

    def per_dim(key, default):
        value = options.get(key, default)
        return list(value) if isinstance(value, tuple) else [value] * spatial

    padding = per_dim("padding", 0)
    out = _evaluate(lambda x: mb.conv_transpose(
        x=x, weight=w, bias=bias, strides=per_dim("stride", 1), dilations=per_dim("dilation", 1), groups=groups,
        pad_type="custom", pad=[p for p in padding for _ in range(2)], output_shape=list(reference.shape)),
        x, tmp_path, name)
    np.testing.assert_allclose(out, reference, **FP32_TOL)


# x shape, kernel (spatial), strides, output spatial sizes (None: x * strides, the spec's formula)
SAME_CASES = [
    ("2d", (1, 5, 5, 3), (3, 3), (2, 2), None),
    ("2d_output_shape_odd", (1, 5, 5, 3), (3, 4), (2, 2), (9, 10)),
    ("2d_stride3_output_shape", (1, 4, 6, 2), (4, 3), (3, 2), (11, 11)),
    ("1d_output_shape", (1, 7, 2), (5,), (3,), (20,)),
    ("3d_output_shape", (1, 3, 4, 3, 2), (3, 2, 3), (2, 2, 3), (5, 8, 8)),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in SAME_CASES])
def test_conv_transpose_same_matches_tensorflow(case, tmp_path):
    tf = pytest.importorskip("tensorflow")
    name, x_shape, kernel, strides, outs = case
    spatial = len(kernel)
    cin, cout = x_shape[-1], 3
    x_last = _rand(x_shape, 7)  # channels last, as TensorFlow takes it
    w_tf = _rand((*kernel, cout, cin), 8)  # [*K, C_out, C_in]
    sizes = list(outs) if outs is not None else [x_shape[1 + i] * strides[i] for i in range(spatial)]
    reference = tf.nn.conv_transpose(x_last, w_tf, output_shape=[x_shape[0], *sizes, cout], strides=list(strides),
                                     padding="SAME").numpy()
    first = (0, spatial + 1) + tuple(range(1, spatial + 1))
    x = np.ascontiguousarray(x_last.transpose(first))
    w = np.ascontiguousarray(w_tf.transpose((spatial + 1, spatial) + tuple(range(spatial))))  # [C_in, C_out, *K]
    kwargs = dict(weight=w, strides=list(strides), pad_type="same")
    if outs is not None:
        kwargs["output_shape"] = [x_shape[0], cout, *outs]
    out = _evaluate(lambda x: mb.conv_transpose(x=x, **kwargs), x, tmp_path, f"same_{name}")
    np.testing.assert_allclose(out, reference.transpose(first), **FP32_TOL)


@pytest.mark.parametrize("output_shape", [
    [1, 3, 4, 4],  # coremltools issue 2281 (results differ between compute units): no valid conv maps 4 onto 4 (k=3)
    [1, 3, 7, 6],  # one row too many: a valid conv of 7 rows gives 5, not 4
])
def test_conv_transpose_refuses_an_output_shape_no_conv_explains(output_shape, tmp_path):
    from deploykit.runners.coreml_eval import evaluate

    x, w = _rand((1, 3, 4, 4), 9), _rand((3, 3, 3, 3), 10)
    path = save_mil(lambda x: mb.conv_transpose(x=x, weight=w, output_shape=output_shape), [x.shape],
                    tmp_path / "refused.mlpackage")
    with pytest.raises(UnsupportedOperatorError, match="output_shape=.*not the input's 4"):
        evaluate(path, {"x": x})


# 3-D conv: pad types, groups, dilations, strides against F.conv3d (explicit F.pad for the pads)
CONV3D_CASES = [
    ("custom_asymmetric_groups", dict(pad_type="custom", pad=[1, 0, 0, 2, 1, 1], groups=2, strides=[1, 2, 1]),
     (1, 0, 0, 2, 1, 1)),
    ("same_stride1_even_kernel", dict(pad_type="same"), (0, 1, 1, 1, 0, 1)),   # k (2, 3, 2): extra after
    ("same_lower_stride1_even_kernel", dict(pad_type="same_lower"), (1, 0, 1, 1, 1, 0)),
    ("valid_dilated_strided", dict(pad_type="valid", dilations=[2, 1, 2], strides=[2, 2, 1]), (0,) * 6),
    ("depthwise", dict(pad_type="custom", pad=[1, 1, 1, 1, 1, 1], groups=4), (1, 1, 1, 1, 1, 1)),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in CONV3D_CASES])
def test_conv3d_matches_torch(case, tmp_path):
    name, kwargs, pads = case
    groups = kwargs.get("groups", 1)
    x = _rand((1, 4, 5, 6, 7), 11)
    w = _rand((6 if groups != 4 else 8, 4 // groups, 2, 3, 2), 12)
    bias = _rand((w.shape[0],), 13)
    torch_pad = [p for i in reversed(range(3)) for p in (pads[2 * i], pads[2 * i + 1])]
    reference = F.conv3d(F.pad(torch.from_numpy(x), torch_pad), torch.from_numpy(w), torch.from_numpy(bias),
                         stride=kwargs.get("strides", 1), dilation=kwargs.get("dilations", 1), groups=groups).numpy()
    out = _evaluate(lambda x: mb.conv(x=x, weight=w, bias=bias, **kwargs), x, tmp_path, f"conv3d_{name}")
    np.testing.assert_allclose(out, reference, **FP32_TOL)


# 3-D pooling: MIL kwargs, torch kwargs (the same pooling in torch's terms)
POOL3D_CASES = [
    ("max_stride_pad", "max",
     dict(kernel_sizes=[3, 2, 3], strides=[2, 1, 2], pad_type="custom", pad=[1, 1, 0, 0, 1, 1]),
     dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 0, 1))),
    ("max_same", "max", dict(kernel_sizes=[3, 3, 3], strides=[1, 1, 1], pad_type="same"),
     dict(kernel_size=3, stride=1, padding=1)),
    ("avg_include_pad", "avg", dict(kernel_sizes=[3, 3, 3], strides=[2, 2, 2], pad_type="custom", pad=[1] * 6,
                                    exclude_padding_from_average=False),
     dict(kernel_size=3, stride=2, padding=1, count_include_pad=True)),
    ("avg_exclude_pad", "avg", dict(kernel_sizes=[3, 2, 3], strides=[2, 2, 2], pad_type="custom",
                                    pad=[1, 1, 1, 1, 1, 1], exclude_padding_from_average=True),
     dict(kernel_size=(3, 2, 3), stride=2, padding=1, count_include_pad=False)),
    ("avg_valid", "avg", dict(kernel_sizes=[2, 3, 2], strides=[1, 2, 2], pad_type="valid"),
     dict(kernel_size=(2, 3, 2), stride=(1, 2, 2))),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in POOL3D_CASES])
def test_pool3d_matches_torch(case, tmp_path):
    name, kind, mil_kwargs, torch_kwargs = case
    x = _rand((1, 3, 5, 6, 7), 14)
    mil_op = mb.max_pool if kind == "max" else mb.avg_pool
    reference = (F.max_pool3d if kind == "max" else F.avg_pool3d)(torch.from_numpy(x), **torch_kwargs).numpy()
    out = _evaluate(lambda x: mil_op(x=x, **mil_kwargs), x, tmp_path, f"pool3d_{name}")
    np.testing.assert_allclose(out, reference, **FP32_TOL)


# The onnx wheel's single-layer graphs (PyTorch layers exported to ONNX, each with its expected output):
# converted with onnx2coreml as `deploykit convert --to coreml` does, evaluated on their own input.
WHEEL_GRAPHS = [
    "pytorch-converted/test_ConvTranspose2d",  # custom pad [1, 1] + output_padding 1: output_shape [1, 4, 20, 12]
    "pytorch-converted/test_ConvTranspose2d_no_bias",
    "pytorch-operator/test_operator_convtranspose",
    "pytorch-converted/test_Conv3d_groups",
    "pytorch-converted/test_MaxPool3d_stride_padding",
]


@pytest.mark.parametrize("graph", WHEEL_GRAPHS)
def test_onnx_wheel_graph_matches_its_expected_output(graph, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnx2coreml")
    from onnx import numpy_helper

    from coreml_eval_support import quiet
    from deploykit.converters import onnx2coreml_facade
    from deploykit.runners.coreml_eval import evaluate, load_program

    folder = Path(onnx.__file__).parent / "backend" / "test" / "data" / graph
    if not folder.is_dir():
        pytest.skip(f"this onnx wheel has no {graph}")

    def tensor(path):
        proto = onnx.TensorProto()
        proto.ParseFromString(path.read_bytes())
        return numpy_helper.to_array(proto)

    path = tmp_path / "graph.mlpackage"
    with quiet():
        program = onnx2coreml_facade.to_mil(onnx.load(str(folder / "model.onnx")), "iOS16", "fp32", graph, {})
        ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                   compute_precision=ct.precision.FLOAT32).save(str(path))
    data = folder / "test_data_set_0"
    names = [decl.name for decl in load_program(path).inputs]
    out = only_output(evaluate(path, {name: tensor(data / f"input_{i}.pb") for i, name in enumerate(names)}))
    np.testing.assert_allclose(out, tensor(data / "output_0.pb"), **FP32_TOL)
