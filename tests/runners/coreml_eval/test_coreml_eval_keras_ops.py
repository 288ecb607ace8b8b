"""Op by op against Keras 3 for what the TensorFlow frontend produces differently from torch:
TF-style 'same' padding (extra row after, so odd totals are asymmetric), channels-last
transposes, Keras' own activations (ReLU6, hard sigmoid, hard swish) and pooling that excludes
padding from the average."""

from __future__ import annotations

import numpy as np
import pytest

from coreml_eval_support import FP32_TOL, convert_keras, only_output, program_ops, seeded

keras = pytest.importorskip("keras")
L = keras.layers


def _with_weights(layer, init):
    """Build ``layer`` on first call, then give it seeded weights (Keras inits some to constants)."""
    def apply(x):
        y = layer(x)
        rng = np.random.default_rng(3)
        layer.set_weights([init(rng, w.shape) for w in layer.get_weights()])
        return y
    return apply


def _bn(x):
    layer = L.BatchNormalization()
    y = layer(L.ReLU()(x))
    n = layer.gamma.shape[0]
    rng = np.random.default_rng(4)
    layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n), rng.uniform(0.5, 1.5, n)])
    return y


# (id, factory of the layer(s) applied to the input, input shape (batch 1, NHWC), MIL op the program must contain)
CASES = [
    ("depthwise_same_s1", lambda: L.DepthwiseConv2D(3, 1, padding="same"), (1, 9, 9, 4), "conv"),
    ("depthwise_same_s2", lambda: L.DepthwiseConv2D(3, 2, padding="same"), (1, 8, 8, 4), "conv"),
    ("conv_same_s2", lambda: L.Conv2D(6, 3, 2, padding="same"), (1, 8, 8, 4), "conv"),
    ("conv_same_even_kernel", lambda: L.Conv2D(6, 4, 1, padding="same"), (1, 7, 7, 4), "conv"),
    ("separable_conv", lambda: L.SeparableConv2D(6, 3, padding="same"), (1, 8, 8, 4), "conv"),
    ("conv_transpose_same", lambda: L.Conv2DTranspose(3, 3, 2, padding="same"), (1, 5, 5, 4), "conv_transpose"),
    ("conv_transpose_same_even", lambda: L.Conv2DTranspose(3, 4, 2, padding="same"), (1, 5, 5, 4), "conv_transpose"),
    ("relu6", lambda: L.ReLU(6.0), (1, 4, 4, 3), None),
    ("hard_sigmoid", lambda: L.Activation("hard_sigmoid"), (1, 4, 4, 3), "relu6"),
    ("hard_swish", lambda: L.Activation("hard_swish"), (1, 4, 4, 3), "relu6"),
    ("avg_pool_same", lambda: L.AveragePooling2D(3, 2, padding="same"), (1, 8, 8, 3), "avg_pool"),
    ("max_pool_same", lambda: L.MaxPooling2D(3, 2, padding="same"), (1, 8, 8, 3), "max_pool"),
    ("upsample_bilinear", lambda: L.UpSampling2D(2, interpolation="bilinear"), (1, 4, 4, 3), None),
    ("zero_padding", lambda: L.ZeroPadding2D(((1, 2), (0, 1))), (1, 4, 4, 3), "pad"),
    ("layer_norm", lambda: _with_weights(L.LayerNormalization(), lambda rng, s: rng.uniform(0.5, 1.5, s)), (1, 4, 4, 6), None),
    ("prelu_per_channel", lambda: _with_weights(L.PReLU(shared_axes=[1, 2]), lambda rng, s: rng.uniform(-0.5, 0.5, s)), (1, 4, 4, 3), None),
    ("batch_norm", lambda: _bn, (1, 4, 4, 3), None),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in CASES])
def test_fp32_matches_keras(case, tmp_path):
    from deploykit.runners.coreml_eval import evaluate, load_program

    name, make, shape, expected_op = case
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape[1:], batch_size=1)
    model = keras.Model(inp, make()(inp))
    x = seeded(shape)
    reference = np.asarray(model(x))
    path = convert_keras(model, tmp_path / f"{name}.mlpackage")
    if expected_op is not None:
        assert expected_op in program_ops(path), f"{name}: expected '{expected_op}', got {program_ops(path)}"
    (input_name,) = [d.name for d in load_program(path).inputs]
    np.testing.assert_allclose(only_output(evaluate(path, {input_name: x})), reference, **FP32_TOL)
