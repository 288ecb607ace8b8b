"""Keras 3 networks (channels-last) in the same styles as torch_nets. Built with the functional API
only, so they save as ``.keras`` and load with ``safe_mode=True`` (no Lambda layers)."""

from __future__ import annotations

import numpy as np


def _layers():
    import keras

    return keras, keras.layers


def _randomize_batchnorm(model, seed: int):
    rng = np.random.default_rng(seed)
    _, layers = _layers()
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([
                rng.uniform(0.75, 1.25, n).astype("float32"),
                rng.normal(0, 0.1, n).astype("float32"),
                rng.normal(0, 0.1, n).astype("float32"),
                rng.uniform(0.75, 1.25, n).astype("float32"),
            ])
    return model


def _conv_bn_act(x, filters, k=3, stride=1, act="relu6", depthwise=False, name=None):
    _, L = _layers()
    if depthwise:
        x = L.DepthwiseConv2D(k, stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    else:
        x = L.Conv2D(filters, k, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = L.BatchNormalization(name=f"{name}_bn")(x)
    if act == "relu6":
        x = L.ReLU(6.0, name=f"{name}_relu6")(x)
    elif act:
        x = L.Activation(act, name=f"{name}_{act}")(x)
    return x


def mobilenet(num_classes=10, size=32):
    keras, L = _layers()
    inp = keras.Input((size, size, 3), name="image")
    x = _conv_bn_act(inp, 16, 3, 2, name="stem")
    x = _conv_bn_act(x, 16, 3, 1, depthwise=True, name="b1")
    x = _conv_bn_act(x, 32, 1, name="b1_pw")
    x = _conv_bn_act(x, 32, 3, 2, depthwise=True, name="b2")
    x = _conv_bn_act(x, 64, 1, name="b2_pw")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    out = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inp, out, name="mobilenet")


def resnet(num_classes=10, size=32):
    keras, L = _layers()
    inp = keras.Input((size, size, 3), name="image")
    x = _conv_bn_act(inp, 16, 3, 1, act="relu", name="stem")
    x = L.MaxPooling2D(3, 2, padding="same", name="pool0")(x)
    y = _conv_bn_act(x, 16, 3, 1, act="relu", name="l1a")
    y = _conv_bn_act(y, 16, 3, 1, act=None, name="l1b")
    x = L.ReLU(name="l1_out")(L.Add(name="l1_add")([x, y]))
    y = _conv_bn_act(x, 32, 3, 2, act="relu", name="l2a")
    y = _conv_bn_act(y, 32, 3, 1, act=None, name="l2b")
    s = _conv_bn_act(x, 32, 1, 2, act=None, name="l2s")
    x = L.ReLU(name="l2_out")(L.Add(name="l2_add")([s, y]))
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inp, L.Dense(num_classes, name="logits")(x), name="resnet")


def shufflenet(num_classes=10, size=32):
    keras, L = _layers()
    inp = keras.Input((size, size, 3), name="image")
    x = _conv_bn_act(inp, 24, 3, 2, act="relu", name="stem")
    for i in range(2):
        a = _conv_bn_act(x, 12, 1, act="relu", name=f"u{i}_a")
        a = _conv_bn_act(a, 12, 3, depthwise=True, act=None, name=f"u{i}_b")
        b = _conv_bn_act(x, 12, 1, act="relu", name=f"u{i}_c")
        x = L.Concatenate(name=f"u{i}_cat")([a, b])
        h, w = x.shape[1], x.shape[2]
        x = L.Reshape((h, w, 2, 12), name=f"u{i}_split")(x)
        x = L.Permute((1, 2, 4, 3), name=f"u{i}_shuffle")(x)
        x = L.Reshape((h, w, 24), name=f"u{i}_merge")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inp, L.Dense(num_classes, name="logits")(x), name="shufflenet")


def squeezenet(num_classes=10, size=32):
    keras, L = _layers()
    inp = keras.Input((size, size, 3), name="image")
    x = L.Conv2D(16, 3, 2, activation="relu", name="stem")(inp)
    x = L.MaxPooling2D(3, 2, name="pool0")(x)
    for i in range(2):
        s = L.Conv2D(8, 1, activation="relu", name=f"fire{i}_squeeze")(x)
        e1 = L.Conv2D(16, 1, activation="relu", name=f"fire{i}_e1")(s)
        e3 = L.Conv2D(16, 3, padding="same", activation="relu", name=f"fire{i}_e3")(s)
        x = L.Concatenate(name=f"fire{i}_cat")([e1, e3])
    x = L.Conv2D(num_classes, 1, activation="relu", name="classifier")(x)
    out = L.GlobalAveragePooling2D(name="logits")(x)
    return keras.Model(inp, out, name="squeezenet")


def efficientnet(num_classes=10, size=32):
    keras, L = _layers()
    inp = keras.Input((size, size, 3), name="image")
    x = _conv_bn_act(inp, 16, 3, 2, act="swish", name="stem")
    y = _conv_bn_act(x, 32, 1, act="swish", name="mb_expand")
    y = _conv_bn_act(y, 32, 3, depthwise=True, act="swish", name="mb")
    s = L.GlobalAveragePooling2D(keepdims=True, name="se_pool")(y)
    s = L.Conv2D(4, 1, activation="swish", name="se_reduce")(s)
    s = L.Conv2D(32, 1, activation="sigmoid", name="se_expand")(s)
    y = L.Multiply(name="se_scale")([y, s])
    y = _conv_bn_act(y, 16, 1, act=None, name="mb_project")
    x = L.Add(name="mb_add")([x, y])
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(0.2, name="dropout")(x)
    return keras.Model(inp, L.Dense(num_classes, name="logits")(x), name="efficientnet")


SMALL_NETS = {
    "mobilenet": mobilenet,
    "resnet": resnet,
    "shufflenet": shufflenet,
    "squeezenet": squeezenet,
    "efficientnet": efficientnet,
}


def build(name: str, seed: int = 0, size: int | None = 32):
    """A small seeded Keras network from SMALL_NETS, or "mobilenet_v2" (keras.applications, random weights).
    ``size=None`` leaves height and width dynamic (for flexible input sizes)."""
    keras, _ = _layers()
    keras.utils.set_random_seed(seed)
    if name == "mobilenet_v2":
        model = keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))
    else:
        model = SMALL_NETS[name](size=size)
    return _randomize_batchnorm(model, seed)
