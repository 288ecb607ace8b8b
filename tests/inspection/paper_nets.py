"""PyTorch re-implementations of the papers' networks that keras.applications lacks (random weights, nothing
downloaded): SqueezeNet 1.0 (Iandola et al. 2016, Table 1) and the single-tower AlexNet (Krizhevsky 2014,
"One weird trick"; the variant torchvision ships and the seed talks cite at 720 M mult-adds / 61 M parameters).
"""

from __future__ import annotations

import torch
from torch import nn


class Fire(nn.Module):
    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


def squeezenet1_0() -> nn.Module:
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 96, 7, stride=2), nn.ReLU(), pool(),
        Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(),
        Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), pool(),
        Fire(512, 64, 256, 256), nn.Dropout(0.5), nn.Conv2d(512, 1000, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()


def alexnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten(),
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000),
    ).eval()


def keras_application(name: str):
    """The keras.applications networks of the table, with weights=None (nothing downloaded)."""
    import keras

    builders = {
        "mobilenet_v1_1.0_224": lambda: keras.applications.MobileNet(weights=None, input_shape=(224, 224, 3)),
        "mobilenet_v1_0.5_160": lambda: keras.applications.MobileNet(weights=None, alpha=0.5, input_shape=(160, 160, 3)),
        "mobilenet_v2_1.0_224": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)),
        "resnet50_224": lambda: keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3)),
        "vgg16_224": lambda: keras.applications.VGG16(weights=None, input_shape=(224, 224, 3)),
    }
    return builders[name]()


# The table: (mult-adds, parameters) as published. Sources in docs/inspect.md.
PUBLISHED = {
    "mobilenet_v1_1.0_224": (569e6, 4.2e6),
    "mobilenet_v1_0.5_160": (76e6, 1.32e6),
    "mobilenet_v2_1.0_224": (300e6, 3.4e6),
    "squeezenet1_0_224": (833e6, 1.25e6),
    "resnet50_224": (3.9e9, 25.6e6),
    "vgg16_224": (15.4e9, 138e6),  # published as 15.3-15.5 G
    "alexnet_224": (720e6, 61e6),
}
# MobileNet v1 1.0 paper, Table 2, percent of (mult-adds, parameters). The "Conv 3x3" mult-adds row is printed
# 1.19 %; the first layer's 112 x 112 x 32 x 27 = 10.84 M of 568.7 M is 1.91 %, and only with 1.91 do the four
# rows sum to 100 % (94.86 + 3.06 + 1.91 + 0.18 = 100.01): the printed figure has two digits swapped.
MOBILENET_TABLE = {
    "conv1x1": (94.86, 74.59),
    "depthwise": (3.06, 1.06),
    "conv": (1.91, 0.02),
    "fully_connected": (0.18, 24.33),
}
