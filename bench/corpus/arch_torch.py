"""PyTorch architecture entries: GhostNet written here in plain torch (torchvision and timm do not install
beside this CPU torch), batch-norm calibration, and the exports a user makes: ``torch.export`` to
``.pt2``, and ONNX with both of torch's exporters.

GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020), width 1.0: a ghost
module makes half its channels with a 1x1 convolution and the other half from those with a cheap
depthwise convolution, concatenates them and slices to the wanted width,
``torch.cat([x1, x2], 1)[:, :out]``. With an even width the slice keeps every channel: a no-op that
``torch.export`` records as an ``alias``, as the published implementations produce it. Kept on purpose.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SEED = 0

# Per stage, per block: depthwise kernel, expansion width, output width, squeeze-excitation ratio, stride.
GHOSTNET_STAGES = (
    ((3, 16, 16, 0.0, 1),),
    ((3, 48, 24, 0.0, 2),),
    ((3, 72, 24, 0.0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0.0, 2),),
    ((3, 200, 80, 0.0, 1), (3, 184, 80, 0.0, 1), (3, 184, 80, 0.0, 1), (3, 480, 112, 0.25, 1),
     (3, 672, 112, 0.25, 1)),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1)),
)


def _divisible(value: float, divisor: int = 4) -> int:
    """Round a width to a multiple of ``divisor``, never more than 10 % below it (MobileNet's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(out)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class GhostModule(nn.Module):
    def __init__(self, inp: int, out: int, relu: bool = True):
        super().__init__()
        self.out = out
        primary = math.ceil(out / 2)
        self.primary = _conv_bn(inp, primary, 1, relu=relu)
        self.cheap = _conv_bn(primary, primary, 3, groups=primary, relu=relu)

    def forward(self, x):
        x1 = self.primary(x)
        x2 = self.cheap(x1)
        return torch.cat([x1, x2], 1)[:, :self.out]


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, ratio: float):
        super().__init__()
        reduced = _divisible(channels * ratio)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        scale = self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * F.hardsigmoid(scale)


class GhostBottleneck(nn.Module):
    def __init__(self, inp: int, mid: int, out: int, kernel: int, stride: int, se_ratio: float):
        super().__init__()
        self.expand = GhostModule(inp, mid, relu=True)
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid, relu=False) if stride > 1 else nn.Identity()
        self.se = SqueezeExcite(mid, se_ratio) if se_ratio > 0 else nn.Identity()
        self.project = GhostModule(mid, out, relu=False)
        if inp == out and stride == 1:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(_conv_bn(inp, inp, kernel, stride, groups=inp, relu=False),
                                          _conv_bn(inp, out, 1, relu=False))

    def forward(self, x):
        return self.project(self.se(self.depthwise(self.expand(x)))) + self.shortcut(x)


class GhostNet(nn.Module):
    def __init__(self, classes: int = 1000, width: float = 1.0):
        super().__init__()
        channels = _divisible(16 * width)
        self.stem = _conv_bn(3, channels, 3, 2)
        blocks = []
        for stage in GHOSTNET_STAGES:
            for kernel, expansion, out, se_ratio, stride in stage:
                out_channels = _divisible(out * width)
                blocks.append(GhostBottleneck(channels, _divisible(expansion * width), out_channels, kernel, stride,
                                              se_ratio))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(channels, _divisible(960 * width), 1)
        self.features = nn.Sequential(nn.Conv2d(_divisible(960 * width), 1280, 1), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(1280, classes)

    def forward(self, pixel_values):
        x = self.head(self.blocks(self.stem(pixel_values)))
        x = self.features(x.mean((2, 3), keepdim=True))
        return self.classifier(x.flatten(1))


def ghostnet(shape) -> nn.Module:
    """GhostNet 1.0 (5.2 M parameters), Kaiming-initialised by torch's defaults under ``SEED``."""
    torch.manual_seed(SEED)
    return GhostNet().eval()


def calibrate_batchnorms(module: nn.Module, batch: np.ndarray) -> int:
    """Reset every batch norm and measure its running statistics on ``batch`` (the model's own kind of input).

    Only the batch norms are put in training mode (dropout and the rest stay in eval), with
    ``momentum=None`` (a cumulative average): in one forward pass each normalizes with its batch's
    statistics, so each sees exactly the activations its calibrated predecessors give, which is the
    graph-order calibration of build.py's ``_calibrate_batchnorms`` in one pass. Returns how many were set.

    The affine parameters are redrawn first, scales uniform on [0.8, 1.2] and shifts N(0, 0.05) as
    build.py's ``_random_weight`` draws them: trained scales are of order 1, while transformers
    initialises some models' (MobileViT's) from N(0, 0.02), which shrinks the activations fifty-fold at
    every batch norm (MobileViT's features ended 1e4 times smaller than its input).
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    module.eval()
    generator = torch.Generator().manual_seed(SEED)
    for norm in norms:
        if norm.affine:
            with torch.no_grad():
                norm.weight.copy_(torch.rand(norm.weight.shape, generator=generator) * 0.4 + 0.8)
                norm.bias.copy_(torch.randn(norm.bias.shape, generator=generator) * 0.05)
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    with torch.no_grad():
        module(torch.from_numpy(batch))
    module.eval()
    for norm in norms:
        norm.momentum = 0.1
    return len(norms)


def outputs(module: nn.Module, array: np.ndarray) -> list[np.ndarray]:
    """The module's outputs on ``array`` (a tensor or a tuple of tensors), as numpy arrays."""
    with torch.no_grad():
        result = module(torch.from_numpy(array))
    return [t.numpy() for t in (result if isinstance(result, (tuple, list)) else (result,))]


def save_pt2(module: nn.Module, example: np.ndarray, path: Path) -> None:
    torch.export.save(torch.export.export(module.eval(), (torch.from_numpy(example),)), str(path))


def export_onnx(module: nn.Module, example: np.ndarray, exporter: str, input_name: str, output_names,
                path: Path) -> None:
    """``torch.onnx.export`` with the TorchScript-based exporter (``ts``: ``dynamo=False``, opset 17) or
    the ``torch.export``-based one (``dynamo``: its default opset), static shapes, names given."""
    args = (torch.from_numpy(example),)
    names = {"input_names": [input_name], "output_names": list(output_names)}
    if exporter == "ts":
        buffer = io.BytesIO()
        torch.onnx.export(module.eval(), args, buffer, opset_version=17, dynamo=False, **names)
        path.write_bytes(buffer.getvalue())
    elif exporter == "dynamo":
        program = torch.onnx.export(module.eval(), args, dynamo=True, verbose=False, **names)
        program.save(str(path))
    else:
        raise ValueError(f"unknown torch ONNX exporter {exporter!r}")
