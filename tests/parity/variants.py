"""What the parity tests and bench/ build around real conversions: a full-int8 TFLite with int8 input
and output made directly with TFLiteConverter, and the "wrong" sources (a perturbed weight, a dropped
layer), each a copy of a loaded SourceModel."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np


def keras_tflite(model, path: Path, variant: str, input_name="image", output_name="logits", int8_io=False) -> Path:
    """A Keras model object -> .tflite at fp32 / fp16 / int8-weights / int8 (full, calibrated on uniform [-1, 1))."""
    import tensorflow as tf

    from deploykit.formats.tflite.flatbuffer import set_signature

    shape = (1, *model.inputs[0].shape[1:])
    spec = tf.TensorSpec(shape, tf.float32, name=input_name)

    @tf.function(input_signature=[spec])
    def serving(x):
        return [model(x, training=False)]

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Frozen as deploykit's own Keras path does: the calibrator cannot read resource variables.
    frozen = convert_variables_to_constants_v2(serving.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if variant in ("fp16", "int8-weights", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        rng = np.random.default_rng(123)

        def representative():
            for _ in range(32):
                yield [rng.uniform(-1, 1, shape).astype(np.float32)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    data = converter.convert()
    path.write_bytes(set_signature(data, [input_name], [output_name]))
    return path


def perturbed(source_model, relative: float, seed: int = 7, where: str = "middle"):
    """A copy of the source whose middle conv weight (``where="last"``: its last conv or dense weight) gets
    Gaussian noise of ``relative`` x the weight's std. Returns (model, name of the changed layer)."""
    rng = np.random.default_rng(seed)
    pick = (lambda items: items[len(items) // 2]) if where == "middle" else (lambda items: items[-1])
    if source_model.framework == "keras":
        import keras

        model = keras.models.clone_model(source_model.handle)
        model.set_weights(source_model.handle.get_weights())
        kinds = (keras.layers.Conv2D,) if where == "middle" else (keras.layers.Conv2D, keras.layers.Dense)
        layer = pick([l for l in model.layers if isinstance(l, kinds)])
        weights = layer.get_weights()
        weights[0] = weights[0] + rng.normal(0, relative * weights[0].std(), weights[0].shape).astype("float32")
        layer.set_weights(weights)
        return replace(source_model, handle=model), layer.name
    if source_model.framework == "onnx":
        import onnx
        from onnx import numpy_helper

        proto = onnx.ModelProto()
        proto.CopyFrom(source_model.handle)
        node = pick([n for n in proto.graph.node if n.op_type in (("Conv",) if where == "middle" else ("Conv", "Gemm"))])
        init = next(i for i in proto.graph.initializer if i.name == node.input[1])
        weight = numpy_helper.to_array(init)
        noisy = weight + rng.normal(0, relative * weight.std(), weight.shape).astype(weight.dtype)
        init.CopyFrom(numpy_helper.from_array(noisy, init.name))
        return replace(source_model, handle=proto), node.name
    import copy

    import torch

    module = copy.deepcopy(source_model.handle["module"])
    name, param = pick([(n, p) for n, p in module.named_parameters()
                        if (p.ndim == 4 or where == "last" and p.ndim == 2) and n.endswith("weight")])
    with torch.no_grad():
        param.add_(torch.from_numpy(rng.normal(0, relative * float(param.std()), tuple(param.shape)).astype("float32")))
    return replace(source_model, handle={**source_model.handle, "module": module}), name.rsplit(".", 1)[0]


def dropped(source_model):
    """A copy of the source with one middle layer dropped: a batch norm (Keras: made an identity; PyTorch:
    nn.Identity), or in a network without batch norm a middle ReLU (Keras: the conv's activation)."""
    if source_model.framework == "keras":
        import keras

        model = keras.models.clone_model(source_model.handle)
        model.set_weights(source_model.handle.get_weights())
        bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
        if bns:
            layer = bns[len(bns) // 2]
            n = layer.gamma.shape[0]
            layer.set_weights([np.ones(n, "float32"), np.zeros(n, "float32"), np.zeros(n, "float32"),
                               np.full(n, 1 - layer.epsilon, "float32")])
        else:
            convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D) and l.activation is keras.activations.relu]
            layer = convs[len(convs) // 2]
            layer.activation = keras.activations.linear
        return replace(source_model, handle=model), layer.name
    import copy

    import torch

    module = copy.deepcopy(source_model.handle["module"])
    if isinstance(module, torch.fx.GraphModule):
        raise ValueError("dropped() needs an eager nn.Module source")
    names = [n for n, m in module.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    names = names or [n for n, m in module.named_modules() if isinstance(m, torch.nn.ReLU)]
    name = names[len(names) // 2]
    parent, _, leaf = name.rpartition(".")
    setattr(module.get_submodule(parent) if parent else module, leaf, torch.nn.Identity())
    return replace(source_model, handle={**source_model.handle, "module": module}), name
