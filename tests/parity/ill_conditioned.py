"""A model that is ill-conditioned on deploykit's default inputs and well-conditioned on [0, 1), and four
deliberately broken copies of it: the parity verdict must pass the right artifact and fail every broken one.

The mechanism is a large common offset that a normalization removes, as in transformers whose residual
stream carries big activations: each pixel whose channels average below zero adds ``OFFSET`` times that
(negative) average to every feature before a LayerNorm over the features. In float32 the LayerNorm then
subtracts numbers near 1e4 to recover differences near 1: the source's own rounding moves its output by
~2e-4 of its scale (above the fp32 bound of 1e-4) on uniform(-1, 1) inputs, by ~3e-7 on [0, 1) inputs,
where no pixel's average is negative. It also has a bias, a bilinear resize and a square weight, so each
kind of conversion error the issue names can be planted.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

OFFSET = 1e5
SHAPE = (1, 3, 16, 16)


class IllConditioned(torch.nn.Module):
    resize = "bilinear"

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.mix = torch.nn.Linear(16, 16)
        self.head = torch.nn.Linear(16, 10)
        self.norm = torch.nn.LayerNorm(16)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
            self.norm.weight.fill_(1.0)
            self.norm.bias.zero_()

    def forward(self, x):
        features = F.interpolate(self.conv(x), scale_factor=2, mode=self.resize)
        shift = F.interpolate(OFFSET * torch.relu(-x.mean(1, keepdim=True)), scale_factor=2, mode="nearest")
        tokens = self.mix(self.norm((features + shift).permute(0, 2, 3, 1)))
        return self.head(torch.tanh(tokens).mean((1, 2)))


class _SwappedColours(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x[:, [2, 1, 0]])


def source() -> torch.nn.Module:
    return IllConditioned().eval()


def broken() -> dict[str, torch.nn.Module]:
    """The source with one conversion error planted each (what a faulty converter could have produced)."""
    right = source()
    no_bias = copy.deepcopy(right)
    nearest = copy.deepcopy(right)
    transposed = copy.deepcopy(right)
    with torch.no_grad():
        no_bias.conv.bias.zero_()
        transposed.mix.weight.copy_(right.mix.weight.t())
    nearest.resize = "nearest"
    return {"swapped colour order": _SwappedColours(right).eval(), "dropped bias": no_bias,
            "wrong resize mode": nearest, "transposed weight": transposed}


def save(module: torch.nn.Module, path) -> None:
    torch.export.save(torch.export.export(module.eval(), (torch.rand(SHAPE),)), path)
