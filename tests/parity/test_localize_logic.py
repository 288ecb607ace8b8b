"""The localization rule on hand-made traces: fused tensors are not culprits; branches do not mislead."""

from __future__ import annotations

import numpy as np

from deploykit.parity.localize import localize
from deploykit.runners.base import Intermediate

rng = np.random.default_rng(0)


def t(name, value, inputs=(), scope=None, op="op"):
    return Intermediate(name, scope or name, op, value, tuple(inputs))


def test_fused_conv_output_is_not_a_culprit_and_the_broken_conv_is():
    x = rng.normal(size=(1, 4, 6, 6)).astype(np.float32)
    conv1, bn1 = x * 2, x * 2 + 1  # the artifact fuses conv1+bn1: only bn1's value exists there
    relu1 = np.maximum(bn1, 0)
    conv2 = relu1 * 3
    source = [t("conv1", conv1), t("bn1", bn1, ["conv1"]), t("relu1", relu1, ["bn1"]),
              t("conv2", conv2, ["relu1"], scope="block2.conv (Conv2d)"), t("out", conv2.mean(axis=(2, 3)), ["conv2"])]
    broken = relu1 * 3.3  # the artifact's conv2 has other weights
    artifact = [Intermediate("a1", "fused1", "CONV_2D", relu1.transpose(0, 2, 3, 1)),  # NHWC in the artifact
                Intermediate("a2", "fused2", "CONV_2D", broken.transpose(0, 2, 3, 1), ("a1",)),
                Intermediate("a3", "mean", "MEAN", broken.mean(axis=(2, 3)), ("a2",))]
    found = localize(source, artifact, tolerance=1e-3)
    assert found.status == "found" and found.culprit["source"] == "block2.conv (Conv2d)"
    assert found.last_agreeing["source"] == "relu1" and found.last_agreeing["artifact"] == "fused1"
    assert found.culprit["artifact_op"] == "CONV_2D" and found.culprit["artifact_tensor"] == "fused2"
    assert found.compared == 5


def test_a_later_agreeing_branch_does_not_hide_the_culprit():
    x = rng.normal(size=(1, 8)).astype(np.float32)
    w_body, w_short, w_wrong = (rng.normal(size=(8, 8)).astype(np.float32) for _ in range(3))
    body, shortcut, wrong = x @ w_body, x @ w_short, x @ w_wrong  # body runs first, then the shortcut, then the add
    source = [t("body", body), t("shortcut", shortcut), t("add", body + shortcut, ["body", "shortcut"])]
    artifact = [Intermediate("b", "b", "FC", wrong), Intermediate("s", "s", "FC", shortcut),
                Intermediate("a", "a", "ADD", wrong + shortcut)]
    found = localize(source, artifact, tolerance=1e-3)
    assert found.culprit["source"] == "body"  # not "add", although "shortcut" agrees after it


def test_execution_order_stands_in_for_missing_edges():
    x = rng.normal(size=(1, 16)).astype(np.float32)
    source = [Intermediate(n, n, "op", v) for n, v in (("a", x), ("b", x * 2), ("c", x * 4))]
    artifact = [Intermediate("A", "A", "op", x), Intermediate("B", "B", "op", x * 2.5), Intermediate("C", "C", "op", x * 5)]
    assert localize(source, artifact, tolerance=1e-3).culprit["source"] == "b"


def test_not_found_and_unavailable():
    x = rng.normal(size=(1, 16)).astype(np.float32)
    same = [Intermediate("a", "a", "op", x)]
    assert localize(same, same, tolerance=1e-3).status == "not-found"
    assert localize([], same, tolerance=1e-3).status == "unavailable"
    other_shape = [Intermediate("z", "z", "op", np.zeros((3, 7), np.float32))]
    assert localize(same, other_shape, tolerance=1e-3).compared == 0


def test_names_pair_keras_layers_with_tflite_tensors():
    x = rng.normal(size=(1, 4, 4, 8)).astype(np.float32)
    # two artifact tensors with the same value: the named one is chosen
    source = [t("stem_relu6", x, scope="stem_relu6 (ReLU)")]
    artifact = [Intermediate("t1", "model/other_relu6_1/Relu6", "CONV_2D", x),
                Intermediate("t2", "model/stem_relu6_1/Relu6", "CONV_2D", x)]
    source.append(t("head", x * 9, ["stem_relu6"], scope="head (Dense)"))
    found = localize(source, artifact + [Intermediate("t3", "head", "FC", x * 7, ("t2",))], tolerance=1e-3)
    assert found.last_agreeing["artifact"] == "model/stem_relu6_1/Relu6"
