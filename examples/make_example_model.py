"""Build the example model: a small MobileNet-style Keras classifier (33k parameters), trained for
about 20 seconds on the handwritten digits that ship with scikit-learn (nothing is downloaded).
Writes examples/models/digits.keras, examples/models/labels.txt and, in examples/models/pictures/, six
held-out digits as 32x32 PNG pictures (for `deploykit predict` in run_example.sh).

The 1,797 images are shuffled once with a fixed seed, then split 1,500 for training and 297 held
out. Why shuffled: the dataset is ordered by writer, and the last 297 images come from writers the
model never saw; on that split the network reached 92-95 % and many held-out images sat on a
decision boundary, so quantization results moved by several points between training runs. On the
shuffled split it reaches 97.6-98.7 % (three seeds). Why 33k parameters and three blocks: the
earlier 4.2k-parameter network had layers of 144 to 2,048 weights, far below any model an app
ships, where any 4-bit table is coarse.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TRAINING_IMAGES = 1500


def digits_split():
    """((train images, train labels), (held-out images, held-out labels)), 32x32x3 in 0..1."""
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[..., None]  # 8x8 grey, 0..1
    images = np.repeat(np.repeat(images, 4, axis=1), 4, axis=2)  # 32x32, what a camera crop would be
    images = np.repeat(images, 3, axis=3)
    order = np.random.default_rng(0).permutation(len(images))
    images, labels = images[order], digits.target[order]
    return (images[:TRAINING_IMAGES], labels[:TRAINING_IMAGES]), (images[TRAINING_IMAGES:], labels[TRAINING_IMAGES:])


def build_digits_model(epochs: int = 30, seed: int = 0):
    """(trained model, held-out accuracy, (held-out images, labels))."""
    import keras

    keras.utils.set_random_seed(seed)
    (train_x, train_y), (test_x, test_y) = digits_split()
    L = keras.layers
    inputs = keras.Input((32, 32, 3), name="image")
    x = L.Conv2D(32, 3, 2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu6")(x)
    for i, (filters, stride) in enumerate(((64, 2), (128, 2), (128, 1))):
        x = L.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=f"b{i}_dw")(x)
        x = L.BatchNormalization(name=f"b{i}_dw_bn")(x)
        x = L.ReLU(6.0, name=f"b{i}_dw_relu6")(x)
        x = L.Conv2D(filters, 1, use_bias=False, name=f"b{i}_pw")(x)
        x = L.BatchNormalization(name=f"b{i}_pw_bn")(x)
        x = L.ReLU(6.0, name=f"b{i}_pw_relu6")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    outputs = L.Dense(10, name="logits")(x)
    model = keras.Model(inputs, outputs, name="digits")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(train_x, train_y, epochs=epochs, batch_size=64, verbose=0)
    accuracy = model.evaluate(test_x, test_y, verbose=0)[1]
    return model, float(accuracy), (test_x, test_y)


VALIDATION_PICTURES = 200


def main(out_dir: str = "examples/models", epochs: str = "30") -> None:
    """``epochs`` below 30 trains a deliberately worse model (the CI gate example: 1 epoch reaches ~30 %)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, accuracy, (test_x, test_y) = build_digits_model(epochs=int(epochs))
    model.save(out / "digits.keras")
    (out / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
    save_pictures(test_x[:6], test_y[:6], out / "pictures")
    save_validation(test_x[6:6 + VALIDATION_PICTURES], test_y[6:6 + VALIDATION_PICTURES], out / "validation")
    print(f"wrote {out / 'digits.keras'} (held-out accuracy {accuracy:.3f}), {out / 'labels.txt'}, {out / 'pictures'} "
          f"and {out / 'validation'}")


def save_validation(images, labels, folder: Path) -> None:
    """Held-out digits as labelled pictures, one sub-folder per label (what `deploykit build` measures accuracy on);
    none of them is among the six in pictures/."""
    import numpy as np
    from PIL import Image

    for index, (image, label) in enumerate(zip(images, labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(folder / str(label) / f"{index:03d}.png")


def save_pictures(images, labels, folder: Path) -> None:
    """Held-out digits as the pictures an app would have (uint8 RGB PNG), named after their true label."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(folder / f"{index}_digit_{label}.png")


if __name__ == "__main__":
    main(*sys.argv[1:])
