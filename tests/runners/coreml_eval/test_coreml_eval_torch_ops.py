"""Op by op against PyTorch: a one-op module is traced, converted to an ML Program, evaluated with
numpy and compared with torch. Each case names the MIL op it must produce, so a converter change
that routes the op elsewhere shows up as a failure rather than as a silently weaker test."""

from __future__ import annotations

import numpy as np
import pytest

from coreml_eval_support import FP16_TOL, FP32_TOL, convert_torch, only_output, program_ops, seeded

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


class Fn(nn.Module):
    def __init__(self, fn, **params):
        super().__init__()
        self.fn = fn
        for key, value in params.items():
            self.register_buffer(key, value)

    def forward(self, x):
        return self.fn(self, x)


def _bn(channels: int) -> nn.Module:
    bn = nn.BatchNorm2d(channels)
    gen = torch.Generator().manual_seed(1)
    bn.running_mean.copy_(torch.randn(channels, generator=gen) * 0.2)
    bn.running_var.copy_(torch.rand(channels, generator=gen) + 0.5)
    bn.weight.data.copy_(torch.rand(channels, generator=gen) + 0.5)
    bn.bias.data.copy_(torch.randn(channels, generator=gen) * 0.2)
    return nn.Sequential(nn.ReLU(), bn)  # the ReLU keeps coremltools from folding BN into a conv


def _prelu(channels: int) -> nn.Module:
    m = nn.PReLU(channels)
    m.weight.data.copy_(torch.linspace(-0.5, 0.5, channels))
    return m


def _slice_assign(s, x):
    y = x.clone()
    y[:, 1:3, 2] = x[:, 0:2, 0] * 2
    return y


def _grid(x):
    """A sampling grid from the input itself, reaching past the image so padding is exercised."""
    return x[:, :2].permute(0, 2, 3, 1) * 1.5


IMG = (1, 4, 8, 8)
VOL = (1, 4, 5, 6, 7)
# (id, module factory, input shape, MIL op the program must contain, also test an fp16 program)
CASES = [
    ("conv3x3", lambda: nn.Conv2d(4, 8, 3, padding=1), IMG, "conv", True),
    ("conv_stride2_valid", lambda: nn.Conv2d(4, 8, 3, stride=2), IMG, "conv", False),
    ("conv_dilated", lambda: nn.Conv2d(4, 8, 3, padding=2, dilation=2), IMG, "conv", False),
    ("conv_groups", lambda: nn.Conv2d(4, 8, 3, padding=1, groups=2), IMG, "conv", False),
    ("conv_depthwise", lambda: nn.Conv2d(4, 4, 3, padding=1, groups=4), IMG, "conv", True),
    ("conv_depthwise_x2_stride2", lambda: nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=4), IMG, "conv", False),
    ("conv_1x1_nobias", lambda: nn.Conv2d(4, 6, 1, bias=False), IMG, "conv", False),
    ("conv_rect_kernel", lambda: nn.Conv2d(4, 6, (1, 3), padding=(0, 1)), IMG, "conv", False),
    ("conv_same_even_kernel", lambda: nn.Conv2d(4, 6, 4, padding="same"), IMG, "conv", False),
    ("conv1d", lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1), (1, 4, 16), "conv", False),
    ("conv_transpose_outpad", lambda: nn.ConvTranspose2d(4, 3, 3, 2, 1, output_padding=1), IMG, "conv_transpose", True),
    ("conv_transpose_groups", lambda: nn.ConvTranspose2d(4, 6, 4, 2, 0, groups=2), IMG, "conv_transpose", False),
    ("max_pool", lambda: nn.MaxPool2d(3, 2, 1), IMG, "max_pool", True),
    ("max_pool_ceil", lambda: nn.MaxPool2d(3, 2, ceil_mode=True), IMG, "max_pool", False),
    ("avg_pool_include_pad", lambda: nn.AvgPool2d(3, 2, 1), IMG, "avg_pool", False),
    ("avg_pool_exclude_pad", lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), IMG, "avg_pool", False),
    ("avg_pool_ceil", lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), IMG, "avg_pool", True),
    ("avg_pool_ceil_exclude", lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), IMG, "avg_pool", False),
    ("lp_pool", lambda: nn.LPPool2d(2, 2), IMG, "avg_pool", False),
    ("conv3d_groups_dilated", lambda: nn.Conv3d(4, 6, 3, stride=(1, 2, 1), padding=(1, 2, 0), dilation=(1, 2, 1),
                                                groups=2), VOL, "conv", True),
    ("conv_transpose3d", lambda: nn.ConvTranspose3d(4, 3, (3, 2, 3), stride=(2, 1, 2), padding=1), VOL,
     "conv_transpose", False),
    ("max_pool3d", lambda: nn.MaxPool3d(3, (2, 1, 2), 1), VOL, "max_pool", False),
    ("avg_pool3d_exclude_pad", lambda: nn.AvgPool3d(3, 2, 1, count_include_pad=False), VOL, "avg_pool", True),
    ("global_avg", lambda: nn.AdaptiveAvgPool2d(1), IMG, "reduce_mean", False),
    ("global_max", lambda: nn.AdaptiveMaxPool2d(1), IMG, "reduce_max", False),
    ("relu", lambda: nn.ReLU(), IMG, "relu", False),
    ("relu6", lambda: nn.ReLU6(), IMG, "clip", True),
    ("hardtanh", lambda: nn.Hardtanh(-0.5, 0.75), IMG, "clip", False),
    ("sigmoid", lambda: nn.Sigmoid(), IMG, "sigmoid", True),
    ("hardsigmoid", lambda: nn.Hardsigmoid(), IMG, "sigmoid_hard", True),
    ("hardswish", lambda: nn.Hardswish(), IMG, "sigmoid_hard", True),
    ("silu", lambda: nn.SiLU(), IMG, "silu", True),
    ("gelu", lambda: nn.GELU(), IMG, "gelu", True),
    ("gelu_tanh", lambda: nn.GELU("tanh"), IMG, "gelu", False),
    ("tanh", lambda: nn.Tanh(), IMG, "tanh", False),
    ("softmax", lambda: nn.Softmax(dim=1), IMG, "softmax", True),
    ("log_softmax", lambda: nn.LogSoftmax(dim=-1), IMG, "softmax", False),
    ("leaky_relu", lambda: nn.LeakyReLU(0.1), IMG, "leaky_relu", False),
    ("prelu", lambda: _prelu(4), IMG, "prelu", True),
    ("elu", lambda: nn.ELU(0.7), IMG, "elu", False),
    ("softplus", lambda: nn.Softplus(), IMG, "softplus", False),
    ("mish", lambda: nn.Mish(), IMG, "tanh", False),
    ("arith_broadcast", lambda: Fn(lambda s, x: (x + s.b) * s.b - x / (x.abs() + s.b) - 1.5, b=torch.linspace(0.1, 1, 8)), IMG, "real_div", True),
    ("max_min", lambda: Fn(lambda s, x: torch.maximum(x, s.b) + torch.minimum(x, -s.b), b=torch.linspace(-1, 1, 8)), IMG, "maximum", False),
    ("pow_sqrt_rsqrt", lambda: Fn(lambda s, x: x.abs() ** 1.7 + torch.sqrt(x.abs()) + torch.rsqrt(x.abs() + 0.5)), IMG, "rsqrt", False),
    ("exp_log_abs", lambda: Fn(lambda s, x: torch.exp(x) + torch.log(x.abs() + 0.1) - x.abs()), IMG, "log", True),
    ("clamp_min", lambda: Fn(lambda s, x: x.clamp(min=0.1)), IMG, "clip", False),
    ("reduce_mean_sum", lambda: Fn(lambda s, x: x.mean(dim=(2, 3)) + x.sum(dim=1).mean(-1)[..., :1]), IMG, "reduce_sum", False),
    ("reduce_max_min_keep", lambda: Fn(lambda s, x: x.amax(dim=1, keepdim=True) - x.amin(dim=-1, keepdim=True)), IMG, "reduce_min", False),
    ("linear", lambda: nn.Linear(8, 5), (2, 8), "linear", True),
    ("linear_3d", lambda: nn.Linear(8, 5), (1, 3, 8), "linear", False),
    ("matmul_transposed", lambda: Fn(lambda s, x: x @ x.transpose(-1, -2)), IMG, "matmul", False),
    ("matmul_weight", lambda: Fn(lambda s, x: torch.matmul(x, s.w), w=torch.linspace(-1, 1, 40).reshape(8, 5)), IMG, "matmul", False),
    ("batch_norm", lambda: _bn(4), IMG, "batch_norm", True),
    ("layer_norm", lambda: nn.LayerNorm(8), IMG, "layer_norm", True),
    ("layer_norm_chw", lambda: nn.LayerNorm([4, 8, 8]), IMG, "layer_norm", False),
    ("instance_norm", lambda: nn.InstanceNorm2d(4, affine=True), IMG, "instance_norm", False),
    ("group_norm", lambda: nn.GroupNorm(2, 4), IMG, "reduce_mean", False),
    ("upsample_nearest", lambda: nn.Upsample(scale_factor=2), IMG, "upsample_nearest_neighbor", True),
    ("upsample_bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), IMG, "upsample_bilinear", True),
    ("upsample_bilinear_corners", lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), IMG, "upsample_bilinear", False),
    ("resize_bilinear_size", lambda: Fn(lambda s, x: F.interpolate(x, size=(12, 5), mode="bilinear")), IMG, None, False),
    ("flatten_linear", lambda: nn.Sequential(nn.Flatten(), nn.Linear(256, 3)), IMG, "reshape", False),
    ("permute_reshape", lambda: Fn(lambda s, x: x.permute(0, 2, 3, 1).reshape(1, 64, 4)), IMG, "transpose", False),
    ("concat", lambda: Fn(lambda s, x: torch.cat([x, x * 2, -x], dim=1)), IMG, "concat", False),
    ("chunk", lambda: Fn(lambda s, x: torch.cat(list(reversed(x.chunk(2, 1))), 1)), IMG, "split", False),
    ("split_sizes", lambda: Fn(lambda s, x: torch.cat([t * (i + 1) for i, t in enumerate(x.split([1, 3], 1))], 1)), IMG, "split", False),
    ("channel_shuffle", lambda: Fn(lambda s, x: x.view(1, 2, 2, 8, 8).transpose(1, 2).reshape(1, 4, 8, 8)), IMG, None, False),
    ("slice_step", lambda: Fn(lambda s, x: x[:, 1:3, ::2, 1:-1]), IMG, "slice_by_index", False),
    ("squeeze_unsqueeze", lambda: Fn(lambda s, x: x.mean(1).unsqueeze(0).squeeze(1)), IMG, "expand_dims", False),
    ("pad_constant", lambda: Fn(lambda s, x: F.pad(x, (1, 2, 0, 1), value=0.5)), IMG, "pad", False),
    ("pad_reflect", lambda: nn.ReflectionPad2d((1, 2, 2, 1)), IMG, "pad", False),
    ("pad_replicate", lambda: nn.ReplicationPad2d((1, 2, 0, 1)), IMG, "pad", False),
    ("tile", lambda: Fn(lambda s, x: x.repeat(1, 2, 1, 3)), IMG, "tile", False),
    ("index_select", lambda: Fn(lambda s, x: x.index_select(1, torch.tensor([3, 0, 0]))), IMG, "gather", False),
    ("pixel_shuffle", lambda: nn.PixelShuffle(2), IMG, "pixel_shuffle", False),
    ("pixel_unshuffle", lambda: nn.PixelUnshuffle(2), IMG, "pixel_unshuffle", False),
    ("stack", lambda: Fn(lambda s, x: torch.stack([x[:, 0], x[:, 1] * 2], dim=-1)), IMG, "stack", False),
    ("topk", lambda: Fn(lambda s, x: torch.cat([torch.topk(x, 3, dim=-1)[0].flatten(),
                                                 torch.topk(x, 2, dim=1, largest=False)[0].flatten()])), IMG, "topk", True),
    ("topk_indices", lambda: Fn(lambda s, x: torch.topk(x, 3, dim=2)[1].float()), IMG, "topk", False),
    ("sort", lambda: Fn(lambda s, x: torch.sort(x, dim=1)[0]), IMG, "argsort", False),
    ("argsort_descending", lambda: Fn(lambda s, x: torch.argsort(x, dim=-1, descending=True).float()), IMG, "argsort", False),
    ("cumsum", lambda: Fn(lambda s, x: torch.cumsum(x, dim=2)), IMG, "cumsum", True),
    ("flip", lambda: Fn(lambda s, x: torch.flip(x, [1, 3])), IMG, "reverse", False),
    ("triu_tril", lambda: Fn(lambda s, x: torch.triu(x, 1) + 2 * torch.tril(x, -2)), IMG, "band_part", False),
    ("nonzero", lambda: Fn(lambda s, x: torch.nonzero(x > 0.5).float()), IMG, "non_zero", False),
    ("scatter_add", lambda: Fn(lambda s, x: x.scatter_add(3, s.i, x[..., :4]), i=torch.tensor([2, 0, 2, 7]).expand(1, 4, 8, 4)), IMG, "scatter_along_axis", True),
    ("scatter", lambda: Fn(lambda s, x: x.scatter(1, s.i, x[:, :2] * 3), i=torch.tensor([3, 0]).reshape(1, 2, 1, 1).expand(1, 2, 8, 8)), IMG, "scatter_along_axis", False),
    ("slice_assign", lambda: Fn(_slice_assign), IMG, "scatter", False),
    ("advanced_index", lambda: Fn(lambda s, x: x[0, torch.tensor([1, 2, 3]), torch.tensor([0, 4, 7])]), IMG, "gather_nd", False),
    ("grid_sample", lambda: Fn(lambda s, x: F.grid_sample(x, _grid(x))), IMG, "resample", True),
    ("grid_sample_corners_nearest_border", lambda: Fn(lambda s, x: F.grid_sample(
        x, _grid(x), mode="nearest", padding_mode="border", align_corners=True)), IMG, "resample", False),
    ("grid_sample_reflection", lambda: Fn(lambda s, x: F.grid_sample(x, _grid(x), padding_mode="reflection")), IMG, "resample", False),
    ("grid_sample_corners_reflection", lambda: Fn(lambda s, x: F.grid_sample(
        x, _grid(x), padding_mode="reflection", align_corners=True)), IMG, "resample", False),
    ("affine_grid_sample", lambda: Fn(lambda s, x: F.grid_sample(x, F.affine_grid(s.t, (1, 4, 5, 7), align_corners=False)),
                                      t=torch.tensor([[[0.9, -0.3, 0.2], [0.25, 1.1, -0.1]]])), IMG, "affine", True),
    ("affine_grid_sample_corners", lambda: Fn(lambda s, x: F.grid_sample(
        x, F.affine_grid(s.t, (1, 4, 6, 9), align_corners=True), align_corners=True),
        t=torch.tensor([[[1.2, 0.1, -0.3], [-0.2, 0.8, 0.4]]])), IMG, "affine", False),
]
FP32_CASES = [pytest.param(c, id=c[0]) for c in CASES]
FP16_CASES = [pytest.param(c, id=c[0]) for c in CASES if c[4]]


def _run_case(case, precision, tmp_path, target="iOS16"):
    from deploykit.runners.coreml_eval import evaluate

    name, factory, shape, expected_op, _ = case
    torch.manual_seed(0)
    module = factory().eval()
    x = seeded(shape)
    with torch.no_grad():
        reference = module(torch.from_numpy(x)).numpy()
    path = convert_torch(module, torch.from_numpy(x), tmp_path / f"{name}_{precision}.mlpackage", precision, target)
    if expected_op is not None:
        assert expected_op in program_ops(path), f"{name}: expected a '{expected_op}' op, got {program_ops(path)}"
    out = only_output(evaluate(path, {"x": x}))
    return out, reference


@pytest.mark.parametrize("case", FP32_CASES)
def test_fp32_matches_torch(case, tmp_path):
    out, reference = _run_case(case, "fp32", tmp_path)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference, **FP32_TOL)


@pytest.mark.parametrize("case", FP16_CASES)
def test_fp16_matches_torch_loosely(case, tmp_path):
    out, reference = _run_case(case, "fp16", tmp_path)
    assert out.dtype == np.float16  # iOS16 fp16 programs declare fp16 outputs
    np.testing.assert_allclose(out.astype(np.float32), reference, **FP16_TOL)


# Ops the torch frontend emits only from iOS18 on.
IOS18_CASES = [
    ("slice_update", lambda: Fn(_slice_assign), IMG, "slice_update", True),
    ("sdpa", lambda: Fn(lambda s, x: F.scaled_dot_product_attention(x, x * 0.5, x.flip(-1))), IMG,
     "scaled_dot_product_attention", True),
    ("sdpa_bool_mask", lambda: Fn(lambda s, x: F.scaled_dot_product_attention(x, x, x, attn_mask=s.m),
                                  m=torch.rand(8, 8, generator=torch.Generator().manual_seed(2)) > 0.3), IMG,
     "scaled_dot_product_attention", False),
    ("sdpa_float_mask", lambda: Fn(lambda s, x: F.scaled_dot_product_attention(x, x, x, attn_mask=s.m),
                                   m=torch.linspace(-2, 2, 64).reshape(8, 8)), IMG, "scaled_dot_product_attention", False),
]


@pytest.mark.parametrize("case,precision", [pytest.param(c, p, id=f"{c[0]}-{p}") for c in IOS18_CASES
                                             for p in (("fp32", "fp16") if c[4] else ("fp32",))])
def test_ios18_ops_match_torch(case, precision, tmp_path):
    out, reference = _run_case(case, precision, tmp_path, target="iOS18")
    tol = FP32_TOL if precision == "fp32" else FP16_TOL
    np.testing.assert_allclose(out.astype(np.float32), reference, **tol)
