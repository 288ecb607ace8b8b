"""Probe networks with the patterns the passes handle, in Keras and PyTorch.

Each has Conv / DepthwiseConv / Dense + BatchNorm (randomized statistics, so a wrong fold shows),
ReLU6 / ReLU / clip activations after convs, a clip no fused activation equals (0..4 in Keras,
a clamp(-1, 1) after a conv in PyTorch) and a Dense / Linear + BatchNorm (which coremltools does not fold).
"""

from __future__ import annotations

import numpy as np


def keras_probe(seed: int = 0):
    import keras

    L = keras.layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(8, 3, 2, padding="same", use_bias=False, name="stem")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.BatchNormalization(name="dw_bn")(x)
    x = L.ReLU(max_value=4.0, name="dw_relu4")(x)
    x = L.Conv2D(16, 1, name="pw")(x)
    x = L.BatchNormalization(name="pw_bn")(x)
    x = L.Activation("relu", name="pw_relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dense(12, name="fc")(x)
    x = L.BatchNormalization(name="fc_bn")(x)
    x = L.ReLU(name="fc_relu")(x)
    outputs = L.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs, name="probe")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n).astype("float32"), rng.normal(0, 0.2, n).astype("float32"),
                               rng.normal(0, 0.2, n).astype("float32"), rng.uniform(0.5, 1.5, n).astype("float32")])
    return model


def _torch_probe_class():
    import torch
    from torch import nn

    class TorchProbe(nn.Module):
        def __init__(self, seed: int = 0):
            super().__init__()
            torch.manual_seed(seed)
            self.stem, self.stem_bn = nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8)
            self.dw, self.dw_bn = nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.BatchNorm2d(8)
            self.pw, self.pw_bn = nn.Conv2d(8, 16, 1), nn.BatchNorm2d(16)
            self.pw2 = nn.Conv2d(16, 16, 1)
            self.fc, self.fc_bn = nn.Linear(16, 12), nn.BatchNorm1d(12)
            self.logits = nn.Linear(12, 10)
            gen = torch.Generator().manual_seed(seed)
            for m in self.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    n = m.num_features
                    m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                    m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)

        def forward(self, x):
            x = nn.functional.relu6(self.stem_bn(self.stem(x)))
            x = torch.relu(self.dw_bn(self.dw(x)))
            x = torch.clamp(self.pw_bn(self.pw(x)), 0, 6)
            x = torch.clamp(self.pw2(x), -1, 1)
            x = x.mean((2, 3))
            return self.logits(torch.relu(self.fc_bn(self.fc(x))))

    return TorchProbe


def __getattr__(name):
    if name == "TorchProbe":  # built lazily so importing this module does not import torch
        return _torch_probe_class()
    raise AttributeError(name)
