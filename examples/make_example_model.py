"""Build the example model: a small MobileNet-style Keras classifier, trained for a few seconds on the
handwritten digits that ship with scikit-learn (nothing is downloaded). Writes examples/models/digits.keras
and examples/models/labels.txt."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_digits_model(epochs: int = 30, seed: int = 0):
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(seed)
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # 8x8 grey, 0..1
    images = np.repeat(np.repeat(images, 4, axis=1), 4, axis=2)  # 32x32, what a camera crop would be
    images = np.repeat(images, 3, axis=3)
    labels = digits.target
    L = keras.layers
    inputs = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(16, 3, 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = L.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    for i, filters in enumerate((32, 64)):
        x = L.DepthwiseConv2D(3, 2, padding="same", use_bias=False, name=f"b{i}_dw")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"b{i}_dw_bn")(x)
        x = L.ReLU(6.0, name=f"b{i}_dw_relu6")(x)
        x = L.Conv2D(filters, 1, use_bias=False, name=f"b{i}_pw")(x)
        x = L.BatchNormalization(momentum=0.9, name=f"b{i}_pw_bn")(x)
        x = L.ReLU(6.0, name=f"b{i}_pw_relu6")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs, name="digits")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    split = 1500
    model.fit(images[:split], labels[:split], epochs=epochs, batch_size=64, verbose=0)
    accuracy = model.evaluate(images[split:], labels[split:], verbose=0)[1]
    return model, float(accuracy), (images[split:], labels[split:])


def main(out_dir: str = "examples/models") -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, accuracy, _ = build_digits_model()
    model.save(out / "digits.keras")
    (out / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
    print(f"wrote {out / 'digits.keras'} (held-out accuracy {accuracy:.3f}) and {out / 'labels.txt'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
