"""The pixel preamble for a Keras model: a functional model of ``keras.ops`` in front of it."""

from __future__ import annotations

from deploykit.core.errors import UsageError
from deploykit.image_io.spec import image_geometry


def wrap(model, images: dict, specs):
    import keras

    if model.format == "savedmodel":
        raise UsageError("--image-input needs a Keras model (.keras or .h5); a SavedModel directory has no layers "
                         "to put the preprocessing in front of", hint="save the model as .keras and convert that")
    inner = model.handle
    inputs, prepared = [], []
    for source, pixels in zip(model.inputs, specs):
        tensor = keras.Input(batch_shape=pixels.shape, dtype=pixels.dtype, name=pixels.name)
        inputs.append(tensor)
        image = images.get(source.name)
        if image is None:
            prepared.append(tensor)
            continue
        scale, offset = image.scale_and_offset()
        x = keras.ops.cast(tensor, "float32")
        if pixels.layout == "NCHW":
            x = keras.ops.transpose(x, (0, 2, 3, 1))
        if image.color == "BGR" and pixels.dtype == "uint8":  # TFLite takes RGB; Core ML hands over BGR itself
            x = keras.ops.flip(x, axis=-1)
        x = x * scale.reshape(1, 1, 1, -1) + offset.reshape(1, 1, 1, -1)
        if image_geometry(source)[3] == "NCHW":
            x = keras.ops.transpose(x, (0, 3, 1, 2))
        prepared.append(x)
    outputs = inner(prepared if len(prepared) > 1 else prepared[0], training=False)
    return keras.Model(inputs, outputs, name=f"{inner.name}_pixels")
